"""BoxGate: the TFX component that stops the pipeline on bad detection data.

ExampleValidator only records anomalies; later components run regardless.
BoxGate reads those anomalies and checks every example's geometry (ymin <
ymax, xmin < xmax, coordinates in [0, 1] and finite, equal counts of the
four coordinates and the labels, labels in range, the image decodes with the model's own
TensorFlow ops) and that no split is empty. It
writes a report artifact (``report.json``: counts per problem, the ids of
the offending examples, the schema anomalies) and fails -- so that the
Trainer, which runs after it, never trains on bad data. As TFX deletes a failed execution's
outputs, a failing gate also keeps its report in ``<pipeline_root>/BoxGate/failed_reports/``.
A span that passes is recorded in the accepted-span registry (``registry_dir``, see
tfdet/dataio/spans.py), from which the Trainer takes its rolling window of spans.
Files go through tf.io.gfile, so the roots may be gs:// (Kubeflow).
"""


import json
import os

import tensorflow as tf
from tensorflow_data_validation.utils.anomalies_util import load_anomalies_binary
from tfx import v1 as tfx
from tfx.types import artifact, artifact_utils

from components import box_checks, data_profile
from tfdet.dataio import spans
from tfdet.files import write_json


class BoxGateReport(artifact.Artifact):
    """The gate's findings (``report.json``)."""

    TYPE_NAME = "tfdet.BoxGateReport"


def _schema_anomalies(anomalies_uri: str, split: str) -> dict:
    path = os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb")
    if not tf.io.gfile.exists(path):
        return {}
    found = load_anomalies_binary(path)
    return {name: info.description or info.short_description for name, info in found.anomaly_info.items()}


def _int_property(examples, name: str) -> int:
    """ExampleGen records span and version as custom properties (older TFX: as properties)."""
    if examples.has_custom_property(name):
        return int(examples.get_custom_property(name))
    return int(getattr(examples, name, 0) or 0)


@tfx.dsl.components.component
def BoxGate(  # noqa: N802  (TFX components are named like classes)
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    report: tfx.dsl.components.OutputArtifact[BoxGateReport],
    num_classes: tfx.dsl.components.Parameter[int],
    registry_dir: tfx.dsl.components.Parameter[str],
    drift_thresholds: tfx.dsl.components.Parameter[str],
    drift_action: tfx.dsl.components.Parameter[str],
    min_drift_examples: tfx.dsl.components.Parameter[int],
    max_listed: tfx.dsl.components.Parameter[int] = 50,
    decode_images: tfx.dsl.components.Parameter[int] = 1,
) -> None:
    """Checks every example, the schema anomalies, leakage and drift (components/data_profile.py); raises
    when anything is wrong, registers the span (with its profile) in ``registry_dir`` when nothing is."""
    findings = box_checks.new_report(num_classes)
    profiles = {}
    for split in artifact_utils.decode_split_names(examples.split_names):
        profiles[split] = data_profile.SplitProfile()
        box_checks.scan_split(box_checks.split_files(examples.uri, split), split, num_classes, findings,
                              max_listed, bool(decode_images), profiles[split])
        split_anomalies = _schema_anomalies(anomalies.uri, split)
        if split_anomalies:
            findings["schema_anomalies"][split] = split_anomalies
    span = _int_property(examples, "span")
    earlier = []
    if registry_dir:
        earlier = [kept for entry in spans.accepted(registry_dir) if entry["span"] < span
                   for kept in [spans.profile(registry_dir, entry["span"])] if kept]
    profile = data_profile.judge(findings, profiles, earlier, json.loads(drift_thresholds), drift_action,
                                 min_drift_examples, max_listed)
    findings["passed"] = box_checks.passed(findings)
    write_json(os.path.join(report.uri, "report.json"), findings)
    report.set_int_custom_property("passed", int(findings["passed"]))
    report.set_int_custom_property("bad_examples", findings["bad_examples"])
    if not findings["passed"]:
        # TFX deletes a failed execution's outputs; keep the evidence beside them.
        kept = os.path.join(os.path.dirname(os.path.dirname(report.uri.rstrip("/"))), "failed_reports",
                            f"report-{os.path.basename(report.uri.rstrip('/'))}.json")
        write_json(kept, findings)
        raise RuntimeError("BoxGate stopped the pipeline: " + box_checks.failure_message(findings, kept))
    if registry_dir:
        spans.register(registry_dir, span, _int_property(examples, "version"), examples.uri,
                               findings["examples_checked"], dict(profile, span=span))
