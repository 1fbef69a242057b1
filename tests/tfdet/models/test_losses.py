import math

import numpy as np
import pytest
import tensorflow as tf

from tfdet.registry import LOSSES


def test_focal_loss_closed_form():
    focal = LOSSES.build(dict(name="focalloss", gamma=2.0, alpha=0.25))
    # logit 0 -> p = 0.5: positive 0.25 * 0.5**2 * ln 2, negative 0.75 * 0.5**2 * ln 2
    logits = tf.zeros([1, 2, 2])
    targets = tf.constant([[[1.0, 0.0], [0.0, 0.0]]])
    weights = tf.constant([[1.0, 0.0]])  # the second anchor is ignored
    expected = 0.25 * 0.25 * math.log(2) + 0.75 * 0.25 * math.log(2)
    np.testing.assert_allclose(float(focal(logits, targets, weights)), expected, rtol=1e-6)


def test_focal_loss_matches_its_definition_on_random_values():
    rng = np.random.RandomState(0)
    logits = rng.normal(0, 3, (4, 7, 3)).astype(np.float32)
    targets = (rng.rand(4, 7, 3) < 0.2).astype(np.float32)
    weights = (rng.rand(4, 7) < 0.8).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    p_t = np.where(targets > 0, p, 1 - p)
    alpha_t = np.where(targets > 0, 0.25, 0.75)
    reference = (alpha_t * (1 - p_t) ** 1.5 * -np.log(p_t) * weights[..., None]).sum() * 2.0
    focal = LOSSES.build(dict(name="focalloss", gamma=1.5, loss_weight=2.0))
    np.testing.assert_allclose(float(focal(logits, targets, weights)), reference, rtol=1e-5)


def test_smooth_l1_and_l1():
    pred = tf.constant([[0.05, 0.3, -0.2, 0.0]])
    target = tf.zeros([1, 4])
    smooth = LOSSES.build(dict(name="SmoothL1Loss", beta=0.1))
    # 0.05 < beta: 0.5 * 0.05**2 / 0.1; 0.3 and 0.2 >= beta: d - 0.05
    np.testing.assert_allclose(float(smooth(pred, target, tf.ones([1]))), 0.0125 + 0.25 + 0.15, rtol=1e-6)
    l1 = LOSSES.build(dict(name="L1Loss", loss_weight=2.0))
    np.testing.assert_allclose(float(l1(pred, target, tf.constant([1.0]))), 2 * 0.55, rtol=1e-6)
    assert float(l1(pred, target, tf.constant([0.0]))) == 0.0


def test_iou_and_giou_losses():
    pred = tf.constant([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    target = tf.constant([[2.0, 2.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]])
    iou = LOSSES.build(dict(name="IoULoss"))
    giou = LOSSES.build(dict(name="GIoULoss"))
    np.testing.assert_allclose(float(iou(pred, target, tf.ones([2]))), 1.0 + (1 - 1 / 7), rtol=1e-5)
    # pair 1: 1 - (0 - 7/9); pair 2: hull 9, union 7 -> 1 - (1/7 - 2/9)
    np.testing.assert_allclose(float(giou(pred, target, tf.ones([2]))), (1 + 7 / 9) + (1 - (1 / 7 - 2 / 9)), rtol=1e-5)


def test_loss_config_errors():
    with pytest.raises(ValueError, match="focalloss supports use_sigmoid=True only"):
        LOSSES.build(dict(name="focalloss", use_sigmoid=False))
    with pytest.raises(ValueError, match="SmoothL1Loss: beta must be positive"):
        LOSSES.build(dict(name="SmoothL1Loss", beta=0))
