"""CompareWithBaseline: blesses a model that passed TFMA's value threshold and is not worse than the served one.

TFMA 0.47's COCO metrics cannot run multi-model evaluation (its BoundingBoxMatchPreprocessor yields
predictions not keyed by model name, and the combiner looks them up under 'candidate'), so the
Evaluator judges the candidate alone against the value threshold, and this component does the change
threshold: it evaluates the candidate and the baseline -- the newest model in the serving directory,
i.e. the latest blessed one -- on the same eval split, through the same ``serving_default`` signature,
with pycocotools, and blesses only when the candidate's mAP@0.5 drops by at most ``max_map50_drop``.
The ModelBlessing it writes carries the properties LatestBlessedModelStrategy reads.
"""

import json
import os

import tensorflow as tf
from tfx import v1 as tfx

from components.box_checks import split_files
from models.trainer import latest_version
from tfdet.dataio import features
from tfdet.evaluation import coco_metrics


def _ground_truth(records):
    truth = []
    for image_id, raw in enumerate(records):
        feature = tf.train.Example.FromString(raw).features.feature
        height, width = feature[features.HEIGHT].int64_list.value[0], feature[features.WIDTH].int64_list.value[0]
        columns = [list(feature[key].float_list.value) for key in features.BOX_KEYS]
        boxes = [[c[i] * s for c, s in zip(columns, (height, width, height, width))] for i in range(len(columns[0]))]
        truth.append({"image_id": image_id, "height": height, "width": width, "boxes": boxes,
                      "labels": list(feature[features.LABEL].int64_list.value)})
    return truth


def evaluate_saved_model(saved_model_dir: str, records, truth, num_classes: int, batch_size: int = 8) -> dict:
    """COCO metrics (pycocotools) of a tfdet SavedModel on serialized eval examples."""
    serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    detections = []
    for start in range(0, len(records), batch_size):
        out = serve(examples=tf.constant(records[start:start + batch_size]))
        for i in range(int(out["num_detections"].shape[0])):
            image = truth[start + i]
            count = int(out["num_detections"][i])
            scale = [image["height"], image["width"], image["height"], image["width"]]
            detections.append({"image_id": image["image_id"],
                               "boxes": out["detection_boxes"][i, :count].numpy() * scale,
                               "scores": out["detection_scores"][i, :count].numpy(),
                               "classes": out["detection_classes"][i, :count].numpy()})
    return coco_metrics(truth, detections, num_classes)


@tfx.dsl.components.component
def CompareWithBaseline(  # noqa: N802  (TFX components are named like classes)
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    evaluation_blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    serving_dir: tfx.dsl.components.Parameter[str],
    num_classes: tfx.dsl.components.Parameter[int],
    max_map50_drop: tfx.dsl.components.Parameter[float] = 0.01,
    split: tfx.dsl.components.Parameter[str] = "eval",
) -> None:
    """Writes BLESSED / NOT_BLESSED and comparison.json."""
    verdict = {"value_threshold_passed": bool(evaluation_blessing.get_int_custom_property("blessed")),
               "baseline_model": latest_version(serving_dir), "max_map50_drop": max_map50_drop}
    blessed = verdict["value_threshold_passed"]
    if blessed and verdict["baseline_model"]:
        files = sorted(split_files(examples.uri, split))
        records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
        truth = _ground_truth(records)
        candidate = evaluate_saved_model(os.path.join(model.uri, "Format-Serving"), records, truth, num_classes)
        baseline = evaluate_saved_model(verdict["baseline_model"], records, truth, num_classes)
        verdict.update({"candidate_map50": candidate["AP50"], "baseline_map50": baseline["AP50"],
                        "candidate_map": candidate["AP"], "baseline_map": baseline["AP"]})
        blessed = candidate["AP50"] >= baseline["AP50"] - max_map50_drop
    verdict["blessed"] = blessed
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as marker:
        marker.write("")  # GFile creates the file on the first write
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "comparison.json"), "w") as handle:
        json.dump(verdict, handle, indent=2)
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
    if verdict["baseline_model"]:
        blessing.set_string_custom_property("baseline_model", verdict["baseline_model"])
