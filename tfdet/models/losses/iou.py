"""IoU-based box losses; they compare decoded boxes, not deltas."""

from __future__ import annotations

import tensorflow as tf

from tfdet.core.box_ops import aligned_iou_and_giou
from tfdet.registry import LOSSES


class _BoxOverlapLoss:
    """``loss_weight * sum((1 - overlap) * weights)``; subclasses choose the overlap (IoU or GIoU)."""

    decodes_boxes = True  # the head decodes predictions before calling
    name = ""
    generalized = False

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-6) -> None:
        self.loss_weight, self.eps = float(loss_weight), float(eps)

    def __call__(self, pred_boxes: tf.Tensor, target_boxes: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        iou, giou = aligned_iou_and_giou(tf.cast(pred_boxes, tf.float32), tf.cast(target_boxes, tf.float32), self.eps)
        overlap = giou if self.generalized else iou
        return self.loss_weight * tf.reduce_sum((1.0 - overlap) * tf.cast(weights, tf.float32))

    def get_config(self) -> dict:
        return {"name": self.name, "loss_weight": self.loss_weight}


@LOSSES.register("IoULoss")
class IoULoss(_BoxOverlapLoss):
    """``1 - IoU`` of predicted and target boxes (linear mode)."""

    name = "IoULoss"


@LOSSES.register("GIoULoss")
class GIoULoss(_BoxOverlapLoss):
    """``1 - GIoU`` (Rezatofighi et al.): also pulls non-overlapping boxes together."""

    name = "GIoULoss"
    generalized = True
