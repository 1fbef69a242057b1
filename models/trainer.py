"""The TFX Trainer's run_fn: TFX's inputs turned into one call of tfdet's training driver, then the export.

The training itself is :func:`tfdet.training.train.train_detector`, the same driver ``tfdet train`` runs; this
module only reads what TFX hands over. ``custom_config`` keys: ``model_config`` (a zoo name), ``num_classes``
(checked against the data's classes), ``batch_size`` (global), ``learning_rate``, ``seed``, ``distribution`` (see
tfdet.training.distribute), ``window_spans`` and ``accepted_spans_dir`` (the rolling window of spans, see
tfdet/dataio/spans.py) and ``warm_start_dir``: the serving directory the Pusher writes to. Its newest complete
version is the latest blessed model (only blessed models are pushed); training starts from its weights. Reading it
here, rather than through a Resolver input, keeps the Trainer's inputs unchanged when no new data arrived, so such
a rerun is served from the cache.

Checkpoints go to ``<pipeline root>/Trainer/checkpoints/<inputs key>/``, named by what the run trains on (files,
config, steps, warm start): a Trainer killed in the middle of its work resumes from its newest checkpoint when the
pipeline is run again, and the folder is removed once the model is exported.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras

import tfdet
from models.transform import dataset_statistics
from tfdet.dataio import spans
from tfdet.dataio.tfrecord_files import iter_records
from tfdet.export import export_saved_model
from tfdet.export.serving import latest_version
from tfdet.training.distribute import get_strategy, is_chief
from tfdet.training.train import train_detector

HISTORY_FILE = "training_history.json"
CHECKPOINTS = "checkpoints"


def window_files(fn_args, custom: Dict[str, Any]) -> Tuple[List[str], List[Dict]]:
    """The training files of the rolling window: the newest span (``fn_args.train_files``) and the
    ``window_spans - 1`` accepted spans before it (tfdet/dataio/spans.py); and the spans used."""
    window_spans = int(custom.get("window_spans", 1))
    registry_dir = custom.get("accepted_spans_dir")
    if window_spans == 1 or not registry_dir:
        return list(fn_args.train_files), []
    # train_files are <examples uri>/Split-<split>/*
    uri = os.path.dirname(os.path.dirname(fn_args.train_files[0].rstrip("/")))
    chosen = spans.window(registry_dir, uri, window_spans)
    suffixes = [os.path.relpath(pattern, uri) for pattern in fn_args.train_files]
    return [os.path.join(entry["uri"], suffix) for entry in chosen for suffix in suffixes], chosen


def checkpoint_dir(fn_args, custom: Dict[str, Any], files: Sequence[str], warm_start: Optional[str]) -> str:
    """A work dir named by what this run trains on, beside the Trainer's outputs, so that a rerun of a killed
    Trainer finds its checkpoints and a run on other inputs does not."""
    inputs = {"files": list(files), "steps": int(fn_args.train_steps), "warm_start": warm_start,
              "transform": fn_args.transform_graph_path,
              **{k: v for k, v in custom.items() if k not in ("warm_start_dir", "accepted_spans_dir")}}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
    trainer_root = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip("/")))
    return os.path.join(trainer_root, CHECKPOINTS, key)


def data_classes(fn_args, num_classes: Optional[int],
                 known: Optional[Dict[str, str]] = None) -> Tuple[Dict[str, Any], Dict[int, str]]:
    """Transform's dataset statistics and the class names (id -> name): those the training data pairs with its ids,
    then ``known`` (the spans' label maps) for the classes it lacks; refuses data with more classes than the model
    has (``num_classes``, when given)."""
    if not fn_args.transform_graph_path:
        return {}, {}
    stats = dataset_statistics(fn_args.transform_graph_path, next(iter_records(fn_args.train_files)))
    names = {**{int(k): v for k, v in (known or {}).items()}, **stats.pop("label_map")}
    names = dict(sorted(names.items()))
    if num_classes and (len(stats["class_vocabulary"]) > num_classes or any(label >= num_classes for label in names)):
        raise ValueError(f"the data has {len(stats['class_vocabulary'])} class names {stats['class_vocabulary']} "
                         f"(ids {sorted(names)}) but the model has num_classes={num_classes}")
    return stats, names


def train(fn_args, strategy: Optional[tf.distribute.Strategy] = None,
          callbacks: Sequence[tf_keras.callbacks.Callback] = ()) -> Tuple[Any, Dict[str, Any]]:
    """Trains ``fn_args.train_steps`` steps of ``custom_config``'s model on the window's files (``callbacks`` go to
    ``fit``); returns the model and the training record."""
    custom: Dict[str, Any] = dict(fn_args.custom_config or {})
    strategy = strategy or get_strategy(custom.get("distribution"))
    zoo_model = custom.get("model_config", "cpu_small")
    num_classes = int(custom.get("num_classes") or 0) or None
    files, window = window_files(fn_args, custom)
    stats, names = data_classes(fn_args, num_classes, custom.get("class_names"))
    warm_start = latest_version(custom.get("warm_start_dir"))
    work_dir = checkpoint_dir(fn_args, custom, files, warm_start)
    result = train_detector(zoo_model, ",".join(files), work_dir, num_classes=num_classes, class_names=names,
                            steps=int(fn_args.train_steps), batch_size=custom.get("batch_size"),
                            learning_rate=custom.get("learning_rate"), load_from=warm_start, seed=custom.get("seed"),
                            strategy=strategy, callbacks=callbacks, export=False, verbose=2)
    model = result.pop("model")
    losses = {name: values for name, values in result["history"].items() if name.startswith("loss")}
    record = {**losses, "steps": result["steps"], "batch_size": result["batch_size"], "seed": result["seed"],
              "seconds": round(result["seconds"], 1),
              "warm_started_from": warm_start, "resumed_from": result["resumed_from"],
              "initialisation": result["initialisation"],
              "reinitialised_on_warm_start": result["reinitialised_on_load"],
              "class_names": names, "dataset_statistics": stats, "checkpoints": work_dir,
              "train_spans": [{"span": e["span"], "uri": e["uri"]} for e in window], "train_files": files,
              "distribution": result["distribution"], "model_config": model.config.to_dict(), "zoo_model": zoo_model,
              "code": tfdet.version_info()}
    return model, record


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: trains (see :func:`train`; TensorBoard logs in ``fn_args.model_run_dir``), then the
    chief exports the SavedModel with its class names, writes the training record and removes the checkpoints."""
    strategy = get_strategy(dict(fn_args.custom_config or {}).get("distribution"))
    # TensorBoard logs in the ModelRun artifact: `tensorboard --logdir <pipeline root>/Trainer` shows every run
    board = tf_keras.callbacks.TensorBoard(os.path.join(fn_args.model_run_dir, "logs"), update_freq="epoch")
    model, record = train(fn_args, strategy, callbacks=[board])
    if not is_chief(strategy):
        return
    export_saved_model(model, fn_args.serving_model_dir, class_names=record["class_names"] or None)
    for directory in (os.path.dirname(fn_args.serving_model_dir.rstrip("/")), fn_args.model_run_dir):
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, HISTORY_FILE), "w") as handle:
            json.dump(record, handle, indent=2, default=str)
    tf.io.gfile.rmtree(record["checkpoints"])
