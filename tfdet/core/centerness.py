"""Distances from points to box sides, and FCOS's centerness of a point in a box."""

from __future__ import annotations

import tensorflow as tf


def point_box_distances(points: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
    """(top, left, bottom, right) distances from points (y, x) [..., 2] to boxes (ymin, xmin, ymax, xmax) [..., 4].

    Shapes broadcast; all four are positive exactly when the point lies inside the box.
    """
    y, x = points[..., 0], points[..., 1]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)
    return tf.stack([y - ymin, x - xmin, ymax - y, xmax - x], axis=-1)


def centerness(distances: tf.Tensor, eps: float = 1e-12) -> tf.Tensor:
    """``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of (top, left, bottom, right) distances.

    1 at a box's centre, falling towards 0 at its sides (Tian et al., FCOS); 0 for points outside.
    """
    top, left, bottom, right = tf.unstack(tf.maximum(distances, 0.0), 4, axis=-1)
    horizontal = tf.minimum(left, right) / tf.maximum(tf.maximum(left, right), eps)
    vertical = tf.minimum(top, bottom) / tf.maximum(tf.maximum(top, bottom), eps)
    return tf.sqrt(horizontal * vertical)
