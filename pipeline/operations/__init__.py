"""Operating the pipeline: what is served and going back (``served``), the run's summary and console, one run at a
time (``run_lock``) and the one-line failures (``failures``)."""
