"""The seed's import path for the training callbacks; they live in :mod:`tfdet.training.callbacks`."""

from tfdet.training.callbacks import CheckpointResume, CocoEvaluation

__all__ = ["CheckpointResume", "CocoEvaluation"]
