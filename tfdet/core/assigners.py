"""Assigners: which ground-truth box (if any) each anchor learns."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from tfdet.core.box_ops import pairwise_iou
from tfdet.registry import ASSIGNERS

NEGATIVE = -1
IGNORED = -2


@dataclass
class AssignResult:
    """Per anchor: ``gt_index`` [B, N] (>= 0 positive, -1 negative, -2 ignored) and its ``max_iou``."""

    gt_index: tf.Tensor
    max_iou: tf.Tensor

    @property
    def positive(self) -> tf.Tensor:
        return self.gt_index >= 0

    @property
    def negative(self) -> tf.Tensor:
        return tf.equal(self.gt_index, NEGATIVE)


@ASSIGNERS.register()
class MaxIoUAssigner:
    """mmdetection's MaxIoUAssigner, vectorised over the batch.

    An anchor whose best IoU is >= ``pos_iou_thr`` is positive for that box;
    below ``neg_iou_thr`` negative; in between ignored. With
    ``match_low_quality`` every box also claims the anchors that overlap it
    best (all ties, as ``gt_max_assign_all``), if that IoU is >= ``min_pos_iou``
    and > 0; when several boxes claim one anchor the later box wins, as in
    mmdetection's loop. Padded boxes (mask false) never match.

    Args:
        pos_iou_thr: IoU for a positive.
        neg_iou_thr: IoU below which an anchor is negative.
        min_pos_iou: least IoU of a low-quality match.
        match_low_quality: give every box its best anchors.
    """

    def __init__(self, pos_iou_thr: float = 0.5, neg_iou_thr: float = 0.4, min_pos_iou: float = 0.0,
                 match_low_quality: bool = True) -> None:
        if not 0.0 <= neg_iou_thr <= pos_iou_thr <= 1.0:
            raise ValueError(f"max_iou_assigner: need 0 <= neg_iou_thr <= pos_iou_thr <= 1, "
                             f"got neg {neg_iou_thr}, pos {pos_iou_thr}")
        self.pos_iou_thr, self.neg_iou_thr = float(pos_iou_thr), float(neg_iou_thr)
        self.min_pos_iou, self.match_low_quality = float(min_pos_iou), bool(match_low_quality)

    def __call__(self, anchors: tf.Tensor, gt_boxes: tf.Tensor, gt_mask: tf.Tensor) -> AssignResult:
        """Assigns anchors [N, 4] to boxes [B, M, 4] with mask [B, M]."""
        valid = tf.cast(gt_mask, tf.bool)[:, None, :]  # [B, 1, M]
        iou = tf.where(valid, pairwise_iou(anchors[None], gt_boxes), -1.0)  # [B, N, M]
        num_gt = tf.shape(gt_boxes)[1]
        has_gt = num_gt > 0
        max_iou = tf.cond(has_gt, lambda: tf.reduce_max(iou, axis=-1), lambda: tf.zeros(tf.shape(iou)[:2]))
        argmax = tf.cond(has_gt, lambda: tf.argmax(iou, axis=-1, output_type=tf.int32),
                         lambda: tf.zeros(tf.shape(iou)[:2], tf.int32))
        gt_index = tf.where(max_iou >= self.pos_iou_thr, argmax,
                            tf.where(max_iou < self.neg_iou_thr, NEGATIVE, IGNORED))
        if self.match_low_quality:
            gt_best = tf.reduce_max(iou, axis=1, keepdims=True)  # [B, 1, M]
            claims = (tf.equal(iou, gt_best) & valid & (gt_best >= self.min_pos_iou) & (gt_best > 0.0))
            index_plus_one = tf.range(1, num_gt + 1, dtype=tf.int32)[None, None, :]
            last_claim = tf.reduce_max(tf.where(claims, index_plus_one, 0), axis=-1)
            gt_index = tf.where(last_claim > 0, last_claim - 1, gt_index)
        return AssignResult(gt_index=gt_index, max_iou=max_iou)

    def get_config(self) -> dict:
        return {"name": "max_iou_assigner", "pos_iou_thr": self.pos_iou_thr, "neg_iou_thr": self.neg_iou_thr,
                "min_pos_iou": self.min_pos_iou, "match_low_quality": self.match_low_quality}
