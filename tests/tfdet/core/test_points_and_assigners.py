"""Point priors, the distance coder, centerness, and the FCOS and ATSS assigners on hand-worked scenes."""

import numpy as np
import pytest
import tensorflow as tf

from tfdet.core.assigners import NEGATIVE
from tfdet.core.centerness import centerness, point_box_distances
from tfdet.core.points import PointGenerator
from tfdet.registry import ASSIGNERS, BOX_CODERS


def test_points_are_row_major_at_the_centre_of_each_stride():
    level0, level1 = PointGenerator([8, 16])([(2, 3), (1, 2)])
    np.testing.assert_array_equal(level0.numpy(), [[4, 4], [4, 12], [4, 20], [12, 4], [12, 12], [12, 20]])
    np.testing.assert_array_equal(level1.numpy(), [[8, 8], [8, 24]])
    np.testing.assert_array_equal(PointGenerator([8], offset=0.0)([(1, 2)])[0].numpy(), [[0, 0], [0, 8]])
    with pytest.raises(ValueError, match="2 feature maps but 1 point strides"):
        PointGenerator([8])([(1, 1), (1, 1)])


def test_distance_coder_and_centerness_by_hand():
    coder = BOX_CODERS.build({"name": "DistancePointCoder"})
    point, box = tf.constant([[10.0, 20.0]]), tf.constant([[4.0, 12.0, 30.0, 50.0]])
    distances = coder.encode(point, box)
    np.testing.assert_allclose(distances.numpy(), [[6, 8, 20, 30]])  # top, left, bottom, right
    np.testing.assert_allclose(coder.decode(point, distances).numpy(), box.numpy())
    # sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) = sqrt(8/30 * 6/20)
    np.testing.assert_allclose(centerness(distances).numpy(), [np.sqrt(8 / 30 * 6 / 20)], rtol=1e-6)
    np.testing.assert_allclose(centerness(tf.constant([[5.0, 7.0, 5.0, 7.0]])).numpy(), [1.0])  # the centre
    outside = point_box_distances(tf.constant([[0.0, 0.0]]), box)
    assert float(centerness(outside)[0]) == 0.0


def fcos(points, strides, ranges, boxes, mask=None, **kwargs):
    assigner = ASSIGNERS.build(dict(name="fcos_assigner", **kwargs))
    boxes = tf.constant([boxes], tf.float32)
    mask = tf.ones(boxes.shape[:2], tf.bool) if mask is None else tf.constant([mask])
    result = assigner(tf.constant(points, tf.float32), tf.constant(strides, tf.float32),
                      tf.constant(ranges, tf.float32), boxes, mask)
    return result.gt_index.numpy()[0].tolist()


def test_fcos_assigns_by_regress_range_then_least_area():
    big, small = (0, 0, 100, 100), (20, 20, 40, 40)
    points = [(30, 30), (30, 30), (50, 50)]
    # (30, 30) at stride 8, range [-1, 64]: small's sides are 10 away (in range), big's 70 (out) -> small;
    # at stride 16, range [64, 128]: only big's 70 is in range -> big; (50, 50): big, largest distance 50
    assert fcos(points, [8, 16, 8], [(-1, 64), (64, 128), (-1, 64)], [big, small],
                center_sampling=False) == [1, 0, 0]
    nested = [(0, 0, 60, 60), (10, 10, 50, 50)]  # both hold (30, 30) within range: the smaller area wins
    assert fcos([(30, 30)], [8], [(-1, 64)], nested, center_sampling=False) == [1]
    assert fcos([(30, 30)], [8], [(-1, 64)], nested, mask=[True, False], center_sampling=False) == [0]
    assert fcos([(30, 30)], [8], [(-1, 64)], [(200, 200, 220, 220)]) == [NEGATIVE]


def test_fcos_centre_sampling_keeps_only_points_near_the_box_centre():
    big = (0, 0, 100, 100)
    # (5, 5) at stride 16 lies inside the box with its largest distance 95 in [64, 128]: positive on the
    # whole box, but outside the centre region 50 +- 1.5 * 16
    assert fcos([(5, 5)], [16], [(64, 128)], [big], center_sampling=False) == [0]
    assert fcos([(5, 5)], [16], [(64, 128)], [big], center_sampling=True) == [NEGATIVE]
    assert fcos([(40, 60)], [16], [(-1, 128)], [big], center_sampling=True) == [0]  # within 24 of the centre
    # the region is clipped to the box: a thin box keeps its points only inside itself
    assert fcos([(31, 50), (29, 50)], [16, 16], [(-1, 128)] * 2, [(30, 0, 40, 100)]) == [0, NEGATIVE]


