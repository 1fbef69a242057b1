"""The Trainer's run_fn: builds OneStageModel from the zoo config in custom_config, trains, exports.

custom_config keys: ``model_config`` (a zoo name), ``batch_size``, ``learning_rate``, ``num_classes``
(checked against the data's class vocabulary) and ``warm_start_dir``: the serving directory the Pusher
writes to. Its newest version is the latest blessed model (only blessed models are pushed); the
Trainer restores its weights before training. Reading it here, rather than through a Resolver input,
keeps the Trainer's inputs unchanged when no new data arrived, so such a rerun is served from the cache.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import tensorflow as tf
import tf_keras
from absl import logging

from models.transform import dataset_statistics
from models.zoo import get_entry
from tfdet.dataio.pipeline import pipeline, training_batches
from tfdet.export import export_saved_model
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel

HISTORY_FILE = "training_history.json"


def latest_version(serving_dir: str):
    """The newest numbered version directory under ``serving_dir`` (None when there is none)."""
    if not serving_dir or not tf.io.gfile.isdir(serving_dir):
        return None
    versions = [v.rstrip("/") for v in tf.io.gfile.listdir(serving_dir) if v.rstrip("/").isdigit()]
    return os.path.join(serving_dir, max(versions, key=int)) if versions else None


def warm_start(model: OneStageModel, saved_model_dir: str) -> None:
    """Restores the weights of an exported tfdet SavedModel into ``model`` (same architecture).

    Export folds weight standardisation into the kernels; standardising a standardised kernel gives it
    back, so the restored model computes the same function.
    """
    status = tf.train.Checkpoint(model=model).read(os.path.join(saved_model_dir, "variables", "variables"))
    status.assert_existing_objects_matched()


def _first_example(patterns) -> bytes:
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    return next(iter(tf.data.TFRecordDataset(files[:1], compression_type=compression))).numpy()


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    custom: Dict[str, Any] = dict(fn_args.custom_config or {})
    entry = get_entry(custom.get("model_config", "cpu_small"))
    model_config = dict(entry.MODEL)
    num_classes = int(custom.get("num_classes", model_config["head"]["num_classes"]))
    model_config["head"] = dict(model_config["head"], num_classes=num_classes)
    model = OneStageModel(ConfigOneStage(**model_config)).build_model()

    stats = {}
    if fn_args.transform_graph_path:
        stats = dataset_statistics(fn_args.transform_graph_path, _first_example(fn_args.train_files))
        logging.info("dataset statistics from Transform: %s", stats)
        if len(stats["class_vocabulary"]) > num_classes:
            raise ValueError(f"the data has {len(stats['class_vocabulary'])} class names "
                             f"{stats['class_vocabulary']} but the model has num_classes={num_classes}")

    warm_started = latest_version(custom.get("warm_start_dir"))
    if warm_started:
        warm_start(model, warm_started)
        logging.info("warm start from %s", warm_started)

    batch_size = int(custom.get("batch_size", entry.TRAIN["batch_size"]))
    steps = int(fn_args.train_steps)
    pattern = ",".join(fn_args.train_files)
    train_steps = entry.train_steps(pattern)
    train_steps[0] = dict(train_steps[0], repeat=True)
    batches = training_batches(pipeline(train_steps), batch_size)
    learning_rate = float(custom.get("learning_rate", entry.TRAIN["learning_rate"]))
    warmup = 0 if warm_started else min(100, steps // 10)
    schedule = tf_keras.optimizers.schedules.CosineDecay(
        learning_rate if warmup == 0 else 0.0, decay_steps=steps, warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup)
    model.compile(optimizer=tf_keras.optimizers.Adam(schedule, global_clipnorm=10.0))
    epochs = max(1, min(10, steps // 10))
    history = model.fit(batches, epochs=epochs, steps_per_epoch=steps // epochs, verbose=2)

    export_saved_model(model, fn_args.serving_model_dir)
    record = {"loss": history.history["loss"], "loss_cls": history.history["loss_cls"],
              "loss_bbox": history.history["loss_bbox"], "steps": steps, "batch_size": batch_size,
              "warm_started_from": warm_started, "dataset_statistics": stats, "model_config": model.config.to_dict()}
    for directory in (os.path.dirname(fn_args.serving_model_dir.rstrip("/")), fn_args.model_run_dir):
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, HISTORY_FILE), "w") as handle:
            json.dump(record, handle, indent=2, default=str)
