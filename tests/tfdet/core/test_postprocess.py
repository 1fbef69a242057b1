import numpy as np
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
