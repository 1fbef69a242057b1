"""Keras callbacks for training detectors: COCO mAP per epoch (and checkpoint + resume, from tfdet.models)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
import tf_keras

from tfdet.evaluation.coco import COCO_METRIC_NAMES, evaluate_coco
from tfdet.models.callbacks import CheckpointResume


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


__all__ = ["CheckpointResume", "CocoEvaluation"]
