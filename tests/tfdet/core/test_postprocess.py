import numpy as np
import pytest
import tensorflow as tf

from tfdet.core.postprocess import class_wise_nms


def iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def greedy_nms(boxes, scores, score_thr, iou_thr, max_det):
    """A second method: plain per-class greedy NMS in numpy."""
    kept = []
    for c in range(scores.shape[1]):
        order = [i for i in np.argsort(-scores[:, c], kind="stable") if scores[i, c] > score_thr]
        chosen = []
        for i in order:
            if all(iou(boxes[i], boxes[j]) <= iou_thr for j in chosen):
                chosen.append(i)
        kept += [(scores[i, c], c, i) for i in chosen]
    return sorted(kept, reverse=True)[:max_det]


def test_hand_worked_suppression_is_per_class():
    boxes = tf.constant([[[0, 0, 50, 50], [0, 0, 50, 49], [50, 50, 100, 100]]], tf.float32)
    scores = tf.constant([[[0.9, 0.1], [0.8, 0.7], [0.6, 0.02]]])
    out = class_wise_nms(boxes, scores, 100, 100, score_thr=0.05, iou_threshold=0.5, max_per_img=5)
    assert int(out["num_detections"][0]) == 3  # box 1 is suppressed in class 0 but kept in class 1
    np.testing.assert_allclose(out["detection_scores"][0, :3].numpy(), [0.9, 0.7, 0.6])
    np.testing.assert_array_equal(out["detection_classes"][0, :3].numpy(), [0, 1, 0])
    np.testing.assert_allclose(out["detection_boxes"][0, 1].numpy(), [0, 0, 0.5, 0.49])
    assert np.all(out["detection_boxes"][0, 3:].numpy() == 0)


def test_boxes_are_clipped_to_the_image():
    out = class_wise_nms(tf.constant([[[-10.0, 20.0, 50.0, 250.0]]]), tf.constant([[[0.9]]]), 100, 200, max_per_img=2)
    np.testing.assert_allclose(out["detection_boxes"][0, 0].numpy(), [0.0, 0.1, 0.5, 1.0])


