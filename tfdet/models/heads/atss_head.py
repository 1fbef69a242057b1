"""ATSS (Zhang et al., 2020): one anchor per location, chosen by adaptive IoU statistics."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import tensorflow as tf

from tfdet.core.centerness import centerness, point_box_distances
from tfdet.models.heads.anchor_head import AnchorHead
from tfdet.models.heads.base import conv3x3, padded_targets
from tfdet.registry import HEADS, LOSSES


@HEADS.register("ATSSHead")
class ATSSHead(AnchorHead):
    """mmdetection's ATSSHead: RetinaNet's towers and anchors (one square anchor of 8 strides per location),
    the ATSS assigner, a centerness branch on the regression tower, GIoU loss weighted by centerness.

    Outputs per level: class logits [B, H, W, C], deltas [B, H, W, 4], centerness logits [B, H, W, 1].
    Scores at test time are ``sigmoid(cls) * sigmoid(centerness)``. Other arguments as
    :class:`~tfdet.models.heads.anchor_head.AnchorHead`; ``loss_centerness``: binary cross-entropy.
    """

    class_dependent_layers = ("retina_cls",)
    loss_names = ("loss_cls", "loss_bbox", "loss_centerness")

    def __init__(self, num_classes: int, anchor_config: Optional[Mapping[str, Any]] = None,
                 assigner: Optional[Mapping[str, Any]] = None, bbox_encode: Optional[Mapping[str, Any]] = None,
                 loss_bbox: Optional[Mapping[str, Any]] = None, loss_centerness: Optional[Mapping[str, Any]] = None,
                 **kwargs) -> None:
        super().__init__(
            num_classes,
            anchor_config or dict(octave_base_scale=8, scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32, 64, 128]),
            assigner=assigner or {"name": "atss_assigner", "topk": 9},
            bbox_encode=bbox_encode or {"name": "deltaxywh", "scale_factors": [10.0, 10.0, 5.0, 5.0]},
            loss_bbox=loss_bbox or {"name": "GIoULoss", "loss_weight": 2.0}, **kwargs)
        self.loss_centerness_cfg = dict(loss_centerness or {"name": "CrossEntropyLoss"})
        self.loss_centerness = LOSSES.build(self.loss_centerness_cfg)
        self.atss_centerness = conv3x3(self.num_anchors, "atss_centerness")

    def call(self, features: Sequence[tf.Tensor]):
        cls_scores, bbox_preds, centernesses = [], [], []
        for feature in features:
            reg_feature = self.run_tower(feature, self.reg_convs, self.reg_norms)
            cls_scores.append(self.retina_cls(self.run_tower(feature, self.cls_convs, self.cls_norms)))
            bbox_preds.append(self.retina_reg(reg_feature))
            centernesses.append(self.atss_centerness(reg_feature))
        return cls_scores, bbox_preds, centernesses

    def loss(self, outputs, batch: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        cls_scores, bbox_preds, centernesses = outputs
        level_anchors = self.anchors(cls_scores)
        anchors = tf.concat(level_anchors, axis=0)
        boxes, labels, mask = padded_targets(batch)
        sizes = [int(a.shape[0]) if a.shape[0] is not None else tf.shape(a)[0] for a in level_anchors]
        assign = self.assigner(anchors, sizes, boxes, mask)
        positive = tf.cast(assign.positive, tf.float32)
        num_pos = tf.maximum(tf.reduce_sum(positive), 1.0)
        gt_index = tf.maximum(assign.gt_index, 0)
        matched = tf.gather(boxes, gt_index, batch_dims=1)
        targets = tf.one_hot(tf.gather(labels, gt_index, batch_dims=1), self.num_classes) * positive[..., None]
        loss_cls = self.loss_cls(self.flatten(cls_scores, self.num_classes), targets, self.sampler(assign)) / num_pos
        centres = (anchors[:, :2] + anchors[:, 2:]) * 0.5
        centerness_targets = centerness(point_box_distances(centres[None], matched)) * positive
        predicted = self.coder.decode(anchors[None], self.flatten(bbox_preds, 4))
        loss_bbox = self.loss_bbox(predicted, matched, centerness_targets) / tf.maximum(
            tf.reduce_sum(centerness_targets), 1e-6)
        loss_centerness = self.loss_centerness(self.flatten(centernesses, 1)[..., 0], centerness_targets,
                                               positive) / num_pos
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_centerness}

    def predict(self, outputs, image_height, image_width, **overrides: Any) -> Dict[str, tf.Tensor]:
        cls_scores, bbox_preds, centernesses = outputs
        batch = tf.shape(cls_scores[0])[0]
        scores, boxes = [], []
        for score, pred, centre, level_anchors in zip(cls_scores, bbox_preds, centernesses, self.anchors(cls_scores)):
            probability = tf.sigmoid(tf.reshape(tf.cast(score, tf.float32), [batch, -1, self.num_classes]))
            scores.append(probability * tf.sigmoid(tf.reshape(tf.cast(centre, tf.float32), [batch, -1, 1])))
            boxes.append(self.coder.decode(level_anchors[None], tf.reshape(tf.cast(pred, tf.float32), [batch, -1, 4])))
        return self.select_and_nms(scores, boxes, image_height, image_width, **overrides)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"loss_centerness": self.loss_centerness_cfg})
        return config
