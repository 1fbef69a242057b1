"""RetinaNet-style anchor head: stacked convs per branch, sigmoid classification, box deltas."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras

import tfdet.core  # noqa: F401  (registers assigners, samplers, coders)
import tfdet.models.losses  # noqa: F401  (registers losses)
from tfdet.core.anchors import AnchorGenerator
from tfdet.core.postprocess import class_wise_nms, gather_levels, top_k_per_level
from tfdet.models.layers import activation, group_norm
from tfdet.registry import ASSIGNERS, BOX_CODERS, HEADS, LOSSES, SAMPLERS

DEFAULT_TEST_CFG = {"nms_pre": 1000, "score_thr": 0.05, "nms": {"iou_threshold": 0.5}, "max_per_img": 100}


def _conv(filters: int, name: str, bias_init: float = 0.0) -> tf_keras.layers.Conv2D:
    return tf_keras.layers.Conv2D(filters, 3, padding="same", name=name,
                                  kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.01),
                                  bias_initializer=tf_keras.initializers.Constant(bias_init))


@HEADS.register("AnchorHead", aliases=("RetinaHead",))
class AnchorHead(tf_keras.layers.Layer):
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
        super().__init__(name=kwargs.pop("name", "head"), **kwargs)
        if num_classes < 1:
            raise ValueError(f"AnchorHead: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.anchor_config = dict(anchor_config)
        self.assigner_cfg = dict(assigner or {"name": "max_iou_assigner"})
        self.sampler_cfg = dict(sampler or {"name": "pseudo"})
        self.bbox_encode_cfg = dict(bbox_encode or {"name": "deltaxywh"})
        self.loss_cls_cfg = dict(loss_cls or {"name": "focalloss"})
        self.loss_bbox_cfg = dict(loss_bbox or {"name": "L1Loss"})
        self.act_cfg, self.train_cfg = act_cfg, dict(train_cfg or {})
        self.test_cfg = {**DEFAULT_TEST_CFG, **dict(test_cfg or {})}
        self.stacked_convs, self.feat_channels, self.prior_prob = stacked_convs, feat_channels, prior_prob
        self.norm_cfg = dict(norm_cfg) if norm_cfg else None
        if self.norm_cfg and self.norm_cfg.get("name", "GN") not in ("GN", "GroupNorm"):
            raise ValueError(f"AnchorHead: norm_cfg supports GroupNorm only (name='GN'), got {self.norm_cfg}")

        self.anchor_generator = AnchorGenerator(**self.anchor_config)
        self.assigner = ASSIGNERS.build(self.assigner_cfg)
        self.sampler = SAMPLERS.build(self.sampler_cfg)
        self.coder = BOX_CODERS.build(self.bbox_encode_cfg)
        self.loss_cls = LOSSES.build(self.loss_cls_cfg)
        self.loss_bbox = LOSSES.build(self.loss_bbox_cfg)
        self.act = activation(act_cfg)
        self.num_anchors = self.anchor_generator.num_anchors_per_location
        self.cls_convs = [_conv(feat_channels, f"cls_convs.{i}.conv") for i in range(stacked_convs)]
        self.reg_convs = [_conv(feat_channels, f"reg_convs.{i}.conv") for i in range(stacked_convs)]
        groups = int((self.norm_cfg or {}).get("groups", 32))
        self.cls_norms = [group_norm(groups, name=f"cls_convs.{i}.gn")
                          for i in range(stacked_convs)] if self.norm_cfg else [None] * stacked_convs
        self.reg_norms = [group_norm(groups, name=f"reg_convs.{i}.gn")
                          for i in range(stacked_convs)] if self.norm_cfg else [None] * stacked_convs
        self.retina_cls = _conv(self.num_anchors * self.num_classes, "retina_cls",
                                bias_init=-math.log((1 - prior_prob) / prior_prob))
        self.retina_reg = _conv(self.num_anchors * 4, "retina_reg")

    # -- forward ---------------------------------------------------------------------------------
    def call(self, features: Sequence[tf.Tensor]) -> Tuple[List[tf.Tensor], List[tf.Tensor]]:
        """Per level: cls scores [B, H, W, A*C] (logits) and box deltas [B, H, W, A*4]."""
        if len(features) != self.anchor_generator.num_levels:
            raise ValueError(f"AnchorHead: {len(features)} pyramid levels but {self.anchor_generator.num_levels} "
                             f"anchor strides {self.anchor_generator.strides}; make neck num_nb_outs match")
        cls_scores, bbox_preds = [], []
        for feature in features:
            cls, reg = feature, feature
            for conv, norm in zip(self.cls_convs, self.cls_norms):
                cls = conv(cls)
                cls = self.act(norm(cls) if norm is not None else cls)
            for conv, norm in zip(self.reg_convs, self.reg_norms):
                reg = conv(reg)
                reg = self.act(norm(reg) if norm is not None else reg)
            cls_scores.append(self.retina_cls(cls))
            bbox_preds.append(self.retina_reg(reg))
        return cls_scores, bbox_preds

    def anchors(self, cls_scores: Sequence[tf.Tensor]) -> List[tf.Tensor]:
        """Anchors [H*W*A, 4] (pixels) for each level's output."""
        sizes = []
        for score in cls_scores:  # static sizes make the anchors graph constants
            dynamic = tf.shape(score)
            sizes.append(tuple(score.shape[i] if score.shape[i] is not None else dynamic[i] for i in (1, 2)))
        return self.anchor_generator(sizes)

    def _flatten(self, outputs: Sequence[tf.Tensor], last: int) -> tf.Tensor:
        batch = tf.shape(outputs[0])[0]
        return tf.concat([tf.reshape(tf.cast(o, tf.float32), [batch, -1, last]) for o in outputs], axis=1)

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
        logits = self._flatten(cls_score, self.num_classes)
        deltas = self._flatten(bbox_pred, 4)
        anchors = tf.concat(list(anchor_level), axis=0)
        # one masked padding row, so that a batch whose images all lack boxes (M = 0) still gathers
        target_boxes = tf.pad(tf.cast(target_boxes, tf.float32), [[0, 0], [0, 1], [0, 0]])
        target_labels = tf.pad(tf.cast(target_labels, tf.int32), [[0, 0], [0, 1]])
        mask = tf.pad(tf.cast(mask_labels, tf.bool), [[0, 0], [0, 1]])
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

    # -- inference -------------------------------------------------------------------------------
    def get_detections(self, cls_scores: Sequence[tf.Tensor], bbox_preds: Sequence[tf.Tensor],
                       image_height, image_width, **overrides: Any) -> Dict[str, tf.Tensor]:
        """Top-k per level, decoding, class-wise NMS; see :func:`~tfdet.core.postprocess.class_wise_nms`.

        ``overrides`` replace test_cfg entries (``score_thr``, ``max_per_img``, ...).
        """
        cfg = {**self.test_cfg, **overrides}
        iou_threshold = cfg.get("iou_threshold", cfg["nms"].get("iou_threshold", 0.5))
        batch = tf.shape(cls_scores[0])[0]
        scores, deltas, anchors, picks = [], [], [], []
        for score, pred, level_anchors in zip(cls_scores, bbox_preds, self.anchors(cls_scores)):
            probabilities = tf.sigmoid(tf.reshape(tf.cast(score, tf.float32), [batch, -1, self.num_classes]))
            pick = top_k_per_level(probabilities, int(cfg["nms_pre"]))
            picks.append(pick)
            scores.append(probabilities)
            deltas.append(tf.reshape(tf.cast(pred, tf.float32), [batch, -1, 4]))
            anchors.append(tf.gather(level_anchors, pick))
        candidate_scores = gather_levels(scores, picks)
        candidate_deltas = gather_levels(deltas, picks)
        boxes = self.coder.decode(tf.concat(anchors, axis=1), candidate_deltas)
        return class_wise_nms(boxes, candidate_scores, image_height, image_width, score_thr=float(cfg["score_thr"]),
                              iou_threshold=float(iou_threshold), max_per_img=int(cfg["max_per_img"]))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes, "anchor_config": self.anchor_config, "assigner": self.assigner_cfg,
            "sampler": self.sampler_cfg, "bbox_encode": self.bbox_encode_cfg, "act_cfg": self.act_cfg,
            "loss_cls": self.loss_cls_cfg, "loss_bbox": self.loss_bbox_cfg, "train_cfg": self.train_cfg,
            "test_cfg": self.test_cfg, "stacked_convs": self.stacked_convs, "feat_channels": self.feat_channels,
            "prior_prob": self.prior_prob, "norm_cfg": self.norm_cfg,
        })
        return config
