"""AnchorHead.loss_fn against a plain numpy re-implementation, and its edge cases."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdet.registry import HEADS

ANCHOR_CONFIG = dict(octave_base_scale=2, scales_per_octave=1, ratios=[0.5, 1.0, 2.0], strides=[8, 16])


def head(**kwargs):
    config = {"name": "AnchorHead", "num_classes": 3, "anchor_config": ANCHOR_CONFIG, "stacked_convs": 1,
              "feat_channels": 8, "loss_cls": {"name": "focalloss"}, "loss_bbox": {"name": "L1Loss"}, **kwargs}
    return HEADS.build(config)


def numpy_reference(logits, deltas, anchors, boxes, labels, mask, pos=0.5, neg=0.4):
    """Independent reference: MaxIoU assignment (with low-quality matches), focal + L1 over positives."""
    def iou(a, b):
        high, low = np.minimum(a[:, None, 2:], b[None, :, 2:]), np.maximum(a[:, None, :2], b[None, :, :2])
        inter = np.prod(np.clip(high - low, 0, None), axis=-1)
        area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
        return inter / (area(a)[:, None] + area(b)[None, :] - inter)

    total_cls = total_box = 0.0
    num_pos = 0
    for b in range(logits.shape[0]):
        gt = boxes[b][mask[b]]
        gt_labels = labels[b][mask[b]]
        assigned = np.full(len(anchors), -1)
        if len(gt):
            overlaps = iou(anchors, gt)
            best = overlaps.max(1)
            assigned = np.where(best >= pos, overlaps.argmax(1), np.where(best < neg, -1, -2))
            for m in range(len(gt)):
                top = overlaps[:, m].max()
                if top > 0:
                    assigned[overlaps[:, m] == top] = m
        p = 1 / (1 + np.exp(-logits[b].astype(np.float64)))
        target = np.zeros_like(p)
        positive = assigned >= 0
        target[positive, gt_labels[assigned[positive]]] = 1
        p_t = np.where(target > 0, p, 1 - p)
        focal = np.where(target > 0, 0.25, 0.75) * (1 - p_t) ** 2 * -np.log(p_t)
        total_cls += focal[assigned != -2].sum()
        for n in np.nonzero(positive)[0]:
            a, g = anchors[n], gt[assigned[n]]
            aw, ah, gw, gh = a[3] - a[1], a[2] - a[0], g[3] - g[1], g[2] - g[0]
            t = [((g[1] + g[3]) - (a[1] + a[3])) / 2 / aw, ((g[0] + g[2]) - (a[0] + a[2])) / 2 / ah,
                 math.log(gw / aw), math.log(gh / ah)]
            total_box += np.abs(deltas[b, n] - t).sum()
        num_pos += positive.sum()
    num_pos = max(num_pos, 1)
    return total_cls / num_pos, total_box / num_pos


def test_loss_matches_numpy_reference():
    layer = head()
    features = [tf.random.normal([2, 8, 8, 8], seed=1), tf.random.normal([2, 4, 4, 8], seed=2)]
    cls_scores, bbox_preds = layer(features)
    anchors = layer.anchors(cls_scores)
    boxes = np.array([[[8, 8, 40, 24], [30, 30, 62, 62], [0, 0, 0, 0]],
                      [[2, 50, 20, 63], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    labels = np.array([[2, 0, 0], [1, 0, 0]], np.int32)
    mask = np.array([[True, True, False], [True, False, False]])
    losses = layer.loss_fn(cls_scores, bbox_preds, anchors, boxes, labels, mask)
    logits = np.concatenate([c.numpy().reshape(2, -1, 3) for c in cls_scores], 1)
    deltas = np.concatenate([d.numpy().reshape(2, -1, 4) for d in bbox_preds], 1)
    ref_cls, ref_box = numpy_reference(logits, deltas, np.concatenate([a.numpy() for a in anchors]), boxes,
                                       labels, mask)
    np.testing.assert_allclose(float(losses["loss_cls"]), ref_cls, rtol=1e-4)
    np.testing.assert_allclose(float(losses["loss_bbox"]), ref_box, rtol=1e-4)


def test_batch_without_boxes_gives_finite_loss_and_zero_box_loss():
    layer = head(loss_bbox={"name": "GIoULoss"})
    cls_scores, bbox_preds = layer([tf.random.normal([2, 8, 8, 8]), tf.random.normal([2, 4, 4, 8])])
    empty = np.zeros([2, 0, 4], np.float32)
    losses = layer.loss_fn(cls_scores, bbox_preds, layer.anchors(cls_scores), empty, np.zeros([2, 0], np.int32),
                           np.zeros([2, 0], bool))
    assert np.isfinite(float(losses["loss_cls"])) and float(losses["loss_cls"]) > 0
    assert float(losses["loss_bbox"]) == 0.0


def test_classifier_bias_starts_at_the_prior_and_shapes():
    layer = head()
    cls_scores, bbox_preds = layer([tf.zeros([1, 8, 8, 8]), tf.zeros([1, 4, 4, 8])])
    assert [tuple(c.shape) for c in cls_scores] == [(1, 8, 8, 9), (1, 4, 4, 9)]  # A = 3 anchors x 3 classes
    assert [tuple(b.shape) for b in bbox_preds] == [(1, 8, 8, 12), (1, 4, 4, 12)]
    np.testing.assert_allclose(layer.retina_cls.bias.numpy(), -math.log(99), rtol=1e-6)
    np.testing.assert_allclose(tf.sigmoid(cls_scores[0]).numpy(), 0.01, rtol=1e-4)  # zero input: bias only


def test_level_count_must_match_strides():
    with pytest.raises(ValueError, match="3 pyramid levels but 2 anchor strides"):
        head()([tf.zeros([1, 8, 8, 8])] * 3)


def test_box_voting_in_the_test_cfg_moves_boxes_only():
    rng = np.random.RandomState(0)
    outputs = ([tf.constant(rng.normal(0, 2, (1, 8, 8, 9)), tf.float32),
                tf.constant(rng.normal(0, 2, (1, 4, 4, 9)), tf.float32)],
               [tf.constant(rng.normal(0, 0.2, (1, 8, 8, 12)), tf.float32),
                tf.constant(rng.normal(0, 0.2, (1, 4, 4, 12)), tf.float32)])
    plain = head().predict(outputs, 64, 64)
    voted = head(test_cfg={"box_voting_iou": 0.5}).predict(outputs, 64, 64)
    unreachable = head().predict(outputs, 64, 64, box_voting_iou=1.01)  # no candidate overlaps that much
    for name in ("detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_array_equal(voted[name].numpy(), plain[name].numpy())
    assert int(plain["num_detections"][0]) > 10
    assert not np.allclose(voted["detection_boxes"].numpy(), plain["detection_boxes"].numpy())
    np.testing.assert_array_equal(unreachable["detection_boxes"].numpy(), plain["detection_boxes"].numpy())