def test_matches_greedy_nms_on_random_boxes():
    rng = np.random.RandomState(1)
    corners = rng.uniform(0, 80, (60, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (60, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, (60, 3)).astype(np.float32)
    out = class_wise_nms(tf.constant(boxes[None]), tf.constant(scores[None]), 120, 120, score_thr=0.3,
                         iou_threshold=0.45, max_per_img=25)
    expected = greedy_nms(boxes, scores, 0.3, 0.45, 25)
    count = int(out["num_detections"][0])
    assert count == len(expected)
    np.testing.assert_allclose(out["detection_scores"][0, :count].numpy(), [e[0] for e in expected], rtol=1e-6)
    np.testing.assert_array_equal(out["detection_classes"][0, :count].numpy(), [e[1] for e in expected])
    np.testing.assert_allclose(out["detection_boxes"][0, :count].numpy() * 120, boxes[[e[2] for e in expected]],
                               atol=1e-3)


def test_box_voting_moves_a_kept_box_to_the_score_weighted_mean_of_its_class_neighbours():
    from tfdet.core.postprocess import box_voting

    boxes = tf.constant([[[10, 10, 50, 50],    # kept for class 0 (0.9)
                          [12, 14, 52, 54],    # class 0, IoU 0.75 with it: votes with 0.6
                          [10, 10, 46, 50],    # class 0, IoU 0.9: votes with 0.3
                          [30, 30, 70, 70],    # class 0, IoU 0.14: too far to vote
                          [11, 11, 51, 51],    # scores 0.02 for class 0 (below score_thr): no vote; kept for class 1
                          [60, 60, 90, 90]]], tf.float32)  # alone: kept, unchanged
    scores = tf.constant([[[0.9, 0.0], [0.6, 0.0], [0.3, 0.0], [0.2, 0.0], [0.02, 0.8], [0.7, 0.0]]])
    found = class_wise_nms(boxes, scores, 100, 100, score_thr=0.05, iou_threshold=0.5, max_per_img=10)
    voted = box_voting(found, boxes, scores, 100, 100, iou_threshold=0.6, score_thr=0.05)
    count = int(found["num_detections"][0])
    assert count == 4
    kept = {(int(c), tuple(np.round(b * 100, 3))): i for i, (c, b) in
            enumerate(zip(found["detection_classes"][0, :count].numpy(), found["detection_boxes"][0, :count].numpy()))}
    neighbours = np.array([[10, 10, 50, 50], [12, 14, 52, 54], [10, 10, 46, 50]], np.float64)
    mean = (np.array([0.9, 0.6, 0.3])[:, None] * neighbours).sum(0) / 1.8
    expected = {(0, (10, 10, 50, 50)): mean, (1, (11, 11, 51, 51)): [11, 11, 51, 51],
                (0, (60, 60, 90, 90)): [60, 60, 90, 90], (0, (30, 30, 70, 70)): [30, 30, 70, 70]}
    for key, row in kept.items():
        np.testing.assert_allclose(voted["detection_boxes"][0, row].numpy() * 100, expected[key], rtol=1e-5)
    for name in ("detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_array_equal(voted[name].numpy(), found[name].numpy())
    np.testing.assert_array_equal(voted["detection_boxes"][0, count:].numpy(), 0.0)  # padding rows stay empty


def gaussian_soft_nms(boxes, scores, score_thr, sigma, max_det):
    """A second method: per-class Gaussian Soft-NMS as the paper writes it (every survivor's score decays by
    exp(-IoU^2 / sigma) after each pick), in numpy."""
    kept = []
    for c in range(scores.shape[1]):
        current = scores[:, c].astype(np.float64).copy()
        alive = list(range(len(boxes)))
        picked = 0
        while alive and picked < max_det:
            best = max(alive, key=lambda i: current[i])
            if current[best] <= score_thr:
                break
            kept.append((current[best], c, best))
            picked += 1
            alive.remove(best)
            for i in alive:
                current[i] *= np.exp(-iou(boxes[best], boxes[i]) ** 2 / sigma)
    return sorted(kept, reverse=True)[:max_det]


def test_soft_nms_decays_an_overlapping_box_instead_of_dropping_it():
    boxes = tf.constant([[[0, 0, 10, 10], [0, 5, 10, 15], [50, 50, 60, 60]]], tf.float32)  # IoU(0, 1) = 1/3
    scores = tf.constant([[[0.9], [0.8], [0.1]]])
    greedy = class_wise_nms(boxes, scores, 100, 100, score_thr=0.05, iou_threshold=0.3, max_per_img=5)
    assert int(greedy["num_detections"][0]) == 2  # box 1 dropped
    soft = class_wise_nms(boxes, scores, 100, 100, score_thr=0.05, iou_threshold=1.0, max_per_img=5,
                          soft_nms_sigma=0.5)
    assert int(soft["num_detections"][0]) == 3
    np.testing.assert_allclose(soft["detection_scores"][0].numpy(),
                               [0.9, 0.8 * np.exp(-(1 / 3) ** 2 / 0.5), 0.1, 0.0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(soft["detection_boxes"][0, :3].numpy() * 100,
                               [[0, 0, 10, 10], [0, 5, 10, 15], [50, 50, 60, 60]], atol=1e-4)
    np.testing.assert_array_equal(soft["detection_boxes"][0, 3:].numpy(), 0.0)
    np.testing.assert_array_equal(soft["detection_classes"][0].numpy(), 0)


@pytest.mark.parametrize("sigma", [-0.5, float("nan")])
def test_soft_nms_sigma_below_zero_is_refused(sigma):
    with pytest.raises(ValueError) as error:
        class_wise_nms(tf.zeros([1, 2, 4]), tf.zeros([1, 2, 1]), 10, 10, soft_nms_sigma=sigma)
    assert str(error.value) == (f"soft_nms_sigma must be 0 (greedy NMS) or above (Gaussian Soft-NMS; 0.5 is the "
                                f"paper's), got {sigma}")


def test_soft_nms_matches_the_papers_algorithm_on_random_boxes():
    rng = np.random.RandomState(2)
    batch = []
    for _ in range(2):  # two images: each is suppressed on its own
        corners = rng.uniform(0, 80, (40, 2))
        batch.append(np.concatenate([corners, corners + rng.uniform(5, 40, (40, 2))], 1).astype(np.float32))
    boxes = np.stack(batch)
    scores = rng.uniform(0, 1, (2, 40, 3)).astype(np.float32)
    out = class_wise_nms(tf.constant(boxes), tf.constant(scores), 120, 120, score_thr=0.2, iou_threshold=1.0,
                         max_per_img=30, soft_nms_sigma=0.5)
    for b in range(2):
        expected = gaussian_soft_nms(boxes[b], scores[b], 0.2, 0.5, 30)
        count = int(out["num_detections"][b])
        assert count == len(expected) == 30
        np.testing.assert_allclose(out["detection_scores"][b, :count].numpy(), [e[0] for e in expected], rtol=1e-4)
        np.testing.assert_array_equal(out["detection_classes"][b, :count].numpy(), [e[1] for e in expected])
        np.testing.assert_allclose(out["detection_boxes"][b, :count].numpy() * 120,
                                   boxes[b][[e[2] for e in expected]], atol=1e-3)

