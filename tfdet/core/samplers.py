"""Samplers: which assigned anchors enter the losses."""

from __future__ import annotations

import tensorflow as tf

from tfdet.core.assigners import AssignResult
from tfdet.registry import SAMPLERS


@SAMPLERS.register(aliases=("pseudo",))
class PseudoSampler:
    """Keeps every positive and negative anchor (RetinaNet: focal loss does the balancing).

    Returns the weight of each anchor in the classification loss: 1 for
    positives and negatives, 0 for ignored anchors.
    """

    def __call__(self, assign: AssignResult) -> tf.Tensor:
        return tf.cast(assign.positive | assign.negative, tf.float32)

    def get_config(self) -> dict:
        return {"name": "PseudoSampler"}
