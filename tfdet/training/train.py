"""Training a detector from a config, end to end: what ``tfdet train`` runs (mmdetection's tools/train.py).

::

    from tfdet.training.train import train_detector

    result = train_detector("cpu_small", "data/default/span-1/train-*.tfrecord", "runs/cpu_small",
                            eval_data="data/default/span-1/eval-*.tfrecord", epochs=20)

Checkpoints every epoch (rerunning the same call after an interruption resumes from the last one),
COCO evaluation every ``eval_every`` epochs, TensorBoard logs, and the SavedModel at the end; see
:mod:`tfdet.training.work_dir` for the folder's layout.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Dict, Optional, Union

import tensorflow as tf
import tf_keras

from tfdet.dataio.pipeline import pipeline, training_batches
from tfdet.evaluation import eval_dataset, evaluate_coco
from tfdet.export import export_saved_model
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.training.callbacks import CheckpointResume, CocoEvaluation
from tfdet.training.optimizers import build_optimizer
from tfdet.training.tensorboard import DetectionImages
from tfdet.training.work_dir import (
    CHECKPOINTS,
    CONFIG,
    HISTORY,
    LABEL_MAP,
    LOGS,
    SAVED_MODEL,
    label_map_beside,
    load_spec,
    write_json,
)
from tfdet.zoo import configure


def count_records(pattern: str) -> int:
    """Examples in the TFRecord files of ``pattern`` (read, not decoded)."""
    files = sorted({f for part in pattern.split(",") for f in tf.io.gfile.glob(part.strip())})
    if not files:
        raise FileNotFoundError(f"no files match {pattern!r}; convert your data with tfdet convert first")
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type=compression))


def train_detector(config: str, data: str, work_dir: str, *, eval_data: Optional[str] = None,
                   num_classes: Optional[int] = None, epochs: Optional[int] = None, batch_size: Optional[int] = None,
                   learning_rate: Optional[float] = None, eval_every: int = 1,
                   pretrained: Union[bool, str, None] = None, overrides: Optional[Dict[str, Any]] = None,
                   verbose: int = 1) -> Dict[str, Any]:
    """Trains ``config`` (a zoo name or a config file) on ``data`` into ``work_dir``; resumes when it has checkpoints.

    Args:
        config: a zoo name (``tfdet.list_models()``) or a ``.py`` file with ``MODEL``, ``TRAIN``, ``train_steps``.
        data, eval_data: TFRecord globs (``span-1/train-*.tfrecord``).
        num_classes: default: the classes of the ``label_map.json`` beside ``data``, else the config's.
        epochs, batch_size, learning_rate: default: the config's recipe.
        eval_every: COCO evaluation (pycocotools) every this many epochs.
        pretrained: as :func:`tfdet.create_model` (not fetched again when resuming).
        overrides: config changes by dotted key (``{"backbone.frozen_stages": 2}``).
        verbose: Keras' progress output (1: a progress bar per epoch).

    Returns:
        ``history`` (per-epoch logs), ``metrics`` (final COCO metrics, when ``eval_data``),
        ``saved_model`` (its path), ``resumed_from`` (the checkpoint, or None).
    """
    spec = load_spec(config)
    label_map = label_map_beside(data) or {}
    classes = num_classes or (len(label_map) if label_map else None)
    model_config = configure(spec.MODEL, config, classes, pretrained, **(overrides or {}))
    recipe = dict(spec.TRAIN)
    recipe.update({k: v for k, v in (("batch_size", batch_size), ("learning_rate", learning_rate)) if v})
    epochs = int(epochs or recipe.get("epochs") or 12)
    batch = int(recipe["batch_size"])
    steps_per_epoch = max(1, math.ceil(count_records(data) / batch))

    os.makedirs(work_dir, exist_ok=True)
    resume = CheckpointResume(os.path.join(work_dir, CHECKPOINTS))
    resumed = tf.train.latest_checkpoint(os.path.join(work_dir, CHECKPOINTS))
    model = OneStageModel(ConfigOneStage(**model_config), load_pretrained=resumed is None).build_model()
    model.compile(optimizer=build_optimizer(recipe, epochs * steps_per_epoch))
    write_json(os.path.join(work_dir, CONFIG), {"config": config, "model": model.config.to_dict(), "recipe": recipe,
                                                "data": data, "eval_data": eval_data, "epochs": epochs})
    write_json(os.path.join(work_dir, LABEL_MAP), {str(k): v for k, v in label_map.items()})

    size = model.config.input_size[0]
    train = training_batches(pipeline(spec.train_steps(data, size)).repeat(), batch)
    callbacks: list = [resume]
    evaluation = None
    if eval_data:
        evaluation = eval_dataset(eval_data, model.config.input_size, model.config.mean, model.config.std)
        callbacks += [CocoEvaluation(evaluation, every_n_epochs=eval_every, label_map=label_map),
                      DetectionImages(os.path.join(work_dir, LOGS), evaluation, label_map, every_n_epochs=eval_every)]
    callbacks.append(tf_keras.callbacks.TensorBoard(os.path.join(work_dir, LOGS), update_freq="epoch"))
    started = time.perf_counter()
    history = model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, initial_epoch=resume.initial_epoch,
                        callbacks=callbacks, verbose=verbose)
    result: Dict[str, Any] = {"history": history.history, "seconds": round(time.perf_counter() - started, 1),
                              "resumed_from": resumed, "steps_per_epoch": steps_per_epoch}
    if evaluation is not None:
        metrics = evaluate_coco(model, evaluation, label_map)
        result["metrics"] = metrics
    result["saved_model"] = export_saved_model(model, os.path.join(work_dir, SAVED_MODEL),
                                               class_names=label_map or None)
    write_json(os.path.join(work_dir, HISTORY), result)
    return result
