"""A person-readable summary of the latest pipeline run, read from MLMD and the artifacts."""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _latest(store, type_name: str, producer: Optional[str] = None):
    """The newest live artifact of a type, optionally only those a component (by id) produced."""
    found = store.get_artifacts_by_type(type_name)
    live = [a for a in found if a.state == metadata_store_pb2.Artifact.LIVE
            and (producer is None or f"{os.sep}{producer}{os.sep}" in a.uri)]
    return max(live, key=lambda a: a.id) if live else None


def _prop(artifact, name: str):
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return value.int_value if value.HasField("int_value") else value.string_value


def _per_split(artifact, filename: str, read) -> Dict:
    """``read(path)`` of the file each split of a split artifact holds."""
    paths = {split: os.path.join(artifact.uri, f"Split-{split}", filename) for split in ("train", "eval")}
    return {split: read(path) for split, path in paths.items() if os.path.exists(path)}


def _newest_gate_report(pipeline_root: str) -> Optional[str]:
    """The newest BoxGate report on disk, passed (its artifact) or failed (the copy it keeps: TFX deletes
    a failed execution's outputs and never publishes them to MLMD)."""
    found = {}
    passed_dir = os.path.join(pipeline_root, "BoxGate", "report")
    if os.path.isdir(passed_dir):
        for run in os.listdir(passed_dir):
            if run.isdigit() and os.path.exists(os.path.join(passed_dir, run, "report.json")):
                found[int(run)] = os.path.join(passed_dir, run, "report.json")
    failed_dir = os.path.join(pipeline_root, "BoxGate", "failed_reports")
    if os.path.isdir(failed_dir):
        for name in os.listdir(failed_dir):
            run = name[len("report-"):-len(".json")]
            if run.isdigit():
                found[int(run)] = os.path.join(failed_dir, name)
    return found[max(found)] if found else None


def evaluated_examples(store, evaluation):
    """The Examples artifact an Evaluator execution read (MLMD lineage of its ModelEvaluation)."""
    producing = [e.execution_id for e in store.get_events_by_artifact_ids([evaluation.id])
                 if e.type == metadata_store_pb2.Event.OUTPUT]
    inputs = [e.artifact_id for e in store.get_events_by_execution_ids(producing)
              if e.type == metadata_store_pb2.Event.INPUT]
    examples_type = store.get_artifact_type("Examples").id
    found = [a for a in store.get_artifacts_by_id(inputs) if a.type_id == examples_type]
    return found[0] if found else None


