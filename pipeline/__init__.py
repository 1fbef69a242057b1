"""The tfdet TFX pipeline (TFX template layout: configs, pipeline, one file per runner)."""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository (the pipeline's code)
