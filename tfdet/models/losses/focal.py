"""Sigmoid focal loss (Lin et al., RetinaNet)."""

from __future__ import annotations

import tensorflow as tf

from tfdet.registry import LOSSES


@LOSSES.register()
class FocalLoss:
    """``-alpha_t (1 - p_t)**gamma log(p_t)`` per class, summed; sigmoid only.

    Args:
        use_sigmoid: must be True (softmax focal loss is not offered).
        gamma: focusing parameter.
        alpha: weight of the positive class.
        loss_weight: multiplier of the loss.
    """

    def __init__(self, use_sigmoid: bool = True, gamma: float = 2.0, alpha: float = 0.25, loss_weight: float = 1.0):
        if not use_sigmoid:
            raise ValueError("focalloss supports use_sigmoid=True only (RetinaNet's sigmoid focal loss)")
        self.gamma, self.alpha, self.loss_weight = float(gamma), float(alpha), float(loss_weight)

    def __call__(self, logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Sum over anchors and classes of the weighted loss.

        Args:
            logits: [..., C] float32 logits.
            targets: [..., C] one-hot (all zero for background).
            weights: [...] per-anchor weights (0 ignores an anchor).
        """
        logits = tf.cast(logits, tf.float32)
        targets = tf.cast(targets, tf.float32)
        cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        prob = tf.sigmoid(logits)
        p_t = targets * prob + (1.0 - targets) * (1.0 - prob)
        alpha_t = targets * self.alpha + (1.0 - targets) * (1.0 - self.alpha)
        loss = alpha_t * tf.pow(1.0 - p_t, self.gamma) * cross_entropy
        return self.loss_weight * tf.reduce_sum(loss * tf.cast(weights, tf.float32)[..., None])

    def get_config(self) -> dict:
        return {"name": "FocalLoss", "use_sigmoid": True, "gamma": self.gamma, "alpha": self.alpha,
                "loss_weight": self.loss_weight}
