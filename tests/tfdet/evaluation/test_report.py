"""detection_report: numbers worked out by hand for a scene whose every error is known."""

import numpy as np
import pytest
from detection_scene import FOUND, NAMES, TRUTH, A, B

from tfdet.evaluation.coco import coco_metrics
from tfdet.evaluation.report import detection_report, match_image, worst_and_best


def test_the_figures_of_a_scene_whose_errors_are_known():
    report = detection_report(TRUTH, FOUND, 3, NAMES)
    # cat: its one true box found first (the wrong-class detection after it counts against precision only once
    # recall is 1) -> AP 1; dog: its only detection hits nothing -> AP 0; eel has no eval box: left out
    assert report["per_class_AP50"] == {"cat": pytest.approx(1.0), "dog": 0.0}
    assert report["AP50"] == pytest.approx(0.5) and report["eval_boxes"] == {"cat": 1, "dog": 2, "eel": 0}
    assert report["pr_curves"]["cat"]["precision"] == [1.0] * 101 and "eel" not in report["pr_curves"]
    assert report["confusion"] == {"cat": {"cat": 1}, "dog": {"cat": 1, "missed": 1}, "eel": {},
                                   "background": {"dog": 1}}
    assert report["images"] == {0: {"true_boxes": 2, "correct": 1, "wrong_class": 1, "missed": 0, "spurious": 1},
                                1: {"true_boxes": 1, "correct": 0, "wrong_class": 0, "missed": 1, "spurious": 0}}
    assert report["num_images"] == 2 and report["num_detections"] == 3


def test_its_coco_numbers_are_evaluates():
    """The card and ``tfdet evaluate`` show the same numbers for the same detections."""
    report, metrics = detection_report(TRUTH, FOUND, 3, NAMES), coco_metrics(TRUTH, FOUND, 3, NAMES)
    for name in ("AP", "AP50", "AP75", "AR1", "AR100"):
        assert report[name] == metrics[name], name
    assert report["per_class_AP"] == metrics["per_class_AP"]


def test_matching_takes_the_best_scoring_detection_first_and_ignores_unconfident_ones():
    truth = {"boxes": np.array([A]), "labels": np.array([1])}
    found = {"boxes": np.array([A, A, B]), "scores": np.array([0.4, 0.9, 0.1]), "classes": np.array([0, 1, 1])}
    assert match_image(truth, found) == {"pairs": [(1, 1)], "missed": [], "spurious": [0]}
    assert match_image(truth, found, confident=0.95) == {"pairs": [], "missed": [1], "spurious": []}


def test_worst_and_best_rank_by_errors():
    images = {i: {"true_boxes": 2, "correct": 2 - e, "wrong_class": 0, "missed": e, "spurious": 0}
              for i, e in enumerate([0, 2, 1, 0])}
    images[4] = {"true_boxes": 0, "correct": 0, "wrong_class": 0, "missed": 0, "spurious": 0}
    assert worst_and_best(images, count=2) == {"worst": [1, 2], "best": [0, 3]}
