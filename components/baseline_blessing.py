"""CompareWithBaseline: blesses a model that is good enough and not worse than the served one -- the pipeline's gate.

It evaluates the candidate and the baseline -- the newest model in the serving directory, i.e. the latest blessed
one -- on the same eval split, through the same ``serving_default`` signature, with pycocotools, and blesses only
when the candidate's mAP@0.5 reaches ``min_map50`` and neither its mAP@0.5 nor any class's AP@0.5 regressed beyond
the thresholds (see components/blessing_rules.py); comparison.json records the numbers and the reasons.

Why here and not in TFX's Evaluator: TFMA 0.47's COCO metrics average over every configured class id, counting a
class absent from the eval split as AP 0 (a model with COCO mAP@0.5 0.51 on a split holding one of three classes
reads 0.17), and cannot run multi-model evaluation (its BoundingBoxMatchPreprocessor yields predictions not keyed
by model name). The Evaluator still runs, for TFMA's analysis (notebooks/model_analysis.ipynb), but decides
nothing. The ModelBlessing written here carries the properties LatestBlessedModelStrategy reads.
"""

import os
from typing import Dict

import tensorflow as tf
from tfx import v1 as tfx
from tfx.utils import path_utils

from components.blessing_rules import boxes_per_class, decide
from components.box_checks import split_files
from tfdet.dataio.label_map import read_label_map
from tfdet.dataio.tfrecord_files import read_records
from tfdet.evaluation import coco_results
from tfdet.evaluation.report import detection_report
from tfdet.evaluation.saved_model import ground_truth, saved_model_detections
from tfdet.export.serving import latest_version
from tfdet.files import write_json

EVALUATION_FILE = "evaluation.json"
DETECTIONS_FILE = "detections.json"


def class_names(saved_model_dir: str, num_classes: int) -> Dict[int, str]:
    """Each class id's name from the label map the candidate was exported with (its id where it names none), so
    that the reasons say 'disc', not '1'."""
    names = read_label_map(saved_model_dir)
    return {i: names.get(i, str(i)) for i in range(num_classes)}


def _metrics(saved_model_dir: str, records, truth, num_classes: int, names: Dict[int, str]):
    """One pycocotools evaluation of a SavedModel (tfdet/evaluation/report.py): the report, and the detections."""
    detections = saved_model_detections(saved_model_dir, records, truth)
    return detection_report(truth, detections, num_classes, names), detections


@tfx.dsl.components.component
def CompareWithBaseline(  # noqa: N802  (TFX components are named like classes)
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    serving_dir: tfx.dsl.components.Parameter[str],
    num_classes: tfx.dsl.components.Parameter[int],
    min_map50: tfx.dsl.components.Parameter[float],
    max_map50_drop: tfx.dsl.components.Parameter[float],
    max_class_ap50_drop: tfx.dsl.components.Parameter[float],
    min_class_boxes: tfx.dsl.components.Parameter[int],
    split: tfx.dsl.components.Parameter[str] = "eval",
) -> None:
    """Writes BLESSED / NOT_BLESSED and comparison.json (the verdict of :func:`components.blessing_rules.decide`)."""
    baseline_model = latest_version(serving_dir)
    records = read_records(split_files(examples.uri, split))
    truth = ground_truth(records)
    candidate_dir = path_utils.serving_model_path(model.uri)
    names = class_names(candidate_dir, num_classes)
    candidate, found = _metrics(candidate_dir, records, truth, num_classes, names)
    baseline = _metrics(baseline_model, records, truth, num_classes, names)[0] if baseline_model else None
    verdict = decide(candidate, baseline, boxes_per_class(truth, names), min_map50, max_map50_drop,
                     max_class_ap50_drop, min_class_boxes)
    verdict.update(baseline_model=baseline_model, min_map50=min_map50, max_map50_drop=max_map50_drop,
                   max_class_ap50_drop=max_class_ap50_drop, min_class_boxes=min_class_boxes)
    blessed = verdict["blessed"]
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as marker:
        marker.write("")  # GFile creates the file on the first write
    write_json(os.path.join(blessing.uri, "comparison.json"), verdict)
    # what the decision was computed from, for the model card (components/model_card.py): no second evaluation
    write_json(os.path.join(blessing.uri, EVALUATION_FILE), {"split": split, "candidate": candidate,
                                                            "baseline": baseline})
    write_json(os.path.join(blessing.uri, DETECTIONS_FILE), coco_results(found, rounded=True))
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
    if baseline_model:
        blessing.set_string_custom_property("baseline_model", baseline_model)
