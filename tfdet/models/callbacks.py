"""The seed's import path of the checkpoint + resume callback: ``from tfdet.models.callbacks import CheckpointResume``.

The class lives with the other training callbacks, in :mod:`tfdet.training.callbacks`; it is looked up there on
first use, so that the models package imports nothing of training.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CheckpointResume"]  # noqa: F822 (served by __getattr__)


def __getattr__(name: str) -> Any:
    if name == "CheckpointResume":
        return importlib.import_module("tfdet.training.callbacks").CheckpointResume
    raise AttributeError(f"module 'tfdet.models.callbacks' has no attribute {name!r}")
