"""Box arithmetic. Boxes are [..., 4] (ymin, xmin, ymax, xmax), y first."""

from __future__ import annotations

import tensorflow as tf


def box_area(boxes: tf.Tensor) -> tf.Tensor:
    """Area of each box (0 for inverted boxes)."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def _intersection(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    top_left = tf.maximum(a[..., :2], b[..., :2])
    bottom_right = tf.minimum(a[..., 2:], b[..., 2:])
    size = tf.maximum(bottom_right - top_left, 0.0)
    return size[..., 0] * size[..., 1]


def pairwise_iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """IoU of every box in ``boxes1`` [..., N, 4] with every box in ``boxes2`` [..., M, 4] -> [..., N, M].

    Leading (batch) dimensions must broadcast. Pairs with zero union give 0.
    """
    a, b = boxes1[..., :, None, :], boxes2[..., None, :, :]
    inter = _intersection(a, b)
    union = box_area(a) + box_area(b) - inter
    return tf.math.divide_no_nan(inter, union)


def aligned_iou_and_giou(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float = 1e-6):
    """IoU and generalised IoU of matching pairs ``boxes1[i]``, ``boxes2[i]`` -> two [...] tensors."""
    inter = _intersection(boxes1, boxes2)
    union = box_area(boxes1) + box_area(boxes2) - inter
    iou = inter / (union + eps)
    hull_min = tf.minimum(boxes1[..., :2], boxes2[..., :2])
    hull_max = tf.maximum(boxes1[..., 2:], boxes2[..., 2:])
    hull = tf.reduce_prod(tf.maximum(hull_max - hull_min, 0.0), axis=-1)
    return iou, iou - (hull - union) / (hull + eps)


def pairwise_giou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Generalised IoU of every pair, [N, 4] x [M, 4] -> [N, M]."""
    a, b = boxes1[:, None, :], boxes2[None, :, :]
    _, giou = aligned_iou_and_giou(tf.broadcast_to(a, tf.broadcast_dynamic_shape(tf.shape(a), tf.shape(b))),
                                   tf.broadcast_to(b, tf.broadcast_dynamic_shape(tf.shape(a), tf.shape(b))))
    return giou

