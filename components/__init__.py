"""Custom TFX components of the tfdet pipeline."""
