"""BoxGate: the TFX component that stops the pipeline on bad detection data.

ExampleValidator only records anomalies; later components run regardless.
BoxGate reads those anomalies and checks every example's geometry (ymin <
ymax, xmin < xmax, coordinates in [0, 1] and finite, equal counts of the
four coordinates and the labels, labels in range, the image decodes with the model's own
TensorFlow ops) and that no split is empty, in a Beam pipeline on the pipeline's own engine
(components/box_scan.py: on Flink, the scan runs on the cluster). It
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

import apache_beam as beam
import tensorflow as tf
from tensorflow_data_validation.utils.anomalies_util import load_anomalies_binary
from tfx import v1 as tfx
from tfx.types import artifact, artifact_utils

from components import box_checks, box_scan, data_profile
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


def _earlier_profiles(registry_dir: str, span: int) -> list:
    """The kept profiles of the accepted spans before ``span``, newest first."""
    if not registry_dir:
        return []
    return [kept for entry in spans.accepted(registry_dir) if entry["span"] < span
            for kept in [spans.profile(registry_dir, entry["span"])] if kept]


def gate(examples_uri: str, split_names: list, anomalies_uri: str, span: int, report_dir: str, num_classes: int,
         registry_dir: str, drift_thresholds: dict, drift_action: str, min_drift_examples: int, max_listed: int,
         decode_images: bool, beam_pipeline: beam.Pipeline) -> dict:
    """Scans the splits with ``beam_pipeline`` (components/box_scan.py), judges leakage and drift, writes
    ``report.json`` into ``report_dir``; returns the findings and the span's profile to keep (``findings["passed"]``
    says whether the data may be trained on)."""
    findings = box_checks.new_report(num_classes)
    earlier = _earlier_profiles(registry_dir, span)
    patterns = {split: box_checks.split_pattern(examples_uri, split) for split in split_names}
    with beam_pipeline as pipeline:
        box_scan.build(pipeline, patterns, num_classes, decode_images, max_listed, earlier, report_dir)
    profiles = box_scan.read_scan(report_dir, split_names, findings, max_listed)
    for split in split_names:
        split_anomalies = _schema_anomalies(anomalies_uri, split)
        if split_anomalies:
            findings["schema_anomalies"][split] = split_anomalies
    kept = data_profile.judge(findings, profiles, earlier, drift_thresholds, drift_action, min_drift_examples)
    findings["thresholds"] = dict(drift_thresholds)
    findings["profiles"] = {split: {"examples": profile.examples, "labels": {str(k): v for k, v in
                                                                            sorted(profile.labels.items())},
                                    "distributions": profile.distributions()} for split, profile in profiles.items()}
    kept["fingerprints"] = box_scan.fingerprint_patterns(report_dir, profiles)
    findings["passed"] = box_checks.passed(findings)
    write_json(os.path.join(report_dir, "report.json"), findings)
    return {"findings": findings, "profile": kept}


@tfx.dsl.components.component(use_beam=True)
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
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Checks every example (a Beam pipeline on the pipeline's engine), the schema anomalies, leakage and drift
    (components/data_profile.py); raises when anything is wrong, registers the span (with its profile) in
    ``registry_dir`` when nothing is."""
    span = _int_property(examples, "span")
    outcome = gate(examples.uri, artifact_utils.decode_split_names(examples.split_names), anomalies.uri, span,
                   report.uri, num_classes, registry_dir, json.loads(drift_thresholds), drift_action,
                   min_drift_examples, max_listed, bool(decode_images), beam_pipeline)
    findings = outcome["findings"]
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
                       findings["examples_checked"], dict(outcome["profile"], span=span))
