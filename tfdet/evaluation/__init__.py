"""COCO evaluation through pycocotools."""

from tfdet.evaluation.coco import (
    COCO_METRIC_NAMES,
    average_precision,
    coco_metrics,
    coco_results,
    collect_detections,
    eval_dataset,
    evaluate_coco,
)

__all__ = ["COCO_METRIC_NAMES", "average_precision", "coco_metrics", "coco_results", "collect_detections",
           "evaluate_coco", "eval_dataset"]
