"""Binary cross-entropy on logits (FCOS's and ATSS's centerness branch)."""

from __future__ import annotations

import tensorflow as tf

from tfdet.registry import LOSSES


@LOSSES.register("CrossEntropyLoss")
class CrossEntropyLoss:
    """``sum(weights * BCE(logits, targets))`` with targets in [0, 1] (mmdetection's CrossEntropyLoss with
    ``use_sigmoid=True``).

    Args:
        use_sigmoid: must be True (the softmax form is not offered).
        loss_weight: multiplier of the loss.
    """

    def __init__(self, use_sigmoid: bool = True, loss_weight: float = 1.0) -> None:
        if not use_sigmoid:
            raise ValueError("CrossEntropyLoss supports use_sigmoid=True only")
        self.loss_weight = float(loss_weight)

    def __call__(self, logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(targets, tf.float32),
                                                       logits=tf.cast(logits, tf.float32))
        return self.loss_weight * tf.reduce_sum(loss * tf.cast(weights, tf.float32))

    def get_config(self) -> dict:
        return {"name": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": self.loss_weight}
