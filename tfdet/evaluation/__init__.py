"""COCO evaluation through pycocotools."""

from tfdet.evaluation.coco import COCO_METRIC_NAMES, coco_metrics, eval_dataset, evaluate_coco

__all__ = ["COCO_METRIC_NAMES", "coco_metrics", "evaluate_coco", "eval_dataset"]
