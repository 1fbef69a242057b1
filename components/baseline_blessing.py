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
from tfdet.evaluation.saved_model import evaluate_saved_model, ground_truth
from tfdet.export.serving import latest_version


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
        truth = ground_truth(records)
        candidate = evaluate_saved_model(os.path.join(model.uri, "Format-Serving"), records, num_classes, truth=truth)
        baseline = evaluate_saved_model(verdict["baseline_model"], records, num_classes, truth=truth)
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
