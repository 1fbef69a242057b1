"""The Trainer's run_fn: builds OneStageModel from the zoo config in custom_config, trains, exports.

custom_config keys: ``model_config`` (a zoo name), ``batch_size``, ``learning_rate``, ``num_classes``
(checked against the data's class vocabulary). ``fn_args.base_model`` (the latest blessed model,
when the pipeline has one) warm-starts the weights.
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

CHECKPOINT_DIR = "checkpoint"  # beside Format-Serving inside the Model artifact
HISTORY_FILE = "training_history.json"


def _checkpoint_prefix(serving_model_dir: str) -> str:
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), CHECKPOINT_DIR, "weights")


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

    warm_started = None
    if fn_args.base_model:
        prefix = _checkpoint_prefix(fn_args.base_model)
        if tf.io.gfile.exists(prefix + ".index"):
            model.load_weights(prefix)
            warm_started = prefix
            logging.info("warm start from %s", prefix)

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
    model.save_weights(_checkpoint_prefix(fn_args.serving_model_dir))
    record = {"loss": history.history["loss"], "loss_cls": history.history["loss_cls"],
              "loss_bbox": history.history["loss_bbox"], "steps": steps, "batch_size": batch_size,
              "warm_started_from": warm_started, "dataset_statistics": stats, "model_config": model.config.to_dict()}
    for directory in (os.path.dirname(fn_args.serving_model_dir.rstrip("/")), fn_args.model_run_dir):
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, HISTORY_FILE), "w") as handle:
            json.dump(record, handle, indent=2, default=str)
