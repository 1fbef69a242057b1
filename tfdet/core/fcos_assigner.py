"""FCOS's point assignment: a point learns the smallest box that holds it within its level's range."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfdet.core.assigners import NEGATIVE, AssignResult
from tfdet.core.centerness import point_box_distances
from tfdet.registry import ASSIGNERS

INF = 1e8


@ASSIGNERS.register()
class FCOSAssigner:
    """mmdetection FCOSHead's target assignment, vectorised over the batch.

    A point is a candidate for a box when (a) it lies inside the box -- with ``center_sampling``,
    inside the box's centre region: ``center_sample_radius * stride`` around the box centre, clipped
    to the box -- and (b) its largest distance to the box's sides lies in its level's regress range
    ``[lo, hi]``. Among candidates it takes the box of least area; without one it is negative.
    Padded boxes (mask false) never match.

    Args:
        regress_ranges: one (lo, hi) per level, in pixels.
        center_sampling: use the centre region (FCOS v2) rather than the whole box.
        center_sample_radius: the region's half size in strides (1.5).
    """

    def __init__(self, regress_ranges: Sequence[Sequence[float]] = ((-1, 64), (64, 128), (128, 256), (256, 512),
                                                                    (512, INF)),
                 center_sampling: bool = True, center_sample_radius: float = 1.5) -> None:
        self.regress_ranges = [tuple(float(v) for v in pair) for pair in regress_ranges]
        self.center_sampling, self.center_sample_radius = bool(center_sampling), float(center_sample_radius)

    def __call__(self, points: tf.Tensor, strides: tf.Tensor, ranges: tf.Tensor, gt_boxes: tf.Tensor,
                 gt_mask: tf.Tensor) -> AssignResult:
        """Assigns points [N, 2] (y, x) -- with their level's stride [N] and regress range [N, 2] -- to boxes
        [B, M, 4] (pixels) with mask [B, M]."""
        boxes = tf.cast(gt_boxes, tf.float32)[:, None, :, :]  # [B, 1, M, 4]
        distances = point_box_distances(points[None, :, None, :], boxes)  # [B, N, M, 4]
        if self.center_sampling:
            radius = (strides * self.center_sample_radius)[None, :, None]  # [1, N, 1]
            ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)  # [B, 1, M]
            cy, cx = (ymin + ymax) * 0.5, (xmin + xmax) * 0.5
            region = tf.stack([tf.maximum(cy - radius, ymin), tf.maximum(cx - radius, xmin),
                               tf.minimum(cy + radius, ymax), tf.minimum(cx + radius, xmax)], axis=-1)
            inside = tf.reduce_min(point_box_distances(points[None, :, None, :], region), axis=-1) > 0
        else:
            inside = tf.reduce_min(distances, axis=-1) > 0
        largest = tf.reduce_max(distances, axis=-1)  # [B, N, M]
        in_range = (largest >= ranges[None, :, 0:1]) & (largest <= ranges[None, :, 1:2])
        areas = tf.reduce_prod(boxes[..., 2:] - boxes[..., :2], axis=-1)  # [B, 1, M]
        valid = inside & in_range & tf.cast(gt_mask, tf.bool)[:, None, :]
        areas = tf.where(valid, areas, INF)
        num_gt = tf.shape(gt_boxes)[1]
        least = tf.cond(num_gt > 0, lambda: tf.reduce_min(areas, axis=-1), lambda: tf.fill(tf.shape(areas)[:2], INF))
        chosen = tf.cond(num_gt > 0, lambda: tf.argmin(areas, axis=-1, output_type=tf.int32),
                         lambda: tf.zeros(tf.shape(areas)[:2], tf.int32))
        gt_index = tf.where(least < INF, chosen, NEGATIVE)
        return AssignResult(gt_index=gt_index, max_iou=tf.zeros_like(least))

    def get_config(self) -> dict:
        return {"name": "fcos_assigner", "regress_ranges": self.regress_ranges,
                "center_sampling": self.center_sampling, "center_sample_radius": self.center_sample_radius}
