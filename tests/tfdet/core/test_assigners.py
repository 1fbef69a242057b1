import numpy as np
import tensorflow as tf

from tfdet.core.assigners import IGNORED, NEGATIVE
from tfdet.registry import ASSIGNERS, SAMPLERS

ANCHORS = tf.constant([
    [0, 0, 10, 10],      # 0: IoU 1 with box 0 -> positive
    [0, 5, 10, 15],      # 1: IoU 50/150 = 0.333 -> negative
    [0, 2, 10, 12],      # 2: IoU 80/120 = 0.667 -> positive
    [0, 3, 10, 13],      # 3: IoU 70/130 = 0.538 -> positive
    [0, 4, 10, 14],      # 4: IoU 60/140 = 0.429 -> ignored
    [50, 50, 60, 60],    # 5: no overlap -> negative
    [100, 100, 110, 110],  # 6: IoU 16/100 with the tiny box 1 -> low-quality positive
], tf.float32)
BOXES = tf.constant([[[0, 0, 10, 10], [100, 100, 104, 104], [0, 0, 10, 10]],
                     [[0, 0, 10, 10], [0, 0, 0, 0], [0, 0, 0, 0]]], tf.float32)
MASK = tf.constant([[True, True, False], [False, False, False]])  # image 2 has no boxes


def assign(**kwargs):
    config = {"name": "max_iou_assigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.0, **kwargs}
    return ASSIGNERS.build(config)(ANCHORS, BOXES, MASK)


def test_positive_negative_ignored_and_low_quality():
    result = assign()
    np.testing.assert_array_equal(result.gt_index.numpy()[0], [0, NEGATIVE, 0, 0, IGNORED, NEGATIVE, 1])
    np.testing.assert_allclose(result.max_iou.numpy()[0], [1, 1 / 3, 2 / 3, 7 / 13, 6 / 14, 0, 0.16], atol=1e-6)


def test_images_without_boxes_are_all_negative_and_padding_never_matches():
    result = assign()
    np.testing.assert_array_equal(result.gt_index.numpy()[1], [NEGATIVE] * 7)


def test_low_quality_matching_can_be_disabled_or_thresholded():
    np.testing.assert_array_equal(assign(match_low_quality=False).gt_index.numpy()[0, 6], NEGATIVE)
    np.testing.assert_array_equal(assign(min_pos_iou=0.2).gt_index.numpy()[0, 6], NEGATIVE)


def test_later_box_wins_a_shared_best_anchor():
    anchors = tf.constant([[0, 0, 10, 10], [0, 20, 10, 30]], tf.float32)
    boxes = tf.constant([[[0, 3, 10, 8], [0, 2, 10, 9]]], tf.float32)  # both best match anchor 0 (IoU < 0.5)
    result = ASSIGNERS.build(dict(name="max_iou_assigner"))(anchors, boxes, tf.constant([[True, True]]))
    np.testing.assert_array_equal(result.gt_index.numpy(), [[1, NEGATIVE]])


def test_pseudo_sampler_weights():
    weights = SAMPLERS.build(dict(name="pseudo"))(assign()).numpy()
    np.testing.assert_array_equal(weights[0], [1, 1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(weights[1], [1] * 7)
