"""Box coders: anchors + regression targets <-> boxes."""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from tfdet.registry import BOX_CODERS


@BOX_CODERS.register(aliases=("deltaxywh",))
class DeltaXYWHCoder:
    """mmdetection's DeltaXYWHBBoxCoder: (dx, dy, dw, dh) relative to the anchor.

    ``dx = (gx - ax) / aw``, ``dy = (gy - ay) / ah``, ``dw = log(gw / aw)``,
    ``dh = log(gh / ah)`` (centres and sizes), each multiplied by its scale
    factor (the TF Object Detection API's convention: ``[10, 10, 5, 5]`` there
    equals mmdetection's ``target_stds=[0.1, 0.1, 0.2, 0.2]``). Decoding clamps
    dw, dh at ``log(1000 / 16)`` as mmdetection does. Deltas are x first, as the
    name says and as mmdetection's heads order their channels; boxes are y first.

    Args:
        scale_factors: multipliers of (dx, dy, dw, dh).
        wh_ratio_clip: decoding clamps |dw|, |dh| at log(1 / wh_ratio_clip).
    """

    def __init__(self, scale_factors: Sequence[float] = (1.0, 1.0, 1.0, 1.0), wh_ratio_clip: float = 16 / 1000):
        if len(scale_factors) != 4 or min(scale_factors) <= 0:
            raise ValueError(f"deltaxywh: scale_factors needs 4 positive values, got {list(scale_factors)}")
        self.scale_factors = [float(s) for s in scale_factors]
        self.wh_ratio_clip = float(wh_ratio_clip)

    @staticmethod
    def _centre_size(boxes: tf.Tensor):
        ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)
        return (xmin + xmax) * 0.5, (ymin + ymax) * 0.5, xmax - xmin, ymax - ymin

    def encode(self, anchors: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
        """Regression targets [..., 4] (dx, dy, dw, dh) of ``boxes`` w.r.t. ``anchors``."""
        ax, ay, aw, ah = self._centre_size(anchors)
        gx, gy, gw, gh = self._centre_size(boxes)
        eps = 1e-6
        deltas = tf.stack([(gx - ax) / aw, (gy - ay) / ah,
                           tf.math.log(tf.maximum(gw, eps) / aw), tf.math.log(tf.maximum(gh, eps) / ah)], axis=-1)
        return deltas * tf.constant(self.scale_factors, deltas.dtype)

    def decode(self, anchors: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
        """Boxes [..., 4] (ymin, xmin, ymax, xmax) from ``deltas`` relative to ``anchors``."""
        deltas = deltas / tf.constant(self.scale_factors, deltas.dtype)
        dx, dy, dw, dh = tf.unstack(deltas, 4, axis=-1)
        limit = abs(math.log(self.wh_ratio_clip))
        dw, dh = tf.clip_by_value(dw, -limit, limit), tf.clip_by_value(dh, -limit, limit)
        ax, ay, aw, ah = self._centre_size(anchors)
        cx, cy = ax + dx * aw, ay + dy * ah
        w, h = aw * tf.exp(dw), ah * tf.exp(dh)
        return tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)

    def get_config(self) -> dict:
        return {"name": "DeltaXYWHCoder", "scale_factors": self.scale_factors, "wh_ratio_clip": self.wh_ratio_clip}


@BOX_CODERS.register(aliases=("DistancePointBBoxCoder",))  # mmdetection's name
class DistancePointCoder:
    """Boxes as distances from a point to their sides (FCOS; mmdetection's DistancePointBBoxCoder).

    ``encode(points, boxes)`` -> (top, left, bottom, right); ``decode(points, distances)`` -> boxes
    (ymin, xmin, ymax, xmax). The order follows tfdet's y-first boxes; mmdetection's is x-first
    (left, top, right, bottom). Points are (y, x).
    """

    def encode(self, points: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
        from tfdet.core.centerness import point_box_distances

        return point_box_distances(points, boxes)

    def decode(self, points: tf.Tensor, distances: tf.Tensor) -> tf.Tensor:
        top, left, bottom, right = tf.unstack(distances, 4, axis=-1)
        y, x = points[..., 0], points[..., 1]
        return tf.stack([y - top, x - left, y + bottom, x + right], axis=-1)

    def get_config(self) -> dict:
        return {"name": "DistancePointCoder"}