def atss_reference(anchors, level_sizes, boxes, mask, topk):
    """A plain numpy ATSS (the paper's algorithm, mmdetection's choices) for one image."""
    def iou(a, b):
        inter = np.maximum(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0).prod()
        return inter / ((a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter)

    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    best = np.full(len(anchors), -1.0)
    assigned = np.full(len(anchors), NEGATIVE)
    for g, (box, valid) in enumerate(zip(boxes, mask)):
        if not valid:
            continue
        centre = (box[:2] + box[2:]) / 2
        candidates, start = [], 0
        for size in level_sizes:
            order = np.argsort(np.linalg.norm(centres[start:start + size] - centre, axis=1), kind="stable")
            candidates += list(start + order[:min(topk, size)])
            start += size
        overlaps = np.array([iou(anchors[c], box) for c in candidates])
        threshold = overlaps.mean() + overlaps.std(ddof=1)
        for c, overlap in zip(candidates, overlaps):
            inside = min(centres[c][0] - box[0], centres[c][1] - box[1], box[2] - centres[c][0],
                         box[3] - centres[c][1]) > 0.01
            if overlap >= threshold and inside and overlap > best[c]:
                best[c], assigned[c] = overlap, g
    return assigned.tolist()


def test_atss_on_a_hand_worked_scene():
    anchors = np.array([[0, 0, 16, 16], [0, 16, 16, 32], [20, 0, 36, 16], [32, 32, 48, 48],  # level 0
                        [0, 0, 32, 32], [32, 32, 64, 64]], np.float32)  # level 1
    box = np.array([[0, 0, 20, 20]], np.float32)
    # top 2 by centre distance: level 0 -> anchors 0 (IoU 0.64) and 1 (0.108); level 1 -> 4 (0.391) and 5 (0);
    # mean 0.2847 + unbiased std 0.2885 = 0.5732: only anchor 0 passes, and its centre lies in the box
    result = ASSIGNERS.build(dict(name="atss_assigner", topk=2))(tf.constant(anchors), [4, 2], tf.constant([box]),
                                                                  tf.ones([1, 1], tf.bool))
    assert result.gt_index.numpy()[0].tolist() == [0, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE]
    np.testing.assert_allclose(result.max_iou.numpy()[0, 0], 0.64, rtol=1e-6)
    assert atss_reference(anchors, [4, 2], box, [True], 2) == result.gt_index.numpy()[0].tolist()


def test_atss_matches_a_numpy_reference_on_random_scenes():
    rng = np.random.RandomState(3)
    grid = [(y, x, s) for s, n in ((8, 8), (16, 4)) for y in range(n) for x in range(n)]
    anchors = np.array([[y * s, x * s, y * s + 4 * s, x * s + 4 * s] for y, x, s in grid], np.float32)
    for _ in range(3):
        top_left = rng.uniform(0, 50, (2, 4, 2))
        size = rng.uniform(5, 30, (2, 4, 2))
        boxes = np.concatenate([top_left, top_left + size], axis=-1).astype(np.float32)  # [2, 4, 4]
        mask = np.array([[True, True, True, False], [True, False, True, True]])
        result = ASSIGNERS.build(dict(name="atss_assigner", topk=3))(tf.constant(anchors), [64, 16],
                                                                      tf.constant(boxes), tf.constant(mask))
        for b in range(2):
            assert result.gt_index.numpy()[b].tolist() == atss_reference(anchors, [64, 16], boxes[b], mask[b], 3)


def test_assigners_handle_images_without_boxes():
    empty = tf.zeros([2, 0, 4])
    anchors = tf.constant([[0, 0, 16, 16], [16, 16, 32, 32]], tf.float32)
    atss = ASSIGNERS.build(dict(name="atss_assigner"))(anchors, [2], empty, tf.zeros([2, 0], tf.bool))
    assert atss.gt_index.numpy().tolist() == [[NEGATIVE] * 2] * 2
    points = tf.constant([[8, 8], [24, 24]], tf.float32)
    result = ASSIGNERS.build(dict(name="fcos_assigner"))(points, tf.constant([8.0, 8.0]),
                                                          tf.constant([[-1, 64]] * 2, tf.float32), empty,
                                                          tf.zeros([2, 0], tf.bool))
    assert result.gt_index.numpy().tolist() == [[NEGATIVE] * 2] * 2
