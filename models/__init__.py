"""Model code the TFX components load: the model zoo (configs), and later the Trainer's run_fn."""
