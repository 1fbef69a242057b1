"""A training run's folder, and turning a zoo name or a config file into the model spec it trains.

Layout of a work dir (``tfdet train ... --work-dir runs/x``)::

    config.json         the model config (ConfigOneStage fields), the recipe, the data it trained on
    label_map.json      class id -> name
    checkpoints/        model + optimizer + epoch each epoch (resume after an interruption)
    logs/               TensorBoard: losses, learning rate, COCO metrics, images with detections
    history.json        per-epoch logs and the final COCO metrics
    saved_model/        the exported SavedModel (serving_default, serving_images), label_map.json beside it
"""

from __future__ import annotations

import importlib.util
import json
import os
from types import ModuleType
from typing import Dict, Optional

from tfdet.files import write_json  # noqa: F401  (the work dir's writer)

CONFIG, LABEL_MAP, HISTORY = "config.json", "label_map.json", "history.json"
CHECKPOINTS, LOGS, SAVED_MODEL = "checkpoints", "logs", "saved_model"


def load_spec(config: str) -> ModuleType:
    """A zoo entry by name, or a Python config file defining ``MODEL``, ``TRAIN`` and ``train_steps``."""
    if config.endswith(".py"):
        if not os.path.exists(config):
            raise FileNotFoundError(f"config file {config} does not exist")
        spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(config))[0], config)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        missing = [name for name in ("MODEL", "TRAIN", "train_steps") if not hasattr(module, name)]
        if missing:
            raise ValueError(f"config file {config} lacks {', '.join(missing)}; see tfdet/zoo/*.py for the form")
        return module
    from tfdet.zoo import get_entry

    return get_entry(config)


def read_label_map(path: str) -> Dict[int, str]:
    with open(path) as handle:
        return {int(k): v for k, v in json.load(handle).items()}


def label_map_beside(pattern: str) -> Optional[Dict[int, str]]:
    """The ``label_map.json`` the converter wrote beside the shards of ``pattern`` (None without one)."""
    import glob

    for path in sorted(glob.glob(pattern.split(",")[0].strip())):
        candidate = os.path.join(os.path.dirname(path), LABEL_MAP)
        if os.path.exists(candidate):
            return read_label_map(candidate)
    return None


def saved_model_dir(model: str) -> str:
    """A SavedModel directory from a SavedModel path or a work dir (its ``saved_model/``)."""
    for candidate in (model, os.path.join(model, SAVED_MODEL)):
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"{model}: neither a SavedModel nor a work dir with {SAVED_MODEL}/ (train one with "
                            f"tfdet train, or export its checkpoint with tfdet export)")


def class_names_of(model: str) -> Dict[int, str]:
    """The label map saved with a SavedModel or work dir ({} when none was saved)."""
    for candidate in (os.path.join(model, LABEL_MAP), os.path.join(saved_model_dir(model), LABEL_MAP)):
        if os.path.exists(candidate):
            return read_label_map(candidate)
    return {}


def restore_work_dir(work_dir: str):
    """The detector of a work dir, rebuilt from ``config.json`` with its newest checkpoint's weights."""
    from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
    from tfdet.weights.detector import restore_detector

    path = os.path.join(work_dir, CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{work_dir}: no {CONFIG}; not a tfdet work dir")
    with open(path) as handle:
        config = json.load(handle)["model"]
    model = OneStageModel(ConfigOneStage(**config), load_pretrained=False).build_model()
    restore_detector(model, os.path.join(work_dir, CHECKPOINTS))
    return model
