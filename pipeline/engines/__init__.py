"""Where the pipeline's Beam steps run: the engines by name and their arguments (``beam``), Flink's jars and job
server (``flink``), the runner that spreads reads (``flink_runner``), a cluster on this machine (``cluster``, on
simulated ``hosts``) and the SDK workers' pool and boot (``worker``)."""
