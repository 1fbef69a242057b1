"""The tfdet TFX pipeline (TFX template layout: configs, pipeline, one file per runner)."""
