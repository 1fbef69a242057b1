"""Regression losses on encoded box deltas."""

from __future__ import annotations

import abc

import tensorflow as tf

from tfdet.registry import LOSSES


class _DeltaLoss(abc.ABC):
    """Base: elementwise loss on (pred - target), summed over coordinates, weighted per anchor."""

    decodes_boxes = False  # works on encoded deltas, not boxes

    def __init__(self, loss_weight: float = 1.0) -> None:
        self.loss_weight = float(loss_weight)

    @abc.abstractmethod
    def elementwise(self, diff: tf.Tensor) -> tf.Tensor:
        """The loss of each absolute difference."""

    def __call__(self, pred: tf.Tensor, target: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Sum of the loss over anchors [...] and the 4 coordinates, times ``weights`` [...]."""
        diff = tf.abs(tf.cast(pred, tf.float32) - tf.cast(target, tf.float32))
        per_anchor = tf.reduce_sum(self.elementwise(diff), axis=-1)
        return self.loss_weight * tf.reduce_sum(per_anchor * tf.cast(weights, tf.float32))


@LOSSES.register("SmoothL1Loss")
class SmoothL1Loss(_DeltaLoss):
    """Huber-style: ``0.5 d**2 / beta`` for ``d < beta``, else ``d - 0.5 beta`` (mmdetection's SmoothL1Loss)."""

    def __init__(self, beta: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        if beta <= 0:
            raise ValueError(f"SmoothL1Loss: beta must be positive, got {beta} (use L1Loss for beta 0)")
        self.beta = float(beta)

    def elementwise(self, diff: tf.Tensor) -> tf.Tensor:
        return tf.where(diff < self.beta, 0.5 * diff * diff / self.beta, diff - 0.5 * self.beta)

    def get_config(self) -> dict:
        return {"name": "SmoothL1Loss", "beta": self.beta, "loss_weight": self.loss_weight}


@LOSSES.register("L1Loss")
class L1Loss(_DeltaLoss):
    """``|pred - target|``."""

    def elementwise(self, diff: tf.Tensor) -> tf.Tensor:
        return diff

    def get_config(self) -> dict:
        return {"name": "L1Loss", "loss_weight": self.loss_weight}
