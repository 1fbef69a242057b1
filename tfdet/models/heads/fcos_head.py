"""FCOS (Tian et al., 2019): anchor-free, one point per location, distances to the box sides."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from tfdet.core.centerness import centerness
from tfdet.core.fcos_assigner import INF
from tfdet.core.points import PointGenerator
from tfdet.models.heads.base import DenseHead, Scale, conv3x3, padded_targets
from tfdet.registry import ASSIGNERS, BOX_CODERS, HEADS, LOSSES


@HEADS.register("FCOSHead")
class FCOSHead(DenseHead):
    """mmdetection's FCOSHead.

    Outputs per level: class logits [B, H, W, C], distances [B, H, W, 4] (top, left, bottom, right;
    in strides with ``norm_on_bbox``, as trained), centerness logits [B, H, W, 1].

    Args:
        num_classes, stacked_convs, feat_channels, act_cfg, norm_cfg, test_cfg, prior_prob: see
            :class:`~tfdet.models.heads.base.DenseHead` (FCOS: GroupNorm towers).
        strides: one per pyramid level.
        regress_ranges: the box-size range of each level (largest point-to-side distance, pixels).
        center_sampling, center_sample_radius: positives only near box centres (FCOS v2: True, 1.5).
        norm_on_bbox: regress distances in units of the level's stride, through a ReLU (FCOS v2).
        centerness_on_reg: the centerness branch sits on the regression tower (FCOS v2).
        loss_cls: focal loss; loss_bbox: IoU or GIoU loss on decoded boxes, weighted by the centerness
            targets; loss_centerness: binary cross-entropy.
    """

    class_dependent_layers = ("conv_cls",)
    loss_names = ("loss_cls", "loss_bbox", "loss_centerness")

    def __init__(self, num_classes: int, strides: Sequence[int] = (8, 16, 32, 64, 128),
                 regress_ranges: Sequence[Sequence[float]] = ((-1, 64), (64, 128), (128, 256), (256, 512),
                                                              (512, INF)),
                 center_sampling: bool = True, center_sample_radius: float = 1.5, norm_on_bbox: bool = True,
                 centerness_on_reg: bool = True, loss_cls: Optional[Mapping[str, Any]] = None,
                 loss_bbox: Optional[Mapping[str, Any]] = None, loss_centerness: Optional[Mapping[str, Any]] = None,
                 stacked_convs: int = 4, feat_channels: int = 256, act_cfg: Any = "relu",
                 norm_cfg: Optional[Mapping[str, Any]] = None, test_cfg: Optional[Mapping[str, Any]] = None,
                 prior_prob: float = 0.01, **kwargs) -> None:
        super().__init__(num_classes, stacked_convs, feat_channels, act_cfg, norm_cfg, test_cfg, prior_prob, **kwargs)
        if len(regress_ranges) != len(strides):
            raise ValueError(f"FCOSHead: {len(regress_ranges)} regress_ranges for {len(strides)} strides")
        self.strides = [int(s) for s in strides]
        self.regress_ranges = [tuple(float(v) for v in pair) for pair in regress_ranges]
        self.center_sampling, self.center_sample_radius = bool(center_sampling), float(center_sample_radius)
        self.norm_on_bbox, self.centerness_on_reg = bool(norm_on_bbox), bool(centerness_on_reg)
        self.loss_cls_cfg = dict(loss_cls or {"name": "focalloss", "gamma": 2.0, "alpha": 0.25})
        self.loss_bbox_cfg = dict(loss_bbox or {"name": "GIoULoss"})
        self.loss_centerness_cfg = dict(loss_centerness or {"name": "CrossEntropyLoss"})
        self.points = PointGenerator(self.strides, offset=0.5)
        self.assigner = ASSIGNERS.build(dict(name="fcos_assigner", regress_ranges=self.regress_ranges,
                                             center_sampling=self.center_sampling,
                                             center_sample_radius=self.center_sample_radius))
        self.coder = BOX_CODERS.build({"name": "DistancePointCoder"})
        self.loss_cls = LOSSES.build(self.loss_cls_cfg)
        self.loss_bbox = LOSSES.build(self.loss_bbox_cfg)
        self.loss_centerness = LOSSES.build(self.loss_centerness_cfg)
        self.cls_convs, self.cls_norms = self.conv_tower("cls_convs")
        self.reg_convs, self.reg_norms = self.conv_tower("reg_convs")
        self.conv_cls = self.classifier(self.num_classes, "conv_cls")
        self.conv_reg = conv3x3(4, "conv_reg")
        self.conv_centerness = conv3x3(1, "conv_centerness")
        self.scales = [Scale(1.0, name=f"scales.{i}") for i in range(len(self.strides))]

    def call(self, features: Sequence[tf.Tensor]) -> Tuple[List[tf.Tensor], List[tf.Tensor], List[tf.Tensor]]:
        if len(features) != len(self.strides):
            raise ValueError(f"FCOSHead: {len(features)} pyramid levels but {len(self.strides)} strides "
                             f"{self.strides}; make neck num_nb_outs match")
        cls_scores, bbox_preds, centernesses = [], [], []
        for feature, scale in zip(features, self.scales):
            cls_feature = self.run_tower(feature, self.cls_convs, self.cls_norms)
            reg_feature = self.run_tower(feature, self.reg_convs, self.reg_norms)
            distances = tf.cast(scale(self.conv_reg(reg_feature)), tf.float32)
            # distances in strides through a ReLU (norm_on_bbox), else exp of the raw output, in pixels
            bbox_preds.append(tf.nn.relu(distances) if self.norm_on_bbox else tf.exp(distances))
            cls_scores.append(self.conv_cls(cls_feature))
            centernesses.append(self.conv_centerness(reg_feature if self.centerness_on_reg else cls_feature))
        return cls_scores, bbox_preds, centernesses

    def priors(self, outputs: Sequence[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Points [N, 2], their strides [N] and regress ranges [N, 2], levels concatenated."""
        sizes = self.level_sizes(outputs)
        points = self.points(sizes)
        strides = tf.concat([tf.fill([tf.shape(p)[0]], float(s)) for p, s in zip(points, self.strides)], axis=0)
        ranges = tf.concat([tf.tile(tf.constant([r], tf.float32), [tf.shape(p)[0], 1])
                            for p, r in zip(points, self.regress_ranges)], axis=0)
        return tf.concat(points, axis=0), strides, ranges

    def loss(self, outputs, batch: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Focal loss over all points / positives; box loss on positives weighted by their centerness target
        (divided by the targets' sum); centerness BCE over positives (mmdetection's FCOSHead.loss)."""
        cls_scores, bbox_preds, centernesses = outputs
        points, strides, ranges = self.priors(cls_scores)
        logits = self.flatten(cls_scores, self.num_classes)
        distances = self.flatten(bbox_preds, 4)
        centerness_logits = self.flatten(centernesses, 1)[..., 0]
        boxes, labels, mask = padded_targets(batch)
        assign = self.assigner(points, strides, ranges, boxes, mask)
        positive = tf.cast(assign.positive, tf.float32)
        num_pos = tf.maximum(tf.reduce_sum(positive), 1.0)
        gt_index = tf.maximum(assign.gt_index, 0)
        matched = tf.gather(boxes, gt_index, batch_dims=1)
        targets = tf.one_hot(tf.gather(labels, gt_index, batch_dims=1), self.num_classes) * positive[..., None]
        loss_cls = self.loss_cls(logits, targets, tf.ones_like(positive)) / num_pos

        target_distances = self.coder.encode(points[None], matched)  # pixels
        centerness_targets = centerness(target_distances) * positive
        scale = strides[None, :, None] if self.norm_on_bbox else 1.0
        predicted_boxes = self.coder.decode(points[None], distances * scale)
        loss_bbox = self.loss_bbox(predicted_boxes, matched, centerness_targets) / tf.maximum(
            tf.reduce_sum(centerness_targets), 1e-6)
        loss_centerness = self.loss_centerness(centerness_logits, centerness_targets, positive) / num_pos
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_centerness}

    def predict(self, outputs, image_height, image_width, **overrides: Any) -> Dict[str, tf.Tensor]:
        """Scores ``sqrt(sigmoid(cls) * sigmoid(centerness))``, boxes from the points, then top-k and NMS."""
        cls_scores, bbox_preds, centernesses = outputs
        batch = tf.shape(cls_scores[0])[0]
        scores, boxes = [], []
        for level, (score, pred, centre, points) in enumerate(
                zip(cls_scores, bbox_preds, centernesses, self.points(self.level_sizes(cls_scores)))):
            probability = tf.sigmoid(tf.reshape(tf.cast(score, tf.float32), [batch, -1, self.num_classes]))
            quality = tf.sigmoid(tf.reshape(tf.cast(centre, tf.float32), [batch, -1, 1]))
            scores.append(tf.sqrt(probability * quality))
            distances = tf.reshape(tf.cast(pred, tf.float32), [batch, -1, 4])
            if self.norm_on_bbox:
                distances = distances * float(self.strides[level])
            boxes.append(self.coder.decode(points[None], distances))
        return self.select_and_nms(scores, boxes, image_height, image_width, **overrides)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"strides": self.strides, "regress_ranges": self.regress_ranges,
                       "center_sampling": self.center_sampling, "center_sample_radius": self.center_sample_radius,
                       "norm_on_bbox": self.norm_on_bbox, "centerness_on_reg": self.centerness_on_reg,
                       "loss_cls": self.loss_cls_cfg, "loss_bbox": self.loss_bbox_cfg,
                       "loss_centerness": self.loss_centerness_cfg})
        return config
