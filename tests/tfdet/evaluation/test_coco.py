import numpy as np
import pytest

from tfdet.evaluation import coco_metrics


def gt(*boxes, labels=None, image_id=0):
    return {"image_id": image_id, "height": 100, "width": 100, "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "labels": np.array(labels if labels is not None else [0] * len(boxes))}


def det(boxes, scores, classes, image_id=0):
    return {"image_id": image_id, "boxes": np.array(boxes, np.float32).reshape(-1, 4), "scores": np.array(scores),
            "classes": np.array(classes)}


def test_perfect_detections_score_one():
    metrics = coco_metrics([gt([10, 10, 50, 60], labels=[1])], [det([[10, 10, 50, 60]], [0.9], [1])], num_classes=2,
                           label_map={0: "a", 1: "b"})
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["per_class_AP"] == {"b": pytest.approx(1.0)}  # class a has no ground truth


def test_one_shifted_box_hand_worked():
    # ground truth 40 x 40; the detection is shifted by 8 px in x: intersection 40 x 32 = 1280,
    # union 2 * 1600 - 1280 = 1920 -> IoU 2/3. It matches at IoU thresholds 0.50 .. 0.65 (4 of 10):
    # AP@[.5:.95] = 0.4, AP50 = 1, AP75 = 0.
    metrics = coco_metrics([gt([10, 10, 50, 50])], [det([[10, 18, 50, 58]], [0.8], [0])], num_classes=1)
    assert metrics["AP"] == pytest.approx(0.4, abs=1e-6)
    assert (metrics["AP50"], metrics["AP75"]) == (pytest.approx(1.0), pytest.approx(0.0))


def test_wrong_class_and_a_false_positive_ranked_first():
    # two images, one box each; the highest-scoring detection is a false positive, so at recall 0.5 precision is
    # 1/2 and at recall 1 it is 2/3: COCO's 101-point interpolated precision is 2/3 everywhere -> AP50 = 2/3.
    truth = [gt([0, 0, 40, 40], image_id=0), gt([0, 0, 40, 40], image_id=1)]
    found = [det([[0, 0, 40, 40], [60, 60, 90, 90]], [0.7, 0.9], [0, 0], image_id=0),
             det([[0, 0, 40, 40]], [0.8], [0], image_id=1)]
    metrics = coco_metrics(truth, found, num_classes=1)
    assert metrics["AP50"] == pytest.approx(2 / 3, abs=1e-6)
    wrong_class = coco_metrics([gt([0, 0, 40, 40])], [det([[0, 0, 40, 40]], [0.9], [1])], num_classes=2)
    assert wrong_class["AP50"] == pytest.approx(0.0)


def test_no_detections_and_no_ground_truth():
    assert coco_metrics([gt([0, 0, 10, 10])], [det([], [], [])], num_classes=1)["AP"] == 0.0
    assert coco_metrics([gt()], [det([[0, 0, 10, 10]], [0.5], [0])], num_classes=1)["AP"] == -1.0
