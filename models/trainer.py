"""The Trainer's run_fn: builds OneStageModel from the zoo config in custom_config, trains, exports.

custom_config keys: ``model_config`` (a zoo name), ``batch_size`` (global), ``learning_rate``,
``num_classes`` (checked against the data's class vocabulary), ``distribution`` (see
tfdet.training.distribute), ``window_spans`` and ``accepted_spans_dir`` (the rolling window of spans, see
components/span_registry.py) and ``warm_start_dir``: the serving directory the Pusher writes to. Its
newest complete version is the latest blessed model (only blessed models are pushed); the Trainer restores
its weights before training. Reading it here, rather than through a Resolver input,
keeps the Trainer's inputs unchanged when no new data arrived, so such a rerun is served from the cache.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras
from absl import logging

import tfdet
from models.transform import dataset_statistics
from tfdet.dataio.pipeline import pipeline, training_batches
from tfdet.export import export_saved_model
from tfdet.export.serving import latest_version
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.training import build_optimizer
from tfdet.training.distribute import distributed_batches, get_strategy, is_chief, strategy_name
from tfdet.weights.detector import restore_detector
from tfdet.zoo import get_entry, model_config

HISTORY_FILE = "training_history.json"


def warm_start(model: OneStageModel, saved_model_dir: str) -> List[str]:
    """Restores the weights of an exported tfdet SavedModel into ``model``; returns the re-initialised
    head layers (the class logits, when the class count changed).

    Export folds weight standardisation into the kernels; standardising a standardised kernel gives it
    back, so the restored model computes the same function.
    """
    return restore_detector(model, saved_model_dir).reinitialised


def _first_example(patterns) -> bytes:
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    first = next(iter(tf.data.TFRecordDataset(files, compression_type=compression)), None)
    if first is None:
        raise ValueError(f"no training examples in {list(patterns)}; the gate should have stopped this span")
    return first.numpy()


def window_files(fn_args, custom: Dict[str, Any]) -> Tuple[List[str], List[Dict]]:
    """The training files of the rolling window: the newest span (``fn_args.train_files``) and the
    ``window_spans - 1`` accepted spans before it (components/span_registry.py); and the spans used."""
    window_spans = int(custom.get("window_spans", 1))
    registry_dir = custom.get("accepted_spans_dir")
    if window_spans == 1 or not registry_dir:
        return list(fn_args.train_files), []
    from components import span_registry

    # train_files are <examples uri>/Split-<split>/*
    uri = os.path.dirname(os.path.dirname(fn_args.train_files[0].rstrip("/")))
    spans = span_registry.window(registry_dir, uri, window_spans)
    suffixes = [os.path.relpath(pattern, uri) for pattern in fn_args.train_files]
    return [os.path.join(entry["uri"], suffix) for entry in spans for suffix in suffixes], spans


def train(fn_args, strategy: Optional[tf.distribute.Strategy] = None,
          callbacks: Sequence[tf_keras.callbacks.Callback] = ()) -> Tuple[OneStageModel, Dict[str, Any]]:
    """Builds the model of ``custom_config`` under ``strategy`` (default: ``custom_config['distribution']``),
    warm-starts it, trains ``fn_args.train_steps`` steps on the window's files (``callbacks`` go to
    ``fit``); returns the model and the training record."""
    custom: Dict[str, Any] = dict(fn_args.custom_config or {})
    strategy = strategy or get_strategy(custom.get("distribution"))
    entry = get_entry(custom.get("model_config", "cpu_small"))
    config = model_config(custom.get("model_config", "cpu_small"), num_classes=custom.get("num_classes"))
    num_classes = int(config["head"]["num_classes"])
    files, spans = window_files(fn_args, custom)

    stats = {}
    if fn_args.transform_graph_path:
        stats = dataset_statistics(fn_args.transform_graph_path, _first_example(fn_args.train_files))
        logging.info("dataset statistics from Transform: %s", stats)
        if len(stats["class_vocabulary"]) > num_classes:
            raise ValueError(f"the data has {len(stats['class_vocabulary'])} class names "
                             f"{stats['class_vocabulary']} but the model has num_classes={num_classes}")

    recipe = dict(entry.TRAIN)
    batch_size = int(custom.get("batch_size") or recipe["batch_size"])
    steps = int(fn_args.train_steps)
    if custom.get("learning_rate") is not None:
        recipe["learning_rate"] = float(custom["learning_rate"])
    warm_started = latest_version(custom.get("warm_start_dir"))
    reinitialised: List[str] = []
    with strategy.scope():
        # a warm start replaces every weight anyway: do not fetch pretrained backbone weights first
        model = OneStageModel(ConfigOneStage(**config), load_pretrained=not warm_started).build_model()
        if warm_started:
            reinitialised = warm_start(model, warm_started)
            logging.info("warm start from %s (re-initialised: %s)", warm_started, reinitialised or "nothing")
        model.compile(optimizer=build_optimizer(recipe, steps, warmup=not warm_started))

    def make_dataset(num_shards: int, shard_index: int, per_replica_batch: int) -> tf.data.Dataset:
        train_steps = entry.train_steps(",".join(files), model.config.input_size[0])
        train_steps[0] = dict(train_steps[0], repeat=True, num_shards=num_shards, shard_index=shard_index)
        return training_batches(pipeline(train_steps), per_replica_batch)

    batches = distributed_batches(strategy, batch_size, make_dataset)
    epochs = max(1, min(10, steps // 10))
    history = model.fit(batches, epochs=epochs, steps_per_epoch=steps // epochs, verbose=2,
                        callbacks=list(callbacks))
    record = {"loss": history.history["loss"], "loss_cls": history.history["loss_cls"],
              "loss_bbox": history.history["loss_bbox"], "steps": steps, "batch_size": batch_size,
              "warm_started_from": warm_started, "reinitialised_on_warm_start": reinitialised,
              "dataset_statistics": stats,
              "train_spans": [{"span": e["span"], "uri": e["uri"]} for e in spans], "train_files": files,
              "distribution": {"strategy": strategy_name(strategy), "replicas": strategy.num_replicas_in_sync},
              "model_config": model.config.to_dict(), "zoo_model": custom.get("model_config", "cpu_small"),
              "code": tfdet.version_info()}
    return model, record


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: trains (see :func:`train`; TensorBoard logs in ``fn_args.model_run_dir``), then the
    chief exports the SavedModel and writes the training record."""
    strategy = get_strategy(dict(fn_args.custom_config or {}).get("distribution"))
    # TensorBoard logs in the ModelRun artifact: `tensorboard --logdir <pipeline root>/Trainer` shows every run
    board = tf_keras.callbacks.TensorBoard(os.path.join(fn_args.model_run_dir, "logs"), update_freq="epoch")
    model, record = train(fn_args, strategy, callbacks=[board])
    if not is_chief(strategy):
        return
    export_saved_model(model, fn_args.serving_model_dir)
    for directory in (os.path.dirname(fn_args.serving_model_dir.rstrip("/")), fn_args.model_run_dir):
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, HISTORY_FILE), "w") as handle:
            json.dump(record, handle, indent=2, default=str)
