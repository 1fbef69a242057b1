"""Training a detector from a config, end to end: the one driver ``tfdet train`` and the TFX Trainer both run.

::

    from tfdet.training.train import train_detector

    result = train_detector("cpu_small", "data/default/span-1/train-*.tfrecord", "runs/cpu_small",
                            eval_data="data/default/span-1/eval-*.tfrecord", epochs=20, seed=0)

It resolves the config (a zoo name or a ``.py`` file), merges the recipe with what the caller changes, builds the
detector under a ``tf.distribute`` strategy, starts it from a checkpoint of the work dir (resume), a trained detector
(``load_from``: fine-tuning, the class count may change) or the config's pretrained backbone, trains with the
config's input pipeline, evaluates with pycocotools and exports a SavedModel that carries its class names. See
:mod:`tfdet.training.work_dir` for the folder's layout.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import tensorflow as tf
import tf_keras

from tfdet.dataio.label_map import label_map_beside, write_label_map
from tfdet.dataio.pipeline import pipeline, training_batches
from tfdet.dataio.tfrecord_files import count_records
from tfdet.evaluation import eval_dataset, evaluate_coco
from tfdet.export import export_saved_model
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.training.callbacks import CheckpointResume, CocoEvaluation
from tfdet.training.distribute import distributed_batches, is_chief, strategy_name
from tfdet.training.optimizers import build_optimizer
from tfdet.training.reproducibility import seed_everything
from tfdet.training.tensorboard import DetectionImages
from tfdet.training.work_dir import (
    CHECKPOINTS,
    CONFIG,
    HISTORY,
    LOGS,
    SAVED_MODEL,
    class_names_of,
    detector_weights,
    load_spec,
    write_json,
)
from tfdet.weights.detector import newest_checkpoint
from tfdet.zoo import configure

# fit's epochs when the length is given in steps: a log line, a checkpoint and TensorBoard scalars every tenth
MAX_STEP_EPOCHS = 10


def initialisation(config: Mapping[str, Any], load_from: Optional[str], resumed: Optional[str]) -> str:
    """How the trained weights started: a resumed checkpoint, a trained detector, a pretrained backbone or nothing."""
    if resumed:
        return f"resumed from {resumed}"
    if load_from:
        return f"warm start from {load_from}"
    checkpoint = (config["backbone"].get("init_cfg") or {}).get("checkpoint")
    return f"pretrained backbone {checkpoint}" if checkpoint else "random init"


def _schedule(data: str, batch_size: int, epochs: Optional[int], steps: Optional[int],
              recipe: Mapping[str, Any]) -> tuple:
    """(epochs, steps per epoch): ``steps`` in at most MAX_STEP_EPOCHS chunks, else epochs over the data."""
    if steps is None and epochs is None and recipe.get("epochs") is None and recipe.get("steps") is not None:
        steps = int(recipe["steps"])
    if steps is not None:
        chunks = max(1, min(MAX_STEP_EPOCHS, int(steps) // 10))
        return chunks, max(1, int(steps) // chunks)
    return int(epochs or recipe.get("epochs") or 12), max(1, math.ceil(count_records(data) / batch_size))


def train_detector(config: str, data: str, work_dir: str, *, eval_data: Optional[str] = None,
                   num_classes: Optional[int] = None, class_names: Optional[Mapping[int, str]] = None,
                   epochs: Optional[int] = None, steps: Optional[int] = None, batch_size: Optional[int] = None,
                   learning_rate: Optional[float] = None, recipe: Optional[Mapping[str, Any]] = None,
                   eval_every: int = 1,
                   pretrained: Union[bool, str, None] = None, load_from: Optional[str] = None,
                   overrides: Optional[Dict[str, Any]] = None, seed: Optional[int] = None,
                   strategy: Optional[tf.distribute.Strategy] = None,
                   callbacks: Sequence[tf_keras.callbacks.Callback] = (), export: bool = True,
                   verbose: Union[int, str] = 1) -> Dict[str, Any]:
    """Trains ``config`` on ``data`` in ``work_dir``; a rerun after an interruption resumes from its checkpoints.

    Args:
        config: a zoo name (``tfdet.list_models()``) or a ``.py`` file with ``MODEL``, ``TRAIN``, ``train_steps``.
        data, eval_data: TFRecord globs, comma-separated for several (``span-1/train-*.tfrecord``; GZIP files
            ending in ``.gz``, as TFX writes them, are read as such).
        work_dir: checkpoints, logs, the config and the SavedModel go here.
        num_classes: default: as many as ``class_names``, else the config's.
        class_names: id -> name; default: the ``label_map.json`` beside ``data``, else that of ``load_from``.
        epochs, steps: how long: ``epochs`` passes over the data, or ``steps`` optimizer steps; default: the
            recipe's ``epochs``, else its ``steps``.
        batch_size, learning_rate: default: the recipe's (``batch_size`` is global: split across replicas).
        recipe: other changes to the config's ``TRAIN`` recipe (``{"warmup_steps": 100, "weight_decay": 0}``).
        eval_every: COCO evaluation (pycocotools) of ``eval_data`` every this many epochs.
        pretrained: as :func:`tfdet.create_model` (not fetched when resuming or loading a detector).
        load_from: a trained detector to start from (a SavedModel, a served version, a work dir, a checkpoint);
            the class logits start afresh when the class count differs; no warm-up then.
        overrides: config changes by dotted key (``{"backbone.frozen_stages": 2}``).
        seed: makes the run repeatable (see :func:`tfdet.training.reproducibility.seed_everything`).
        strategy: a ``tf.distribute`` strategy (default: one device); only the chief writes the work dir's files.
        callbacks: more Keras callbacks for ``fit``.
        export: write the SavedModel (with its label map) to ``work_dir/saved_model``.
        verbose: Keras' progress output (1: a bar per epoch, 2: a line per epoch).

    Returns:
        ``history`` (per-epoch logs: every loss the head names), ``metrics`` (final COCO metrics, with
        ``eval_data``), ``saved_model``, ``resumed_from``, ``initialisation``, ``model`` (the trained detector),
        ``steps``, ``batch_size``, ``seconds``, ``distribution``.
    """
    seed_everything(seed)
    spec = load_spec(config)
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    names = dict(class_names or label_map_beside(data) or (class_names_of(load_from) if load_from else {}))
    model_config = configure(spec.MODEL, config, num_classes or (len(names) if names else None), pretrained,
                             **(overrides or {}))
    explicit = {k: v for k, v in (("batch_size", batch_size), ("learning_rate", learning_rate)) if v is not None}
    recipe = {**spec.TRAIN, **(recipe or {}), **explicit}
    batch = int(recipe["batch_size"])
    epochs, steps_per_epoch = _schedule(data, batch, epochs, steps, recipe)

    tf.io.gfile.makedirs(work_dir)
    checkpoints = os.path.join(work_dir, CHECKPOINTS)
    resumed = newest_checkpoint(checkpoints)
    # a worker other than the chief must write its checkpoints too (Keras's rule), somewhere it deletes after
    worker_dir = None if chief else tempfile.mkdtemp(prefix="tfdet-worker-")
    resume = CheckpointResume(checkpoints, save_to=worker_dir)
    start = initialisation(model_config, load_from, resumed)
    with strategy.scope():
        model = OneStageModel(ConfigOneStage(**model_config),
                              load_pretrained=resumed is None and load_from is None).build_model()
        reinitialised: List[str] = []
        if load_from and not resumed:
            from tfdet.weights.detector import restore_detector

            reinitialised = restore_detector(model, detector_weights(load_from)).reinitialised
        model.compile(optimizer=build_optimizer(recipe, epochs * steps_per_epoch, warmup=load_from is None))
    if chief:
        write_json(os.path.join(work_dir, CONFIG), {"config": config, "model": model.config.to_dict(),
                                                    "recipe": recipe, "data": data, "eval_data": eval_data,
                                                    "epochs": epochs, "steps_per_epoch": steps_per_epoch,
                                                    "load_from": load_from, "seed": seed})
        write_label_map(work_dir, names)

    size = model.config.input_size[0]

    def make_dataset(num_shards: int, shard_index: int, per_replica_batch: int) -> tf.data.Dataset:
        steps_config = spec.train_steps(data, size)
        steps_config[0] = dict(steps_config[0], repeat=True, num_shards=num_shards, shard_index=shard_index)
        return training_batches(pipeline(steps_config), per_replica_batch)

    train = distributed_batches(strategy, batch, make_dataset)
    fit_callbacks: list = [resume]
    evaluation = None
    if eval_data:
        evaluation = eval_dataset(eval_data, model.config.input_size, model.config.mean, model.config.std)
        fit_callbacks += [CocoEvaluation(evaluation, every_n_epochs=eval_every, label_map=names),
                          DetectionImages(os.path.join(work_dir, LOGS), evaluation, names,
                                          every_n_epochs=eval_every)]
    fit_callbacks += [tf_keras.callbacks.TensorBoard(os.path.join(work_dir, LOGS), update_freq="epoch"),
                      *callbacks]
    started = time.perf_counter()
    try:
        history = model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            initial_epoch=resume.initial_epoch, callbacks=fit_callbacks, verbose=verbose)
    finally:
        if worker_dir:
            shutil.rmtree(worker_dir, ignore_errors=True)
    result: Dict[str, Any] = {
        "history": history.history, "seconds": round(time.perf_counter() - started, 1), "resumed_from": resumed,
        "initialisation": start, "reinitialised_on_load": reinitialised, "steps": epochs * steps_per_epoch,
        "batch_size": batch, "seed": seed, "class_names": names,
        "distribution": {"strategy": strategy_name(strategy), "replicas": strategy.num_replicas_in_sync}}
    if evaluation is not None:
        result["metrics"] = evaluate_coco(model, evaluation, names)
    if export and chief:
        result["saved_model"] = export_saved_model(model, os.path.join(work_dir, SAVED_MODEL),
                                                   class_names=names or None)
    if chief:
        write_json(os.path.join(work_dir, HISTORY), result)
    result["model"] = model
    return result
