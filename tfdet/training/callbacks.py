"""Keras callbacks for training detectors: checkpoint + resume, COCO mAP per epoch.

The seed imports :class:`CheckpointResume` from ``tfdet.models.callbacks``, which still works: that name is this
module (``tfdet.MOVED``).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
import tf_keras

from tfdet.evaluation.coco import COCO_METRIC_NAMES, evaluate_coco
from tfdet.weights.detector import newest_checkpoint


class CocoEvaluation(tf_keras.callbacks.Callback):
    """Computes COCO metrics with pycocotools after every ``every_n_epochs`` epochs.

    Adds ``val_AP``, ``val_AP50``, ... to the epoch logs (so History,
    TensorBoard and ModelCheckpoint(monitor="val_AP", mode="max") see them).

    Args:
        dataset: a batched evaluation dataset, e.g. ``tfdet.evaluation.eval_dataset(...)``.
        every_n_epochs: evaluation period.
        label_map: id -> name, for ``per_class_AP`` in :attr:`history`.
        prefix: prefix of the log keys.
        **test_overrides: test_cfg overrides for evaluation (e.g. ``score_thr=0.01``).
    """

    def __init__(self, dataset: tf.data.Dataset, every_n_epochs: int = 1,
                 label_map: Optional[Mapping[int, str]] = None, prefix: str = "val_", **test_overrides: Any) -> None:
        super().__init__()
        self.dataset, self.every_n_epochs, self.label_map, self.prefix = dataset, every_n_epochs, label_map, prefix
        self.test_overrides = test_overrides
        self.history: Dict[int, Dict[str, Any]] = {}

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if (epoch + 1) % self.every_n_epochs:
            return
        metrics = evaluate_coco(self.model, self.dataset, self.label_map, **self.test_overrides)
        self.history[epoch + 1] = metrics
        if logs is not None:
            for name in COCO_METRIC_NAMES:
                logs[self.prefix + name] = metrics[name]
        print(f" - {self.prefix}AP: {metrics['AP']:.4f} - {self.prefix}AP50: {metrics['AP50']:.4f}")


class CheckpointResume(tf_keras.callbacks.Callback):
    """Saves model + optimizer + epoch each epoch and resumes from the newest checkpoint.

    Usage::

        resume = CheckpointResume("runs/exp1/checkpoints")
        model.fit(train_ds, epochs=12, initial_epoch=resume.initial_epoch, callbacks=[resume])

    Run the same lines again after an interruption: the weights and the
    optimizer state are restored at the start of ``fit`` and training goes on
    from the epoch after the last saved one.

    Why not ``tf_keras.callbacks.BackupAndRestore``: it deletes its backup when ``fit`` completes, so a
    finished run cannot be extended with more epochs (``tfdet train ... --epochs N`` again) and leaves
    no checkpoint to export or evaluate (``tfdet export WORK_DIR``); this callback keeps the newest
    ``max_to_keep`` checkpoints for both.

    Args:
        directory: where checkpoints go (created if missing) and are restored from.
        max_to_keep: checkpoints kept.
        every_n_epochs: save period.
        save_to: where this process writes its checkpoints instead (default: ``directory``): the non-chief workers
            of a multi-worker run take part in every save, as TensorFlow requires, but write to a folder of their
            own, so that only the chief's copy is the one restored.
    """

    def __init__(self, directory: str, max_to_keep: int = 3, every_n_epochs: int = 1,
                 save_to: Optional[str] = None) -> None:
        super().__init__()
        self.directory, self.max_to_keep, self.every_n_epochs = directory, max_to_keep, every_n_epochs
        self.save_to = save_to or directory
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._manager: Optional[tf.train.CheckpointManager] = None
        self.restored_from: Optional[str] = None

    @property
    def initial_epoch(self) -> int:
        """The epoch the newest checkpoint ended (0 without one): pass it to ``fit``."""
        latest = newest_checkpoint(self.directory)
        if latest is None:
            return 0
        return int(tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))

    def _checkpoint_manager(self) -> tf.train.CheckpointManager:
        if self._manager is None:
            checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer, epoch=self._epoch)
            self._manager = tf.train.CheckpointManager(checkpoint, self.save_to, max_to_keep=self.max_to_keep)
        return self._manager

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        latest = newest_checkpoint(self.directory)
        if latest and self.save_to == self.directory:
            record_checkpoint(self.directory, latest)
        manager = self._checkpoint_manager()
        if latest:
            if not self.model.built and hasattr(self.model, "build_model"):
                self.model.build_model()
            # the optimizer's slots are restored when its first step creates them; a resumed run with no
            # step left never creates them, which is no reason for TensorFlow's unrestored-values warnings
            manager.checkpoint.restore(latest).expect_partial()
            self.restored_from = latest
            print(f"CheckpointResume: restored {latest} (epoch {int(self._epoch.numpy())})")

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._epoch.assign(epoch + 1)
        if (epoch + 1) % self.every_n_epochs == 0:
            self._checkpoint_manager().save(checkpoint_number=epoch + 1)

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        # with an EMA of the weights, fit swaps the average in after the last epoch's save: the newest checkpoint
        # is saved again so that what is exported or evaluated from the work dir is the model fit returned
        if getattr(self.model.optimizer, "use_ema", False) and self._manager is not None:
            self._manager.save(checkpoint_number=int(self._epoch.numpy()))


def record_checkpoint(directory: str, prefix: str) -> None:
    """Adds ``prefix`` to ``directory``'s ``checkpoint`` file when a killed process saved it without recording it:
    the ``CheckpointManager`` built next then counts it in ``max_to_keep`` and deletes it in turn."""
    state = tf.train.get_checkpoint_state(directory)
    kept = list(state.all_model_checkpoint_paths) if state else []
    if os.path.basename(prefix) in {os.path.basename(path) for path in kept}:
        return
    stamps = list(state.all_model_checkpoint_timestamps) if state else []
    tf.compat.v1.train.update_checkpoint_state(
        directory, prefix, all_model_checkpoint_paths=kept + [prefix],
        all_model_checkpoint_timestamps=stamps + [time.time()] if len(stamps) == len(kept) else None,
        last_preserved_timestamp=state.last_preserved_timestamp if state else None)


__all__ = ["CheckpointResume", "CocoEvaluation"]
