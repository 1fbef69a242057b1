"""The model zoo: one flat file per detector config.

Each entry module defines ``MODEL`` (the ``ConfigOneStage`` fields),
``train_steps(pattern)`` (the training input pipeline) and ``TRAIN`` (batch size,
epochs, learning rate). Evaluation needs no entry of its own:
``tfdet.evaluation.eval_dataset`` derives it from the model config. Look entries up by name::

    from models.zoo import get_entry
    entry = get_entry("cpu_small")
"""

from __future__ import annotations

import copy
import importlib
from types import ModuleType

from tfdet.registry import Registry

ZOO = Registry("model config")
for _name in ("retinanet_resnetv2_50_fpn_512", "cpu_small", "tiny"):
    ZOO.register(_name)(_name)


def get_entry(name: str) -> ModuleType:
    """The zoo module called ``name`` (did-you-mean error when unknown)."""
    return importlib.import_module(f"models.zoo.{ZOO.get(name)}")


def model_config(name: str) -> dict:
    """A deep copy of the entry's ``MODEL`` dict, safe to modify."""
    return copy.deepcopy(get_entry(name).MODEL)
