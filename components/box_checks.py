"""Per-example geometry checks of tfdet tf.Examples, and the gate's report (the logic of BoxGate, TFX-free).

The scan that applies them to every example is a Beam pipeline (components/box_scan.py).
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, Optional

import tensorflow as tf

from tfdet.dataio import features
from tfdet.dataio.image_format import decode_image, inspect_image

PROBLEMS = {
    "image_missing": "no image/encoded bytes",
    "image_undecodable": "image/encoded is not a whole JPEG or PNG that TensorFlow decodes (WebP, TIFF, corrupt, "
                         "cut short)",
    "count_mismatch": "the four bbox coordinate lists and the labels differ in length",
    "box_not_finite": "a coordinate is NaN or infinite",
    "box_out_of_range": "a coordinate lies outside [0, 1]",
    "box_inverted": "a box has ymin >= ymax or xmin >= xmax",
    "label_out_of_range": "a label is outside [0, num_classes)",
}


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode(data: tf.Tensor) -> tf.Tensor:
    checked = inspect_image(data, max_pixels=2**62)  # training images may be large; serving has its own limit
    return tf.cond(checked["ok"], lambda: tf.shape(decode_image(data, checked["orientation"]))[0] > 0,
                   lambda: tf.constant(False))


def decodes(data: bytes) -> bool:
    """Whether the model's own decoding (the same TensorFlow ops as training and serving) accepts ``data``."""
    try:
        return bool(_decode(tf.constant(data)))
    except tf.errors.OpError:
        return False


def _floats(feature_map, key: str) -> List[float]:
    return list(feature_map[key].float_list.value) if key in feature_map else []


def check_example(serialized: bytes, num_classes: int, decode_image: bool = True) -> List[str]:
    """The problem codes (keys of :data:`PROBLEMS`) of one serialized tf.Example; empty when it is sound."""
    return check_features(tf.train.Example.FromString(serialized).features.feature, num_classes, decode_image)


def check_features(feature_map, num_classes: int, decode_image: bool = True) -> List[str]:
    """As :func:`check_example`, on an already parsed feature map."""
    problems = []
    encoded = feature_map[features.ENCODED].bytes_list.value if features.ENCODED in feature_map else []
    if not encoded or not encoded[0]:
        problems.append("image_missing")
    elif decode_image and not decodes(encoded[0]):
        problems.append("image_undecodable")
    columns = [_floats(feature_map, key) for key in features.BOX_KEYS]
    labels = list(feature_map[features.LABEL].int64_list.value) if features.LABEL in feature_map else []
    if len({len(c) for c in columns} | {len(labels)}) > 1:
        problems.append("count_mismatch")
        return problems
    values = [v for column in columns for v in column]
    if any(not math.isfinite(v) for v in values):
        problems.append("box_not_finite")
    elif any(v < 0.0 or v > 1.0 for v in values):
        problems.append("box_out_of_range")
    ymin, xmin, ymax, xmax = columns
    if any(a >= b for a, b in zip(ymin, ymax)) or any(a >= b for a, b in zip(xmin, xmax)):
        problems.append("box_inverted")
    if any(label < 0 or label >= num_classes for label in labels):
        problems.append("label_out_of_range")
    return problems


def source_id(feature_map) -> str:
    """An example's ``image/source_id`` (how the report names it), empty when it has none."""
    values = feature_map[features.SOURCE_ID].bytes_list.value if features.SOURCE_ID in feature_map else []
    return values[0].decode("utf-8", "replace") if values else ""


def new_report(num_classes: int) -> Dict:
    return {"num_classes": num_classes, "examples_checked": {}, "bad_examples": 0, "problems": {}, "offending": [],
            "schema_anomalies": {}, "empty_splits": [], "leaks": [], "leak_count": 0, "duplicates": {},
            "duplicate_count": {}, "drift": [], "drift_action": "stop", "passed": True}


def passed(report: Dict) -> bool:
    """Whether the data may be trained on: no bad example, schema anomaly, empty split or leaked image, and
    no drift beyond the thresholds when drift stops the run."""
    drifted = bool(report["drift"]) and report["drift_action"] == "stop"
    return not (report["bad_examples"] or report["schema_anomalies"] or report["empty_splits"] or report["leaks"]
                or drifted)


def split_pattern(examples_uri: str, split: str) -> str:
    """The file pattern of one split of an Examples artifact (TFX layout ``Split-<name>/``)."""
    return os.path.join(examples_uri, f"Split-{split}", "*")


def split_files(examples_uri: str, split: str) -> List[str]:
    """The files of one split of an Examples artifact."""
    return tf.io.gfile.glob(split_pattern(examples_uri, split))


def failure_message(report: Dict, report_path: Optional[str] = None) -> str:
    """A person-readable reason to stop the pipeline, naming the offending examples."""
    lines = []
    for split in report["empty_splits"]:
        lines.append(f"Split {split!r} has no examples: its files are empty or missing (a conversion that rejected "
                     f"every record? tfdet convert exits with status 1 then).")
    if report["bad_examples"]:
        total = sum(report["examples_checked"].values())
        counts = ", ".join(f"{code} {n} ({PROBLEMS[code]})" for code, n in sorted(report["problems"].items()))
        lines.append(f"{report['bad_examples']} of {total} examples have bad boxes or images: {counts}.")
        shown = ", ".join(f"{o['split']} source_id {o['source_id']!r} ({'+'.join(o['problems'])})"
                          for o in report["offending"][:10])
        lines.append(f"First offenders: {shown}.")
    for split, anomalies in sorted(report["schema_anomalies"].items()):
        described = "; ".join(f"{feature}: {text}" for feature, text in sorted(anomalies.items()))
        lines.append(f"Schema anomalies in split {split}: {described}.")
    for leak in report["leaks"][:5]:
        lines.append(f"Leakage: train image(s) {', '.join(leak['train'][:3])} have the same bytes as eval image(s) "
                     f"{', '.join(leak['eval'][:3])} of {leak['in']}.")
    leaked = max(report.get("leak_count", 0), len(report["leaks"]))
    if leaked > 5:
        lines.append(f"... {leaked - 5} more leaked images.")
    if report["drift_action"] == "stop":
        for moved in report["drift"]:
            lines.append(f"Drift: {moved['feature']} moved {moved['distance']} ({moved['measure']}) from span "
                         f"{moved['previous_span']}, more than {moved['threshold']}: now {moved['current']}, before "
                         f"{moved['previous']}.")
    lines.append("Fix or drop these examples (tfdet convert --on-error skip reports bad records; keep each image in "
                 "one split) and add a new span; if the drift is real, raise the thresholds in pipeline/configs.py "
                 "or run with --drift-action warn.")
    if report_path:
        lines.append(f"Full report: {report_path}")
    return " ".join(lines)
