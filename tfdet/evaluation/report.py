"""Everything a model card shows of an evaluation, from one pycocotools run: the COCO numbers, each class's AP@0.5
and its precision-recall curve, a confusion table of matched detections and each image's errors.

The pipeline's blessing (components/baseline_blessing.py) decides on :func:`detection_report`'s numbers and keeps
the report, so the card shows what the decision used, not a second computation; ``tfdet report`` calls the same
function.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from tfdet.evaluation.coco import COCO_METRIC_NAMES, _coco_ground_truth, _evaluate, _per_class, coco_results

CONFIDENT = 0.3  # the score from which a detection counts in the confusion table and the per-image errors
MATCH_IOU = 0.5


def _iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (ymin, xmin, ymax, xmax) boxes, [N, M]."""
    if not len(boxes) or not len(others):
        return np.zeros([len(boxes), len(others)])
    top = np.maximum(boxes[:, None, 0], others[None, :, 0])
    left = np.maximum(boxes[:, None, 1], others[None, :, 1])
    bottom = np.minimum(boxes[:, None, 2], others[None, :, 2])
    right = np.minimum(boxes[:, None, 3], others[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    return inter / np.maximum(area(boxes)[:, None] + area(others)[None] - inter, 1e-12)


def match_image(truth: Mapping[str, Any], found: Mapping[str, Any], confident: float = CONFIDENT,
                iou: float = MATCH_IOU) -> Dict[str, Any]:
    """Greedy matching of one image's confident detections to its true boxes, any class, the best-scoring first:
    ``pairs`` (true class, detected class) of the matches, ``missed`` true classes, ``spurious`` detected classes."""
    keep = np.asarray(found["scores"]) >= confident
    boxes = np.asarray(found["boxes"], np.float64).reshape(-1, 4)[keep]
    classes = np.asarray(found["classes"]).reshape(-1)[keep]
    order = np.argsort(-np.asarray(found["scores"])[keep], kind="stable")
    true_boxes = np.asarray(truth["boxes"], np.float64).reshape(-1, 4)
    labels = [int(v) for v in np.asarray(truth["labels"]).reshape(-1)]
    overlaps = _iou(boxes, true_boxes)
    free, pairs, spurious = set(range(len(labels))), [], []
    for d in order:
        candidates = [t for t in free if overlaps[d, t] >= iou]
        if not candidates:
            spurious.append(int(classes[d]))
            continue
        best = max(candidates, key=lambda t: overlaps[d, t])
        free.discard(best)
        pairs.append((labels[best], int(classes[d])))
    return {"pairs": pairs, "missed": [labels[t] for t in sorted(free)], "spurious": spurious}


def detection_report(ground_truth: Sequence[Mapping[str, Any]], detections: Sequence[Mapping[str, Any]],
                     num_classes: int, label_map: Optional[Mapping[int, str]] = None) -> Dict[str, Any]:
    """The evaluation's figures by one pycocotools run (IoU 0.50:0.95), in pixels.

    Returns:
        The 12 COCO numbers (``AP``, ``AP50``, ..., ``AR100``, ...), ``per_class_AP`` (mAP@[.5:.95]) and
        ``per_class_AP50`` (AP@0.5, what blessing judges classes by) for the classes with eval boxes,
        ``eval_boxes`` per class name, ``pr_curves`` (each class's precision at 101 recall points, IoU 0.5),
        ``confusion`` ({true name: {detected name, "missed": n}} plus "background": {detected name: n}, detections
        scoring at least :data:`CONFIDENT` matched at IoU 0.5 whatever their class), ``images`` (per image id:
        true boxes, matched, missed, spurious) and ``num_images``, ``num_detections``.
    """
    names = {i: (label_map or {}).get(i, str(i)) for i in range(num_classes)}
    gt = _coco_ground_truth(ground_truth, names)
    results = coco_results(detections)
    counts = {name: 0 for name in names.values()}
    for image in ground_truth:
        for label in np.asarray(image["labels"]).reshape(-1):
            counts[names[int(label)]] += 1
    report: Dict[str, Any] = {"num_images": len(ground_truth), "num_detections": len(results), "eval_boxes": counts,
                              "per_class_AP": {}, "per_class_AP50": {}, "pr_curves": {}}
    if results and gt.dataset["annotations"]:
        evaluator = _evaluate(gt, results)
        report.update({name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats)})
        report["per_class_AP"] = _per_class(evaluator, names)
        report["per_class_AP50"] = _per_class(evaluator, names, threshold=0)
        precision = evaluator.eval["precision"]  # [T, R, K, A, M]: IoU 0.5 first, all areas, 100 detections
        for k, category in enumerate(evaluator.params.catIds):
            curve = precision[0, :, k, 0, -1]
            if np.any(curve > -1):
                report["pr_curves"][names[category]] = {"recall": evaluator.params.recThrs.round(2).tolist(),
                                                        "precision": np.clip(curve, 0, None).round(4).tolist()}
    else:
        report.update({name: (0.0 if gt.dataset["annotations"] else -1.0) for name in COCO_METRIC_NAMES})
    confusion: Dict[str, Dict[str, int]] = {name: {} for name in list(names.values()) + ["background"]}
    images: Dict[int, Dict[str, int]] = {}
    found_by_id = {int(image["image_id"]): image for image in detections}
    empty = {"boxes": np.zeros([0, 4]), "scores": np.zeros([0]), "classes": np.zeros([0])}
    for image in ground_truth:
        matched = match_image(image, found_by_id.get(int(image["image_id"]), empty))
        for true, detected in matched["pairs"]:
            row = confusion[names[true]]
            row[names[detected]] = row.get(names[detected], 0) + 1
        for true in matched["missed"]:
            confusion[names[true]]["missed"] = confusion[names[true]].get("missed", 0) + 1
        for detected in matched["spurious"]:
            confusion["background"][names[detected]] = confusion["background"].get(names[detected], 0) + 1
        right = sum(true == detected for true, detected in matched["pairs"])
        images[int(image["image_id"])] = {"true_boxes": len(np.asarray(image["labels"]).reshape(-1)),
                                          "correct": right, "wrong_class": len(matched["pairs"]) - right,
                                          "missed": len(matched["missed"]), "spurious": len(matched["spurious"])}
    report["confusion"], report["images"] = confusion, images
    return report


def worst_and_best(images: Mapping[int, Mapping[str, int]], count: int = 3) -> Dict[str, List[int]]:
    """The image ids with the most errors (misses, wrong classes, spurious detections), and those with the fewest
    errors per true box among the images that have some."""
    errors = {i: found["missed"] + found["wrong_class"] + found["spurious"] for i, found in images.items()}
    worst = sorted(images, key=lambda i: (-errors[i], i))[:count]
    with_boxes = [i for i in images if images[i]["true_boxes"] and i not in worst]
    best = sorted(with_boxes, key=lambda i: (errors[i] / images[i]["true_boxes"], -images[i]["true_boxes"], i))
    return {"worst": worst, "best": best[:count]}
