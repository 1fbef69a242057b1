import math

import numpy as np
import pytest
import tensorflow as tf

from tfdet.registry import BOX_CODERS


def test_encode_hand_worked():
    coder = BOX_CODERS.build(dict(name="deltaxywh"))
    anchor = tf.constant([[0.0, 0.0, 10.0, 10.0]])  # centre (5, 5), 10 x 10
    box = tf.constant([[2.0, 4.0, 12.0, 24.0]])  # centre x 14, y 7; w 20, h 10
    np.testing.assert_allclose(coder.encode(anchor, box).numpy(), [[0.9, 0.2, math.log(2.0), 0.0]], atol=1e-6)


def test_round_trip_with_scale_factors():
    coder = BOX_CODERS.build(dict(name="deltaxywh", scale_factors=[10.0, 10.0, 5.0, 5.0]))
    rng = np.random.RandomState(0)
    anchors = np.concatenate([rng.uniform(0, 100, (50, 2)), np.zeros((50, 2))], 1).astype(np.float32)
    anchors[:, 2:] = anchors[:, :2] + rng.uniform(5, 80, (50, 2))
    boxes = np.concatenate([rng.uniform(0, 100, (50, 2)), np.zeros((50, 2))], 1).astype(np.float32)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(5, 80, (50, 2))
    deltas = coder.encode(anchors, boxes)
    np.testing.assert_allclose(coder.decode(anchors, deltas).numpy(), boxes, atol=1e-3)
    plain = BOX_CODERS.build(dict(name="deltaxywh")).encode(anchors, boxes).numpy()
    np.testing.assert_allclose(deltas.numpy(), plain * [10, 10, 5, 5], rtol=1e-5, atol=1e-5)


def test_decode_clamps_size_deltas():
    coder = BOX_CODERS.build(dict(name="deltaxywh"))
    out = coder.decode(tf.constant([[0.0, 0.0, 10.0, 10.0]]), tf.constant([[0.0, 0.0, 10.0, -10.0]])).numpy()
    # dw clamped at log(1000 / 16): width 10 * 62.5; dh at -log(62.5): height 10 / 62.5
    np.testing.assert_allclose(out[0, 3] - out[0, 1], 625.0, rtol=1e-4)
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 0.16, rtol=1e-4)


def test_bad_scale_factors():
    with pytest.raises(ValueError, match=r"deltaxywh: scale_factors needs 4 positive values, got \[1.0, 0.0\]"):
        BOX_CODERS.build(dict(name="deltaxywh", scale_factors=[1.0, 0.0]))
