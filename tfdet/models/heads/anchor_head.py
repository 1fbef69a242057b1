"""RetinaNet-style anchor head: stacked convs per branch, sigmoid classification, box deltas."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

import tfdet.core  # noqa: F401  (registers assigners, samplers, coders)
import tfdet.models.losses  # noqa: F401  (registers losses)
from tfdet.core.anchors import AnchorGenerator
from tfdet.models.heads.base import DEFAULT_TEST_CFG, DenseHead, conv3x3, padded_targets
from tfdet.registry import ASSIGNERS, BOX_CODERS, HEADS, LOSSES, SAMPLERS

__all__ = ["AnchorHead", "DEFAULT_TEST_CFG"]


@HEADS.register("AnchorHead", aliases=("RetinaHead",))
class AnchorHead(DenseHead):
    """RetinaNet head (shared across pyramid levels).

    Args:
        num_classes: object classes (no background class: sigmoid scores).
        anchor_config: :class:`~tfdet.core.anchors.AnchorGenerator` arguments
            (octave_base_scale, scales_per_octave, ratios, strides, center_offset).
        assigner: assigner config (``max_iou_assigner``).
        sampler: sampler config (``pseudo``).
        bbox_encode: box coder config (``deltaxywh``).
        act_cfg: activation of the stacked convs (``relu``, ``gelu``, ...).
        loss_cls: classification loss config (``focalloss``).
        loss_bbox: regression loss config (``SmoothL1Loss``, ``L1Loss``,
            ``IoULoss``, ``GIoULoss``).
        train_cfg: the seed's training options; ``batch_size`` is recorded
            for reference (the loss handles any batch size).
        test_cfg: post-processing: ``nms_pre`` (top-k per level before NMS),
            ``score_thr``, ``nms.iou_threshold`` (class-wise), ``max_per_img``.
        stacked_convs: 3x3 convs per branch before the predictors.
        feat_channels: channels of the stacked convs.
        prior_prob: initial foreground probability (bias of the classifier).
        norm_cfg: None (RetinaNet) or ``dict(name="GN", groups=32)``: GroupNorm
            after every stacked conv (mmdetection's RetinaHead ``norm_cfg``;
            speeds up training from scratch).
    """

    class_dependent_layers = ("retina_cls",)  # re-initialised when a checkpoint has another class count

    def __init__(self, num_classes: int, anchor_config: Mapping[str, Any],
                 assigner: Mapping[str, Any] = None, sampler: Mapping[str, Any] = None,
                 bbox_encode: Mapping[str, Any] = None, act_cfg: Any = "relu",
                 loss_cls: Mapping[str, Any] = None, loss_bbox: Mapping[str, Any] = None,
                 train_cfg: Optional[Mapping[str, Any]] = None, test_cfg: Optional[Mapping[str, Any]] = None,
                 stacked_convs: int = 4, feat_channels: int = 256, prior_prob: float = 0.01,
                 norm_cfg: Optional[Mapping[str, Any]] = None, **kwargs) -> None:
        super().__init__(num_classes, stacked_convs, feat_channels, act_cfg, norm_cfg, test_cfg, prior_prob, **kwargs)
        self.anchor_config = dict(anchor_config)
        self.assigner_cfg = dict(assigner or {"name": "max_iou_assigner"})
        self.sampler_cfg = dict(sampler or {"name": "pseudo"})
        self.bbox_encode_cfg = dict(bbox_encode or {"name": "deltaxywh"})
        self.loss_cls_cfg = dict(loss_cls or {"name": "focalloss"})
        self.loss_bbox_cfg = dict(loss_bbox or {"name": "L1Loss"})
        self.train_cfg = dict(train_cfg or {})

        self.anchor_generator = AnchorGenerator(**self.anchor_config)
        self.assigner = ASSIGNERS.build(self.assigner_cfg)
        self.sampler = SAMPLERS.build(self.sampler_cfg)
        self.coder = BOX_CODERS.build(self.bbox_encode_cfg)
        self.loss_cls = LOSSES.build(self.loss_cls_cfg)
        self.loss_bbox = LOSSES.build(self.loss_bbox_cfg)
        self.num_anchors = self.anchor_generator.num_anchors_per_location
        self.cls_convs, self.cls_norms = self.conv_tower("cls_convs")
        self.reg_convs, self.reg_norms = self.conv_tower("reg_convs")
        self.retina_cls = self.classifier(self.num_anchors * self.num_classes, "retina_cls")
        self.retina_reg = conv3x3(self.num_anchors * 4, "retina_reg")

    # -- forward ---------------------------------------------------------------------------------
    def call(self, features: Sequence[tf.Tensor]) -> Tuple[List[tf.Tensor], List[tf.Tensor]]:
        """Per level: cls scores [B, H, W, A*C] (logits) and box deltas [B, H, W, A*4]."""
        if len(features) != self.anchor_generator.num_levels:
            raise ValueError(f"AnchorHead: {len(features)} pyramid levels but {self.anchor_generator.num_levels} "
                             f"anchor strides {self.anchor_generator.strides}; make neck num_nb_outs match")
        cls_scores, bbox_preds = [], []
        for feature in features:
            cls_scores.append(self.retina_cls(self.run_tower(feature, self.cls_convs, self.cls_norms)))
            bbox_preds.append(self.retina_reg(self.run_tower(feature, self.reg_convs, self.reg_norms)))
        return cls_scores, bbox_preds

    def anchors(self, cls_scores: Sequence[tf.Tensor]) -> List[tf.Tensor]:
        """Anchors [H*W*A, 4] (pixels) for each level's output."""
        return self.anchor_generator(self.level_sizes(cls_scores))

    # -- training --------------------------------------------------------------------------------
    def loss_fn(self, cls_score: Sequence[tf.Tensor], bbox_pred: Sequence[tf.Tensor],
                anchor_level: Sequence[tf.Tensor], target_boxes: tf.Tensor, target_labels: tf.Tensor,
                mask_labels: tf.Tensor) -> Dict[str, tf.Tensor]:
        """The seed's loss contract.

        Args:
            cls_score, bbox_pred: the per-level outputs of :meth:`call`.
            anchor_level: per-level anchors from :meth:`anchors`.
            target_boxes: [B, M, 4] (ymin, xmin, ymax, xmax) in input pixels.
            target_labels: [B, M] class ids.
            mask_labels: [B, M], true for real boxes (padding is false).

        Returns:
            ``{"loss_cls", "loss_bbox"}``, each summed over anchors and divided
            by the number of positive anchors in the batch (at least 1), so a
            batch without boxes gives a finite classification loss and a zero
            box loss.
        """
        logits = self.flatten(cls_score, self.num_classes)
        deltas = self.flatten(bbox_pred, 4)
        anchors = tf.concat(list(anchor_level), axis=0)
        target_boxes, target_labels, mask = padded_targets(
            {"bboxes": target_boxes, "labels": target_labels, "mask": mask_labels})
        assign = self.assigner(anchors, target_boxes, mask)
        cls_weights = self.sampler(assign)
        positive = tf.cast(assign.positive, tf.float32)
        num_pos = tf.maximum(tf.reduce_sum(positive), 1.0)
        gt_index = tf.maximum(assign.gt_index, 0)
        matched_boxes = tf.gather(target_boxes, gt_index, batch_dims=1)
        matched_labels = tf.gather(target_labels, gt_index, batch_dims=1)
        cls_targets = tf.one_hot(matched_labels, self.num_classes) * positive[..., None]
        loss_cls = self.loss_cls(logits, cls_targets, cls_weights) / num_pos
        if getattr(self.loss_bbox, "decodes_boxes", False):
            predicted = self.coder.decode(anchors[None], deltas)
            loss_bbox = self.loss_bbox(predicted, matched_boxes, positive) / num_pos
        else:
            targets = self.coder.encode(anchors[None], matched_boxes)
            loss_bbox = self.loss_bbox(deltas, targets, positive) / num_pos
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}

    def loss(self, outputs, batch: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """The dense-head contract's loss: :meth:`loss_fn` on this head's anchors."""
        cls_scores, bbox_preds = outputs
        return self.loss_fn(cls_scores, bbox_preds, self.anchors(cls_scores), batch["bboxes"], batch["labels"],
                            batch["mask"])

    # -- inference -------------------------------------------------------------------------------
    def predict(self, outputs, image_height, image_width, **overrides: Any) -> Dict[str, tf.Tensor]:
        """The dense-head contract's detections: top-k per level, decoding, class-wise NMS."""
        cls_scores, bbox_preds = outputs
        batch = tf.shape(cls_scores[0])[0]
        scores, boxes = [], []
        for score, pred, level_anchors in zip(cls_scores, bbox_preds, self.anchors(cls_scores)):
            scores.append(tf.sigmoid(tf.reshape(tf.cast(score, tf.float32), [batch, -1, self.num_classes])))
            boxes.append(self.coder.decode(level_anchors[None], tf.reshape(tf.cast(pred, tf.float32), [batch, -1, 4])))
        return self.select_and_nms(scores, boxes, image_height, image_width, **overrides)

    def get_detections(self, cls_scores: Sequence[tf.Tensor], bbox_preds: Sequence[tf.Tensor],
                       image_height, image_width, **overrides: Any) -> Dict[str, tf.Tensor]:
        """The seed-era name of :meth:`predict` (``overrides`` replace test_cfg entries: ``score_thr``, ...)."""
        return self.predict((cls_scores, bbox_preds), image_height, image_width, **overrides)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "anchor_config": self.anchor_config, "assigner": self.assigner_cfg, "sampler": self.sampler_cfg,
            "bbox_encode": self.bbox_encode_cfg, "loss_cls": self.loss_cls_cfg, "loss_bbox": self.loss_bbox_cfg,
            "train_cfg": self.train_cfg,
        })
        return config