def collect(metadata_path: str, pipeline_root: Optional[str] = None, failed: bool = False) -> Dict:
    """Examples per split, anomalies, gate result, training, the blessing's metrics and verdict, the pushed model.

    With ``failed`` (the run stopped), only the data checks are reported: the model artifacts in MLMD
    then belong to an earlier run.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils.anomalies_util import load_anomalies_binary

    store = _store(metadata_path)
    out: Dict = {}
    statistics = _latest(store, "ExampleStatistics", "StatisticsGen")
    if statistics:
        out["examples"] = _per_split(statistics, "FeatureStats.pb",
                                     lambda path: int(tfdv.load_stats_binary(path).datasets[0].num_examples))
    anomalies = _latest(store, "ExampleAnomalies", "ExampleValidator")
    if anomalies:
        out["anomalies"] = _per_split(anomalies, "SchemaDiff.pb",
                                      lambda path: sorted(load_anomalies_binary(path).anomaly_info))
    gate = _latest(store, "tfdet.BoxGateReport")
    report = _newest_gate_report(pipeline_root) if pipeline_root else None
    if report is None and gate and os.path.exists(os.path.join(gate.uri, "report.json")):
        report = os.path.join(gate.uri, "report.json")
    if report:
        with open(report) as handle:
            out["gate"] = json.load(handle)
        out["gate_report"] = report
    if failed:
        return out
    model = _latest(store, "Model")
    if model and os.path.exists(os.path.join(model.uri, "training_history.json")):
        with open(os.path.join(model.uri, "training_history.json")) as handle:
            history = json.load(handle)
        out["training"] = {"first_loss": history["loss"][0], "last_loss": history["loss"][-1],
                           "steps": history["steps"], "warm_started_from": history["warm_started_from"],
                           "initialisation": history.get("initialisation"),
                           "spans": [entry["span"] for entry in history.get("train_spans", [])]}
    blessing = _latest(store, "ModelBlessing", "CompareWithBaseline")
    if blessing:
        out["blessed"] = bool(_prop(blessing, "blessed"))
        comparison = os.path.join(blessing.uri, "comparison.json")
        if os.path.exists(comparison):
            with open(comparison) as handle:
                out["comparison"] = json.load(handle)
    card = _latest(store, "tfdet.ModelCard")
    if card and os.path.exists(os.path.join(card.uri, "model_card.html")):
        out["model_card"] = os.path.join(card.uri, "model_card.html")
    pushed = _latest(store, "PushedModel")
    if pushed:
        out["pushed"] = bool(_prop(pushed, "pushed"))
        out["pushed_model"] = _prop(pushed, "pushed_destination")
    detections = _latest(store, "tfdet.Detections")
    if detections and os.path.exists(os.path.join(detections.uri, "summary.json")):
        with open(os.path.join(detections.uri, "summary.json")) as handle:
            out["batch_inference"] = {**json.load(handle), "uri": detections.uri}
    return out


def training_start(training: Dict) -> str:
    """How a recorded training run started: a warm start from the served model, a pretrained backbone, a resumed
    checkpoint or random init (what really happened, from the Trainer's record)."""
    if training.get("warm_started_from"):
        return "warm start from the served model"
    return training.get("initialisation") or "random init"


def render(summary: Dict, seconds: Optional[float] = None) -> str:
    """The summary as a few lines of text."""
    lines = []
    if "examples" in summary:
        lines.append("examples: " + ", ".join(f"{k} {v}" for k, v in summary["examples"].items()))
    if "anomalies" in summary:
        found = {k: v for k, v in summary["anomalies"].items() if v}
        lines.append(f"schema anomalies: {found or 'none'}")
    if "gate" in summary:
        gate = summary["gate"]
        verdict = "passed" if gate["passed"] else f"FAILED ({gate['bad_examples']} bad examples {gate['problems']})"
        lines.append(f"box gate: {verdict}, {sum(gate['examples_checked'].values())} examples checked")
    if "training" in summary:
        training = summary["training"]
        start = training_start(training)
        spans = f" on spans {', '.join(map(str, training['spans']))}" if training.get("spans") else ""
        lines.append(f"training: {training['steps']} steps ({start}){spans}, loss {training['first_loss']:.3f} -> "
                     f"{training['last_loss']:.3f}")
    comparison = summary.get("comparison", {})
    if "candidate_map50" in comparison:
        absent = comparison.get("classes_without_eval_boxes")
        lines.append(f"evaluation (COCO mAP by pycocotools, eval split): mAP@0.5 {comparison['candidate_map50']:.3f}, "
                     f"mAP {comparison['candidate_map']:.3f}"
                     + (f"; classes without eval boxes, left out: {', '.join(absent)}" if absent else ""))
    if "blessed" in summary:
        if "baseline_map50" in comparison:
            against = (f" (mAP@0.5 {comparison['candidate_map50']:.3f} vs served {comparison['baseline_map50']:.3f}, "
                       f"allowed drop {comparison['max_map50_drop']})")
        else:
            against = " (no served model to compare with)"
        lines.append(f"blessed: {'yes' if summary['blessed'] else 'NO'}{against}")
        for reason in comparison.get("reasons", []):
            lines.append(f"  not blessed: {reason}")
    if "model_card" in summary:
        lines.append(f"model card: {summary['model_card']}")
    if "pushed" in summary:
        lines.append(f"pushed: {summary['pushed_model'] if summary['pushed'] else 'no'}")
    if "batch_inference" in summary:
        batch = summary["batch_inference"]
        if batch.get("skipped"):
            lines.append(f"batch inference: nothing scored ({batch['skipped']})")
        else:
            lines.append(f"batch inference: {batch['images_in']} unlabelled images, {batch['scored']} scored, "
                         f"{batch['refused']} refused, {batch['detections']} detections -> "
                         f"{os.path.join(batch['uri'], 'detections.json')}")
    if seconds is not None:
        lines.append(f"pipeline time: {seconds:.0f} s")
    return "\n".join(lines)
