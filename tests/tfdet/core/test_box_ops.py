import numpy as np
import tensorflow as tf

from tfdet.core.box_ops import aligned_iou_and_giou, box_area, pairwise_giou, pairwise_iou


def test_iou_hand_worked():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = tf.constant([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
    expected = [[1 / 7, 1.0, 0.0], [0.0, 1 / 4, 0.0]]
    np.testing.assert_allclose(pairwise_iou(a, b).numpy(), expected, atol=1e-6)


def test_iou_batched_and_degenerate():
    a = tf.constant([[[0.0, 0.0, 0.0, 0.0]]])
    assert pairwise_iou(a, a).numpy()[0, 0, 0] == 0.0  # zero union: 0, not NaN
    np.testing.assert_allclose(box_area(tf.constant([[0.0, 0.0, 2.0, 3.0], [2.0, 2.0, 1.0, 1.0]])).numpy(), [6.0, 0.0])


def test_giou_hand_worked():
    # disjoint unit boxes at (0,0) and (2,2): hull 3x3 = 9, union 2 -> GIoU = 0 - 7/9
    a = tf.constant([[0.0, 0.0, 1.0, 1.0]])
    b = tf.constant([[2.0, 2.0, 3.0, 3.0]])
    np.testing.assert_allclose(pairwise_giou(a, b).numpy(), [[-7 / 9]], atol=1e-5)
    iou, giou = aligned_iou_and_giou(a, a)
    np.testing.assert_allclose([iou.numpy()[0], giou.numpy()[0]], [1.0, 1.0], atol=1e-5)
