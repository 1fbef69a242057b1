"""Operating the served model: what is served and what made it (``status``), and going back (``rollback``).

    python -m pipeline.local_runner status [--json]
    python -m pipeline.local_runner rollback --to 1

``status`` lists the complete versions in the serving directory, newest first, each with its lineage
read from MLMD and the artifacts it links: the Pusher execution that wrote it, the Model it pushed
and the Trainer execution behind that (spans, model config, steps, warm start, the code version
recorded at training time), and the blessing (candidate and baseline metrics, reasons). A rollback
version says which version it restores.

``rollback`` makes an earlier version the served one the way TF Serving allows -- it serves the
highest number -- so the chosen version is copied to a new, higher number (through a temporary
folder and a rename, so TF Serving never sees half a version) and recorded in MLMD as a
``tfdet.Rollback`` execution from the old PushedModel to a new one. Nothing is deleted. The next
pipeline run warm-starts from, and compares against, the restored model (it is the newest version).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.operations.summary import training_start
from tfdet.export.serving import CARD_PATH, ROLLBACKS_FILE, versions
from tfdet.files import write_json

ROLLBACK_TYPE = "tfdet.Rollback"


def _store(metadata_path: str, read_only: bool = True) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = (metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if read_only else
                                     metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return metadata_store.MetadataStore(config)


def _value(item, name: str):
    for properties in (item.custom_properties, item.properties):
        if name in properties:
            value = properties[name]
            kind = value.WhichOneof("value")
            return getattr(value, kind) if kind else None
    return None


def _linked(store, execution_id: int, event_type) -> List:
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type == event_type]
    return store.get_artifacts_by_id(ids) if ids else []


def _producer(store, artifact_id: int) -> Optional[int]:
    found = [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id])
             if e.type == metadata_store_pb2.Event.OUTPUT]
    return found[0] if found else None


def _read_json(path: str) -> Optional[dict]:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _types(store) -> Dict[int, str]:
    return {t.id: t.name for t in store.get_artifact_types()}


def _pushed_models(store) -> Dict[str, object]:
    """PushedModel artifacts by the version directory they wrote."""
    found = {}
    for artifact in store.get_artifacts_by_type("PushedModel"):
        destination = _value(artifact, "pushed_destination")
        if destination and _value(artifact, "pushed") in (1, None):
            found[os.path.normpath(destination)] = artifact
    return found


def lineage(metadata_path: str, serving_dir: str) -> List[Dict]:
    """Every complete served version, newest first, with what made it (see the module docstring)."""
    store = _store(metadata_path)
    pushed = _pushed_models(store)
    types = _types(store)
    execution_types = {t.id: t.name for t in store.get_execution_types()}
    out = []
    for path in reversed(versions(serving_dir)):
        entry: Dict = {"version": int(os.path.basename(path)), "path": path}
        if os.path.exists(os.path.join(path, CARD_PATH)):
            entry["model_card"] = os.path.join(path, CARD_PATH)
        artifact = pushed.get(os.path.normpath(path))
        if artifact is None:
            entry["note"] = "no PushedModel in MLMD points here (copied by hand?)"
            out.append(entry)
            continue
        entry["pushed_at"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(artifact.create_time_since_epoch / 1000))
        rollback_of = _value(artifact, "rollback_of")
        if rollback_of:
            entry["rollback_of"] = rollback_of
        execution_id = _producer(store, artifact.id)
        inputs = _linked(store, execution_id, metadata_store_pb2.Event.INPUT) if execution_id else []
        if execution_id and execution_types.get(store.get_executions_by_id([execution_id])[0].type_id) == ROLLBACK_TYPE:
            source = next((a for a in inputs if types[a.type_id] == "PushedModel"), None)
            if source is not None:
                origin = _producer(store, source.id)
                inputs = _linked(store, origin, metadata_store_pb2.Event.INPUT) if origin else []
        model = next((a for a in inputs if types[a.type_id] == "Model"), None)
        blessing = next((a for a in inputs if types[a.type_id] == "ModelBlessing"), None)
        if model is not None:
            history = _read_json(os.path.join(model.uri, "training_history.json")) or {}
            config = history.get("model_config", {})
            entry["training"] = {
                "model_uri": model.uri, "steps": history.get("steps"),
                "spans": [s["span"] for s in history.get("train_spans", [])] or history.get("spans"),
                "model": {part: config.get(part, {}).get("name") for part in ("backbone", "neck", "head")},
                "model_config": history.get("zoo_model"), "warm_started_from": history.get("warm_started_from"),
                "initialisation": history.get("initialisation"),
                "code": history.get("code"), "final_loss": (history.get("loss") or [None])[-1]}
            trainer = _producer(store, model.id)
            if trainer:
                examples = [a for a in _linked(store, trainer, metadata_store_pb2.Event.INPUT)
                            if types[a.type_id] == "Examples"]
                entry["training"]["examples_spans"] = sorted({_value(a, "span") for a in examples})
        if blessing is not None:
            comparison = _read_json(os.path.join(blessing.uri, "comparison.json")) or {}
            entry["blessing"] = {key: comparison.get(key) for key in (
                "blessed", "candidate_map50", "baseline_map50", "candidate_map", "baseline_model", "reasons")}
        out.append(entry)
    return out


def render_status(entries: List[Dict], serving_dir: str, running: Optional[Dict] = None) -> str:
    """The lineage as text; ``running``: the holder of the run lock (pipeline/operations/run_lock.py) when a run is
    going on."""
    lines = []
    if running is not None:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(running.get("started", 0)))
        lines.append(f"a run is in progress: pid {running.get('pid')} on {running.get('host')} since {started} (what "
                     f"follows may change when it pushes)")
    if not entries:
        return "\n".join(lines + [f"nothing is served in {serving_dir}"])
    lines.append(f"served versions in {serving_dir}, newest first (TF Serving serves v{entries[0]['version']}):")
    for entry in entries:
        head = f"v{entry['version']}  {entry.get('pushed_at', '?')}"
        if "rollback_of" in entry:
            head += f"  ROLLBACK to {entry['rollback_of']}"
        lines.append(head)
        training = entry.get("training")
        if training:
            spans = ", ".join(map(str, training.get("spans") or training.get("examples_spans") or []))
            model = training.get("model_config") or "/".join(filter(None, training["model"].values()))
            start = training_start(training)
            code = training.get("code") or {}
            lines.append(f"    trained: {model}, {training.get('steps')} steps ({start}) on spans {spans}; "
                         f"code tfdet {code.get('version', '?')} commit {code.get('commit', 'unknown')}")
        blessing = entry.get("blessing")
        if blessing and blessing.get("candidate_map50") is not None:
            against = (f" vs served {blessing['baseline_map50']:.3f}" if blessing.get("baseline_map50") is not None
                       else " (nothing served before)")
            lines.append(f"    blessed: mAP@0.5 {blessing['candidate_map50']:.3f}{against}")
        if entry.get("model_card"):
            lines.append(f"    model card: {entry['model_card']}")
        if entry.get("note"):
            lines.append(f"    {entry['note']}")
    return "\n".join(lines)


def rollback(metadata_path: str, serving_dir: str, to_version: int) -> str:
    """Serves version ``to_version`` again as a new, highest version; returns the new version's path."""
    served = versions(serving_dir)
    by_number = {int(os.path.basename(p)): p for p in served}
    if to_version not in by_number:
        raise ValueError(f"version {to_version} is not a complete version in {serving_dir}; served: "
                         f"{sorted(by_number) or 'none'}")
    number = max(by_number) + 1
    target = os.path.join(serving_dir, str(number))
    staging = os.path.join(serving_dir, f".rollback-{number}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(by_number[to_version], staging)
    os.replace(staging, target)  # TF Serving ignores the dot folder; the rename makes the version appear whole
    history_path = os.path.join(serving_dir, ROLLBACKS_FILE)  # for the model card (components/model_card.py)
    history = _read_json(history_path) or []
    write_json(history_path, history + [{"to": to_version, "as": number,
                                         "at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())}])

    store = _store(metadata_path, read_only=False)
    execution_type = metadata_store_pb2.ExecutionType(name=ROLLBACK_TYPE)
    execution_type.properties["to_version"] = metadata_store_pb2.INT
    type_id = store.put_execution_type(execution_type)
    source = _pushed_models(store).get(os.path.normpath(by_number[to_version]))
    pushed_type = store.get_artifact_type("PushedModel")
    new = metadata_store_pb2.Artifact(type_id=pushed_type.id, uri=target, state=metadata_store_pb2.Artifact.LIVE)
    new.custom_properties["pushed"].int_value = 1
    new.custom_properties["pushed_destination"].string_value = target
    new.custom_properties["pushed_version"].string_value = str(number)
    new.custom_properties["rollback_of"].string_value = f"v{to_version}"
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    execution.properties["to_version"].int_value = to_version
    events = []
    if source is not None:
        events.append((source, metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)))
    events.append((new, metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)))
    pipelines = store.get_contexts_by_type("pipeline")  # attributed to the pipeline, as its own runs are
    store.put_execution(execution, events, pipelines[:1])
    return target
