"""BatchDetections: BulkInferrer's PredictionLogs as a COCO results file, with every image accounted for.

The pipeline's batch-inference branch is UnlabelledExampleGen -> BulkInferrer (the blessed candidate's
``bulk_inference`` signature, see tfdet/export/saved_model.py) -> BatchDetections. BulkInferrer writes one
PredictionLog per image (the request keeps the serialized tf.Example, the response the signature's
outputs); this component reads them and writes, in its ``detections`` artifact:

* ``detections.json``: COCO results, ``[{"image_id", "category_id", "bbox": [x, y, w, h] in pixels of
  the stored image, "score"}]`` (the rows up to ``num_detections``: the served model's own score
  threshold and per-image limit);
* ``images.json``: ``{"images": [{"id", "source_id", "file_name", "height", "width"}], "categories"}``;
  image ids number the images in ``source_id`` order, so a rerun gives the same ids;
* ``refused.json``: the images the model's input checks refused (``valid`` False), with the reason;
* ``summary.json``: ``images_in = scored + refused`` and the detections count, or, when BulkInferrer
  skipped an unblessed model, why nothing was scored.
"""

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types.artifact import Artifact

from components.box_checks import split_files
from tfdet.dataio import features
from tfdet.dataio.record_files import count_records, iter_records
from tfdet.evaluation.coco import coco_results
from tfdet.files import write_json

PREDICTION_LOGS_GLOB = "prediction_logs*"
# the one split UnlabelledExampleGen writes and BulkInferrer reads (pipeline/pipeline.py)
UNLABELLED_SPLIT = "unlabelled"


class Detections(Artifact):
    """Batch-inference detections in COCO results format (see :mod:`components.batch_detections`)."""

    TYPE_NAME = "tfdet.Detections"


def _log_rows(log) -> Dict[str, Any]:
    """One PredictionLog as the image's identity, validity and detection arrays."""
    request = log.predict_log.request.inputs
    (serialized,) = request[next(iter(request))].string_val
    example = features.read_example(serialized)
    outputs = {key: tf.make_ndarray(value)[0] for key, value in log.predict_log.response.outputs.items()}
    error = np.reshape(outputs["error"], [-1])
    return {"source_id": example["source_id"], "file_name": example["filename"], "height": example["height"],
            "width": example["width"],
            "valid": bool(outputs["valid"]), "error": error[0].decode() if error.size else "",
            "count": int(outputs["num_detections"]), "boxes": outputs["detection_boxes"],
            "scores": outputs["detection_scores"], "classes": outputs["detection_classes"]}


def coco_detections(logs: Iterable, class_names: Mapping[int, str]) -> Tuple[List[dict], Dict[str, Any], List[dict]]:
    """PredictionLogs of the ``bulk_inference`` signature -> (COCO results, images.json content, refused).

    Boxes are converted from normalised (ymin, xmin, ymax, xmax) to pixel [x, y, width, height] of the
    image as stored (``image/height``, ``image/width``), rounded to 0.01 px; scores to 1e-5
    (:func:`tfdet.evaluation.coco_results`).
    """
    rows = sorted((_log_rows(log) for log in logs), key=lambda row: (row["source_id"], row["file_name"]))
    found, images, refused = [], [], []
    for image_id, row in enumerate(rows):
        entry = {"id": image_id, "source_id": row["source_id"], "file_name": row["file_name"],
                 "height": row["height"], "width": row["width"]}
        if not row["valid"]:
            refused.append({**entry, "error": row["error"]})
            continue
        images.append(entry)
        count = row["count"]
        scale = np.array([row["height"], row["width"]] * 2, np.float64)
        found.append({"image_id": image_id, "boxes": row["boxes"][:count] * scale, "scores": row["scores"][:count],
                      "classes": row["classes"][:count]})
    catalogue = {"images": images, "categories": [{"id": int(k), "name": v} for k, v in sorted(class_names.items())]}
    return coco_results(found, rounded=True), catalogue, refused


def read_prediction_logs(directory: str) -> List:
    """Every PredictionLog BulkInferrer wrote into ``directory`` (gzipped TFRecord shards)."""
    from tensorflow_serving.apis import prediction_log_pb2

    if not tf.io.gfile.glob(os.path.join(directory, PREDICTION_LOGS_GLOB)):
        return []
    return [prediction_log_pb2.PredictionLog.FromString(record)
            for record in iter_records(os.path.join(directory, PREDICTION_LOGS_GLOB))]


def write_batch_detections(inference_dir: str, output_dir: str, blessed: bool, num_classes: int,
                           images_in: int, class_names: Optional[Mapping[int, str]] = None) -> Dict[str, Any]:
    """Writes the four files of the module docstring into ``output_dir``; returns the summary.

    ``images_in`` is the number of examples BulkInferrer was given: with a blessed model every one of them
    must come back scored or refused, else this raises naming the difference.
    """
    logs = read_prediction_logs(inference_dir)
    results, catalogue, refused = coco_detections(logs, class_names or {i: str(i) for i in range(num_classes)})
    summary = {"images_in": images_in, "scored": len(catalogue["images"]), "refused": len(refused),
               "detections": len(results), "blessed": blessed}
    if not blessed:
        summary["skipped"] = "the candidate model was not blessed, so BulkInferrer scored nothing"
    elif summary["scored"] + summary["refused"] != images_in:
        raise RuntimeError(f"BulkInferrer returned {len(logs)} PredictionLogs in {inference_dir} for {images_in} "
                           f"unlabelled examples; rerun the pipeline (a partial inference result is never "
                           f"reported as complete)")
    write_json(os.path.join(output_dir, "detections.json"), results)
    write_json(os.path.join(output_dir, "images.json"), catalogue)
    write_json(os.path.join(output_dir, "refused.json"), refused)
    write_json(os.path.join(output_dir, "summary.json"), summary)
    return summary


@tfx.dsl.components.component
def BatchDetections(  # noqa: N802  (TFX components are named like classes)
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    inference_result: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.InferenceResult],
    model_blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    detections: tfx.dsl.components.OutputArtifact[Detections],
    num_classes: tfx.dsl.components.Parameter[int],
    split: tfx.dsl.components.Parameter[str] = UNLABELLED_SPLIT,
) -> None:
    """COCO results of BulkInferrer's PredictionLogs (see the module docstring)."""
    blessed = bool(model_blessing.get_int_custom_property("blessed"))
    files = split_files(examples.uri, split)
    images_in = count_records(files) if files else 0
    summary = write_batch_detections(inference_result.uri, detections.uri, blessed, num_classes, images_in)
    for key in ("images_in", "scored", "refused", "detections"):
        detections.set_int_custom_property(key, int(summary[key]))
