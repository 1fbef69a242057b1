"""ATSS: Adaptive Training Sample Selection (Zhang et al., 2020), as mmdetection's ATSSAssigner."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfdet.core.assigners import NEGATIVE, AssignResult
from tfdet.core.box_ops import pairwise_iou
from tfdet.core.centerness import point_box_distances
from tfdet.registry import ASSIGNERS


@ASSIGNERS.register()
class ATSSAssigner:
    """Per box: the ``topk`` anchors of each level whose centres lie closest to the box centre are
    candidates; a candidate is positive when its IoU with the box reaches the mean plus the standard
    deviation (unbiased, as torch's ``std``) of the candidates' IoUs and its centre lies inside the box
    (by more than ``eps`` pixels). An anchor positive for several boxes takes the one of highest IoU;
    every other anchor is negative. Vectorised over the batch; padded boxes (mask false) never match.

    Args:
        topk: candidates per level and box (9).
        eps: how far inside the box a candidate's centre must lie (mmdetection: 0.01).
    """

    def __init__(self, topk: int = 9, eps: float = 0.01) -> None:
        if topk < 1:
            raise ValueError(f"atss_assigner: topk must be >= 1, got {topk}")
        self.topk, self.eps = int(topk), float(eps)

    def __call__(self, anchors: tf.Tensor, level_sizes: Sequence, gt_boxes: tf.Tensor, gt_mask: tf.Tensor
                 ) -> AssignResult:
        """Assigns anchors [N, 4] -- ``level_sizes`` anchors per level, in order -- to boxes [B, M, 4], mask [B, M]."""
        gt_boxes = tf.cast(gt_boxes, tf.float32)
        valid = tf.cast(gt_mask, tf.bool)
        iou = pairwise_iou(anchors[None], gt_boxes)  # [B, N, M]
        centres = (anchors[:, :2] + anchors[:, 2:]) * 0.5  # [N, 2]
        gt_centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) * 0.5  # [B, M, 2]
        distance = tf.norm(gt_centres[:, :, None, :] - centres[None, None, :, :], axis=-1)  # [B, M, N]
        candidates, start = [], 0
        for size in level_sizes:
            k = min(self.topk, int(size))
            nearest = tf.math.top_k(-distance[:, :, start:start + size], k=k).indices + start
            candidates.append(nearest)
            start += size
        candidates = tf.concat(candidates, axis=-1)  # [B, M, L*k]
        candidate_iou = tf.gather(tf.transpose(iou, [0, 2, 1]), candidates, batch_dims=2)  # [B, M, L*k]
        mean = tf.reduce_mean(candidate_iou, axis=-1, keepdims=True)
        count = tf.cast(tf.shape(candidate_iou)[-1], tf.float32)
        std = tf.sqrt(tf.reduce_sum(tf.square(candidate_iou - mean), axis=-1, keepdims=True)
                      / tf.maximum(count - 1.0, 1.0))
        inside = tf.reduce_min(point_box_distances(tf.gather(centres, candidates), gt_boxes[:, :, None, :]),
                               axis=-1) > self.eps
        positive = (candidate_iou >= mean + std) & inside & valid[..., None]  # [B, M, L*k]

        shape = tf.shape(candidates)
        b, m = tf.meshgrid(tf.range(shape[0]), tf.range(shape[1]), indexing="ij")
        index = tf.stack([tf.broadcast_to(b[..., None], shape), tf.broadcast_to(m[..., None], shape), candidates],
                         axis=-1)
        chosen = tf.tensor_scatter_nd_max(tf.zeros([shape[0], shape[1], tf.shape(anchors)[0]], tf.int32), index,
                                          tf.cast(positive, tf.int32))  # [B, M, N]: 1 where positive
        masked = tf.where(tf.transpose(chosen, [0, 2, 1]) > 0, iou, -1.0)  # [B, N, M]
        num_gt = tf.shape(gt_boxes)[1]
        best = tf.cond(num_gt > 0, lambda: tf.reduce_max(masked, axis=-1), lambda: -tf.ones(tf.shape(iou)[:2]))
        which = tf.cond(num_gt > 0, lambda: tf.argmax(masked, axis=-1, output_type=tf.int32),
                        lambda: tf.zeros(tf.shape(iou)[:2], tf.int32))
        gt_index = tf.where(best >= 0.0, which, NEGATIVE)
        return AssignResult(gt_index=gt_index, max_iou=tf.maximum(best, 0.0))

    def get_config(self) -> dict:
        return {"name": "atss_assigner", "topk": self.topk, "eps": self.eps}
