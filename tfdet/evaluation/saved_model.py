"""COCO metrics of an exported tfdet SavedModel on TFRecords, through its ``serving_default`` signature.

The same path TF Serving and TFX's Evaluator take (the model decodes the examples' image bytes itself),
so what is measured is what is served.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

from tfdet.core.detections import split_detections
from tfdet.dataio import features
from tfdet.evaluation.coco import coco_metrics


def ground_truth(records: Sequence[bytes]) -> List[Dict[str, Any]]:
    """Per serialized tf.Example: ``image_id`` (its position), height, width, boxes in pixels, labels."""
    truth = []
    for image_id, raw in enumerate(records):
        example = features.read_example(raw)
        truth.append({"image_id": image_id, **{key: example[key] for key in ("height", "width", "boxes", "labels")}})
    return truth


def saved_model_detections(saved_model_dir: str, records: Sequence[bytes], truth: Sequence[Mapping[str, Any]],
                           batch_size: int = 8) -> List[Dict[str, Any]]:
    """The SavedModel's detections (pixels of each image) for serialized examples, in coco_metrics' format."""
    serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    detections = []
    for start in range(0, len(records), batch_size):
        images = truth[start:start + batch_size]
        out = serve(examples=tf.constant(list(records[start:start + batch_size])))
        detections += split_detections(out, [(image["height"], image["width"]) for image in images],
                                       image_ids=[image["image_id"] for image in images])
    return detections


def evaluate_saved_model(saved_model_dir: str, records: Sequence[bytes], num_classes: int,
                         label_map: Optional[Mapping[int, str]] = None, truth=None, batch_size: int = 8) -> dict:
    """COCO metrics (pycocotools) of a tfdet SavedModel on serialized eval examples; see :func:`coco_metrics`."""
    truth = truth if truth is not None else ground_truth(records)
    return coco_metrics(truth, saved_model_detections(saved_model_dir, records, truth, batch_size), num_classes,
                        label_map)
