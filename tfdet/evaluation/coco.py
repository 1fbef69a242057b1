"""COCO box metrics computed by pycocotools itself (no re-implementation to drift from it)."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tfdet.core.detections import boxes_to_original, split_detections
from tfdet.dataio.pipeline import pipeline

COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _xywh(box: Sequence[float]) -> List[float]:
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    return [xmin, ymin, xmax - xmin, ymax - ymin]


def _coco_ground_truth(ground_truth: Sequence[Mapping[str, Any]], names: Mapping[int, str]) -> COCO:
    images, annotations = [], []
    for image in ground_truth:
        images.append({"id": int(image["image_id"]), "height": int(image["height"]), "width": int(image["width"])})
        for box, label in zip(image["boxes"], image["labels"]):
            xywh = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": int(image["image_id"]),
                                "category_id": int(label), "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": i, "name": n} for i, n in names.items()]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_results(detections: Sequence[Mapping[str, Any]], rounded: bool = False) -> List[Dict[str, Any]]:
    """COCO results rows (``image_id``, 0-based ``category_id``, ``bbox`` [x, y, w, h], ``score``) of
    ``[{"image_id", "boxes": (ymin, xmin, ymax, xmax) in pixels, "scores", "classes"}]``.

    ``rounded``: bbox to 0.01 px and score to 1e-5, for files written to disk.
    """
    def bbox(box):
        return [round(v, 2) for v in _xywh(box)] if rounded else _xywh(box)

    return [{"image_id": int(image["image_id"]), "category_id": int(label), "bbox": bbox(box),
             "score": round(float(score), 5) if rounded else float(score)}
            for image in detections for box, score, label in zip(image["boxes"], image["scores"], image["classes"])]


def _evaluate(gt: COCO, results: List[Dict[str, Any]], iou_thresholds: Optional[Sequence[float]] = None
              ) -> COCOeval:
    """pycocotools' evaluation, with its 12-figure summary (``stats``) when the IoU thresholds are COCO's own."""
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        if iou_thresholds is not None:
            evaluator.params.iouThrs = np.asarray(iou_thresholds, np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        if iou_thresholds is None:
            evaluator.summarize()
    return evaluator


def _per_class(evaluator: COCOeval, names: Mapping[int, str], threshold: Optional[int] = None) -> Dict[str, float]:
    """Each class's AP (all areas, 100 detections) over the evaluated IoU thresholds, or at the one numbered
    ``threshold``; classes without ground truth left out."""
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    for k, category in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1] if threshold is None else precision[threshold, :, k, 0, -1]
        if np.any(values > -1):
            per_class[names[category]] = float(np.mean(values[values > -1]))
    return per_class


def coco_metrics(ground_truth: Sequence[Mapping[str, Any]], detections: Sequence[Mapping[str, Any]],
                 num_classes: int, label_map: Optional[Mapping[int, str]] = None) -> Dict[str, Any]:
    """COCO metrics of detections against ground truth, both in pixels.

    Args:
        ground_truth: per image ``{"image_id": int, "height", "width", "boxes": [N, 4] (ymin, xmin, ymax,
            xmax), "labels": [N]}``.
        detections: per image ``{"image_id", "boxes": [K, 4], "scores": [K], "classes": [K]}``.
        num_classes: class ids are 0..num_classes-1 (used as COCO category ids).
        label_map: id -> name, for the per-class results.

    Returns:
        The 12 COCO numbers (``AP`` = mAP@[.5:.95], ``AP50``, ``AP75``, ``APs``/``APm``/``APl``,
        ``AR1``/``AR10``/``AR100``, ``ARs``/``ARm``/``ARl``; -1 where COCO has nothing to
        measure), ``per_class_AP`` (mAP@[.5:.95] by class name, classes with ground truth only),
        and ``num_images``, ``num_detections``.
    """
    names = {i: (label_map or {}).get(i, str(i)) for i in range(num_classes)}
    gt = _coco_ground_truth(ground_truth, names)
    results = coco_results(detections)
    out: Dict[str, Any] = {"num_images": len(ground_truth), "num_detections": len(results)}
    if not results or not gt.dataset["annotations"]:
        out.update({name: (0.0 if gt.dataset["annotations"] else -1.0) for name in COCO_METRIC_NAMES})
        out["per_class_AP"] = {}
        return out
    evaluator = _evaluate(gt, results)
    out.update({name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats)})
    out["per_class_AP"] = _per_class(evaluator, names)
    return out


def average_precision(ground_truth: Sequence[Mapping[str, Any]], detections: Sequence[Mapping[str, Any]],
                      num_classes: int, iou_threshold: float, label_map: Optional[Mapping[int, str]] = None,
                      ) -> Dict[str, Any]:
    """Mean AP over classes at one IoU threshold (e.g. 0.4, the convention of tree-crown papers), by pycocotools.

    COCO's 101-point interpolation, all areas, 100 detections per image; classes without ground truth
    are left out of the mean, as COCO does.

    Returns:
        ``{"AP": mean AP, "per_class_AP": {name: AP}, "recall": mean of the classes' final recall}``.
    """
    names = {i: (label_map or {}).get(i, str(i)) for i in range(num_classes)}
    gt = _coco_ground_truth(ground_truth, names)
    results = coco_results(detections)
    if not results or not gt.dataset["annotations"]:
        return {"AP": 0.0 if gt.dataset["annotations"] else -1.0, "per_class_AP": {}, "recall": 0.0}
    evaluator = _evaluate(gt, results, iou_thresholds=[iou_threshold])
    per_class = _per_class(evaluator, names)  # empty when every true box's label is outside the classes
    recall = evaluator.eval["recall"][0, :, 0, -1]  # [K], -1 for the classes without ground truth
    return {"AP": float(np.mean(list(per_class.values()))) if per_class else -1.0, "per_class_AP": per_class,
            "recall": float(np.mean(recall[recall > -1])) if per_class else -1.0}


def eval_dataset(pattern_file: str, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 batch_size: int = 4) -> tf.data.Dataset:
    """The evaluation pipeline: read, letterbox to input_size, normalise, padded batches."""
    steps = [dict(name="InputReadRecordFiles", pattern_file=pattern_file),
             dict(name="Resize", height=int(input_size[0]), width=int(input_size[1])),
             dict(name="Normalize", mean=tuple(mean), std=tuple(std))]
    return pipeline(steps, deterministic=True).padded_batch(batch_size)


def collect_detections(model, dataset: tf.data.Dataset, **test_overrides: Any
                       ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Runs ``model`` over a batched evaluation dataset; returns (ground truth, detections) in original pixels.

    Both are lists with one dict per image, in :func:`coco_metrics`' format (``image_id`` = running index).
    """
    detect = model.detect_function(**test_overrides)
    ground_truth, detections = [], []
    for batch in dataset:
        found = detect(batch["image"])
        window = batch.get("image_window")
        if window is None:  # no letterbox: the input is the whole image
            window = tf.tile(tf.constant([[0.0, 0.0, 1.0, 1.0]]), [tf.shape(batch["image"])[0], 1])
        gt_boxes = boxes_to_original(tf.cast(batch["bboxes"], tf.float32), window).numpy()
        sizes, masks, labels = (batch[key].numpy() for key in ("original_size", "mask", "labels"))
        ids = list(range(len(ground_truth), len(ground_truth) + sizes.shape[0]))
        for i, image_id in enumerate(ids):
            height, width = (int(v) for v in sizes[i])
            scale = np.array([height, width, height, width], np.float32)
            ground_truth.append({"image_id": image_id, "height": height, "width": width,
                                 "boxes": gt_boxes[i][masks[i]] * scale, "labels": labels[i][masks[i]]})
        detections += split_detections(found, sizes, window, ids)
    return ground_truth, detections


def evaluate_coco(model, dataset: tf.data.Dataset, label_map: Optional[Mapping[int, str]] = None,
                  output_json: Optional[str] = None, **test_overrides: Any) -> Dict[str, Any]:
    """Runs ``model`` over a batched evaluation dataset and computes COCO metrics.

    Args:
        model: a :class:`~tfdet.models.architectures.one_stage.OneStageModel`.
        dataset: batches as :func:`eval_dataset` makes them (with ``image_window``
            and ``original_size``, so boxes are compared in original pixels).
        label_map: id -> name for per-class results.
        output_json: write the detections here in COCO results format
            (``image_id`` = running index, ``category_id`` = 0-based label id).
        **test_overrides: test_cfg overrides, e.g. ``score_thr=0.01``.

    Returns:
        See :func:`coco_metrics`.
    """
    ground_truth, detections = collect_detections(model, dataset, **test_overrides)
    if output_json:
        with open(output_json, "w") as handle:
            json.dump(coco_results(detections, rounded=True), handle)
    return coco_metrics(ground_truth, detections, model.num_classes, label_map)
