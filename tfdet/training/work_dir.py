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
from typing import Dict

from tfdet.dataio.label_map import read_label_map
from tfdet.files import write_json  # noqa: F401  (the work dir's writer)

CONFIG, HISTORY = "config.json", "history.json"
CHECKPOINTS, LOGS, SAVED_MODEL = "checkpoints", "logs", "saved_model"


def load_spec(config: str):
    """A zoo entry by name, or a Python config file defining ``MODEL``, ``TRAIN`` and ``train_steps`` -- or naming a
    zoo entry as its ``BASE`` and changing what it changes (see :mod:`tfdet.zoo`)."""
    from tfdet.zoo import get_entry, resolve

    if config.endswith(".py"):
        if not os.path.exists(config):
            raise FileNotFoundError(f"config file {config} does not exist")
        spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(config))[0], config)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return resolve(module, f"config file {config}")
    return get_entry(config)


def saved_model_dir(model: str) -> str:
    """A SavedModel directory from a SavedModel path or a work dir (its ``saved_model/``)."""
    for candidate in (model, os.path.join(model, SAVED_MODEL)):
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"{model}: neither a SavedModel nor a work dir with {SAVED_MODEL}/ (train one with "
                            f"tfdet train, or export its checkpoint with tfdet export)")


def detector_weights(path: str) -> str:
    """Where a trained detector's weights are: a SavedModel (a served version), a work dir (its newest checkpoint,
    else its SavedModel), a folder of checkpoints or a checkpoint prefix."""
    from tfdet.weights.detector import newest_checkpoint

    checkpoints = os.path.join(path, CHECKPOINTS)
    if os.path.isdir(checkpoints) and newest_checkpoint(checkpoints):
        return checkpoints
    if os.path.exists(os.path.join(path, SAVED_MODEL, "saved_model.pb")):
        return os.path.join(path, SAVED_MODEL)
    return path


def class_names_of(model: str) -> Dict[int, str]:
    """The label map saved with a SavedModel, a served version or a work dir ({} when none was saved)."""
    for candidate in (model, os.path.join(model, SAVED_MODEL)):
        found = read_label_map(candidate)
        if found:
            return found
    return {}


def load_trained_detector(path: str):
    """A trained detector rebuilt with its weights: a work dir (``config.json``, its newest checkpoint, else its
    SavedModel) or a SavedModel tfdet exported (``tfdet_model.json``), such as a version the pipeline pushed."""
    from tfdet.export.saved_model import read_model_card
    from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
    from tfdet.weights.detector import restore_detector

    work_dir_config = os.path.join(path, CONFIG)
    if os.path.exists(work_dir_config):
        with open(work_dir_config) as handle:
            config = json.load(handle)["model"]
    else:
        card = read_model_card(path)
        if card is None:
            raise FileNotFoundError(f"{path}: neither a tfdet work dir ({CONFIG}) nor a SavedModel exported by tfdet "
                                    f"(tfdet_model.json); pass a work dir of tfdet train, or a served version")
        config = card["model"]
    model = OneStageModel(ConfigOneStage(**config), load_pretrained=False).build_model()
    restore_detector(model, detector_weights(path))
    return model
