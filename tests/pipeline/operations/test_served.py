"""pipeline/operations/served.py on tiny real artifacts: ``rollback`` serves version N again -- byte for byte, with N's
answers and N's lineage -- or refuses in one line; ``status`` reads what made each version and says when a run is
going on."""

import hashlib
import json
import os
import re
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tiny_artifacts import eval_records, save_echo  # tests/ is on the path (its conftest)

from pipeline.operations.served import _store, lineage, render_status, rollback
from tfdet.export.serving import CARD_PATH, versions


def hashes(directory):
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def artifact(store, type_name, uri, **properties):
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=type_name))
    found = metadata_store_pb2.Artifact(type_id=type_id, uri=uri)
    for name, value in properties.items():
        field = "int_value" if isinstance(value, int) else "string_value"
        setattr(found.custom_properties[name], field, value)
    return found


def execution(store, type_name, context, inputs, outputs):
    """A COMPLETE execution of ``type_name`` in the pipeline, as TFX's launcher records one; returns its outputs."""
    run = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(metadata_store_pb2.ExecutionType(name=type_name)),
        last_known_state=metadata_store_pb2.Execution.COMPLETE)
    events = [(a, metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)) for a in inputs]
    events += [(a, metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)) for a in outputs]
    _, artifact_ids, _ = store.put_execution(run, events, [context])
    return store.get_artifacts_by_id(artifact_ids[len(inputs):])


def record_run(store, context, version_dir, run_dir, spans, blessed_map50):
    """What a pipeline run leaves: a Trainer execution (Examples of ``spans`` in, a Model with its training record
    out), the blessing's comparison, and the Pusher execution (Model and ModelBlessing in, PushedModel out)."""
    os.makedirs(os.path.join(run_dir, "model"))
    os.makedirs(os.path.join(run_dir, "blessing"))
    with open(os.path.join(run_dir, "model", "training_history.json"), "w") as handle:
        json.dump({"steps": 40, "train_spans": [{"span": s} for s in spans], "zoo_model": None,
                   "model_config": {"backbone": {"name": "TinyNet"}, "neck": {"name": "FPN"},
                                    "head": {"name": "AnchorHead"}},
                   "warm_started_from": None, "initialisation": "random init",
                   "code": {"version": "0.3.0", "commit": f"c0de{spans[-1]}"}, "loss": [2.0, 1.5]}, handle)
    with open(os.path.join(run_dir, "blessing", "comparison.json"), "w") as handle:
        json.dump({"blessed": True, "candidate_map50": blessed_map50, "candidate_map": 0.5,
                   "baseline_map50": 0.6 if len(spans) > 1 else None,
                   "baseline_model": None, "reasons": [], "not_listed": 1}, handle)
    examples = [artifact(store, "Examples", f"{run_dir}/examples-{s}", span=s) for s in spans]
    (model,) = execution(store, "tfx.components.trainer.component.Trainer", context, examples,
                         [artifact(store, "Model", os.path.join(run_dir, "model"))])
    blessing = artifact(store, "ModelBlessing", os.path.join(run_dir, "blessing"), blessed=1)
    pushed = artifact(store, "PushedModel", version_dir, pushed=1, pushed_destination=version_dir)
    execution(store, "tfdet.Pusher", context, [model, blessing], [pushed])


@pytest.fixture
def served(tmp_path):
    """Two pushed versions with their lineage in MLMD: v1700000001 answers every class (trained on span 1, a model
    card inside), v1700000002 squares only (spans 1 and 2); and v1700000000, copied in by hand."""
    metadata, serving = str(tmp_path / "metadata.db"), tmp_path / "serving"
    store = _store(metadata, read_only=False)
    context = metadata_store_pb2.Context(
        type_id=store.put_context_type(metadata_store_pb2.ContextType(name="pipeline")), name="tfdet")
    [context.id] = store.put_contexts([context])
    for version, spans, kwargs in (("1700000001", [1], {}), ("1700000002", [1, 2], {"keep": (0,)})):
        save_echo(str(serving / version), **kwargs)
        record_run(store, context, str(serving / version), str(tmp_path / "runs" / version), spans,
                   0.5 + 0.1 * len(spans))
    os.makedirs(serving / "1700000001" / os.path.dirname(CARD_PATH), exist_ok=True)
    (serving / "1700000001" / CARD_PATH).write_text("<html></html>")
    save_echo(str(serving / "1700000000"))
    # a refused candidate's PushedModel says pushed 0; naming a served folder does not make it that version's source
    execution(store, "tfdet.Pusher", context, [], [artifact(store, "PushedModel", str(tmp_path / "refused"), pushed=0,
                                                            pushed_destination=str(serving / "1700000000"))])
    return metadata, str(serving)


def expected_entry(serving, runs, version, spans, map50):
    model = os.path.join(runs, str(version), "model")
    return {"version": version, "path": os.path.join(serving, str(version)),
            "training": {"model_uri": model, "steps": 40, "spans": spans,
                         "model": {"backbone": "TinyNet", "neck": "FPN", "head": "AnchorHead"},
                         "model_config": None, "warm_started_from": None, "initialisation": "random init",
                         "code": {"version": "0.3.0", "commit": f"c0de{spans[-1]}"}, "final_loss": 1.5,
                         "examples_spans": spans},
            "blessing": {"blessed": True, "candidate_map50": map50, "candidate_map": 0.5,
                         "baseline_map50": 0.6 if len(spans) > 1 else None,
                         "baseline_model": None, "reasons": []}}


def answers(version_dir):
    out = tf.saved_model.load(version_dir).signatures["serving_default"](examples=tf.constant(eval_records(4)))
    return {key: value.numpy() for key, value in out.items()}


def test_status_reads_what_made_each_version(served):
    metadata, serving = served
    runs = os.path.join(os.path.dirname(serving), "runs")
    entries = lineage(metadata, serving)
    created = {a.uri: a.create_time_since_epoch for a in _store(metadata).get_artifacts_by_type("PushedModel")}
    for entry in entries:
        if "pushed_at" in entry:  # when MLMD recorded the push, in local time
            assert entry.pop("pushed_at") == time.strftime("%Y-%m-%d %H:%M:%S",
                                                           time.localtime(created[entry["path"]] / 1000))
    assert entries == [
        expected_entry(serving, runs, 1700000002, [1, 2], 0.7),
        {**expected_entry(serving, runs, 1700000001, [1], 0.6),
         "model_card": os.path.join(serving, "1700000001", CARD_PATH)},
        {"version": 1700000000, "path": os.path.join(serving, "1700000000"),
         "note": "no PushedModel in MLMD points here (copied by hand?)"}]
    lines = render_status(lineage(metadata, serving), serving).splitlines()
    assert lines[0] == f"served versions in {serving}, newest first (TF Serving serves v1700000002):"
    assert re.fullmatch(r"v1700000002  \S+ \S+", lines[1])
    assert lines[2:4] == ["    trained: TinyNet/FPN/AnchorHead, 40 steps (random init) on spans 1, 2; code tfdet 0.3.0 "
                          "commit c0de2", "    blessed: mAP@0.5 0.700 vs served 0.600"]
    assert lines[6:] == ["    blessed: mAP@0.5 0.600 (nothing served before)",
                         f"    model card: {os.path.join(serving, '1700000001', CARD_PATH)}",
                         "v1700000000  ?", "    no PushedModel in MLMD points here (copied by hand?)"]
    # a version copied in by hand on top hides nothing below it
    shutil.copytree(os.path.join(serving, "1700000001"), os.path.join(serving, "1700000009"))
    assert [(e["version"], "note" in e) for e in lineage(metadata, serving)] == [
        (1700000009, True), (1700000002, False), (1700000001, False), (1700000000, True)]


def test_rollback_serves_version_n_again_by_content_and_lineage(served):
    metadata, serving = served
    old, first, second = versions(serving)
    target = rollback(metadata, serving, 1700000001)
    assert target == os.path.join(serving, "1700000003") and versions(serving) == [old, first, second, target]
    assert hashes(target) == hashes(first) != hashes(second)  # every file, byte for byte
    mine, theirs = answers(target), answers(first)
    assert not np.array_equal(answers(second)["num_detections"], theirs["num_detections"])
    for key in theirs:
        np.testing.assert_array_equal(mine[key], theirs[key])
    entries = lineage(metadata, serving)
    assert [entry["version"] for entry in entries] == [1700000003, 1700000002, 1700000001, 1700000000]
    assert entries[0]["rollback_of"] == "v1700000001" and "rollback_of" not in entries[1]
    # the restored version's lineage is version N's: its training and blessing, through the rollback's input
    runs = os.path.join(os.path.dirname(serving), "runs")
    expected = expected_entry(serving, runs, 1700000001, [1], 0.6)
    assert (entries[0]["training"], entries[0]["blessing"]) == (expected["training"], expected["blessing"])
    assert entries[0]["model_card"] == os.path.join(target, CARD_PATH)
    assert sorted(os.listdir(serving)) == ["1700000000", "1700000001", "1700000002", "1700000003",
                                           "rollbacks.json"]  # no staging folder left
    (entry,) = json.load(open(os.path.join(serving, "rollbacks.json")))  # what the model card lists
    assert (entry["to"], entry["as"]) == (1700000001, 1700000003)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", entry["at"])
    status = render_status(entries, serving)
    assert status.splitlines()[0] == f"served versions in {serving}, newest first (TF Serving serves v1700000003):"
    assert re.fullmatch(r"v1700000003  \S+ \S+  ROLLBACK to v1700000001", status.splitlines()[1])

    # MLMD: a tfdet.Rollback execution in the pipeline, from version N's PushedModel to a new live one
    store = _store(metadata)
    (run,) = store.get_executions_by_type("tfdet.Rollback")
    assert run.properties["to_version"].int_value == 1700000001
    assert run.last_known_state == metadata_store_pb2.Execution.COMPLETE
    assert [c.name for c in store.get_contexts_by_execution(run.id)] == ["tfdet"]
    events = {e.type: e.artifact_id for e in store.get_events_by_execution_ids([run.id])}
    source, new = store.get_artifacts_by_id([events[metadata_store_pb2.Event.INPUT],
                                             events[metadata_store_pb2.Event.OUTPUT]])
    assert source.uri == first and new.uri == target and new.state == metadata_store_pb2.Artifact.LIVE
    assert store.get_artifact_types_by_id([new.type_id])[0].name == "PushedModel"
    assert {name: value.WhichOneof("value") and getattr(value, value.WhichOneof("value"))
            for name, value in new.custom_properties.items()} == {
        "pushed": 1, "pushed_destination": target, "pushed_version": "1700000003", "rollback_of": "v1700000001"}

    # a second rollback keeps the first's record, and going back to a version no run recorded still works
    again = rollback(metadata, serving, 1700000000)
    assert hashes(again) == hashes(old)
    assert [(e["to"], e["as"]) for e in json.load(open(os.path.join(serving, "rollbacks.json")))] == [
        (1700000001, 1700000003), (1700000000, 1700000004)]
    newest = lineage(metadata, serving)[0]
    assert newest["rollback_of"] == "v1700000000" and "training" not in newest and "blessing" not in newest


def test_rollback_to_a_missing_or_incomplete_version_is_one_clear_error(served):
    metadata, serving = served
    os.makedirs(os.path.join(serving, "1700000005", "variables"))  # cut short: not a version to go back to
    for missing in (99, 1700000005):
        with pytest.raises(ValueError) as error:
            rollback(metadata, serving, missing)
        assert str(error.value) == (f"version {missing} is not a complete version in {serving}; served: "
                                    f"[1700000000, 1700000001, 1700000002]")
    assert [os.path.basename(v) for v in versions(serving)] == ["1700000000", "1700000001", "1700000002"]
    empty = os.path.join(os.path.dirname(serving), "empty")
    os.makedirs(empty)
    with pytest.raises(ValueError) as error:
        rollback(metadata, empty, 1)
    assert str(error.value) == f"version 1 is not a complete version in {empty}; served: none"


def test_status_says_when_a_run_is_in_progress(served):
    metadata, serving = served
    running = {"pid": 4242, "host": "ci", "started": 1700000000}
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1700000000))
    in_progress = f"a run is in progress: pid 4242 on ci since {since} (what follows may change when it pushes)"
    lines = render_status(lineage(metadata, serving), serving, running).splitlines()
    assert lines[0] == in_progress and lines[1].startswith(f"served versions in {serving}")
    assert render_status([], serving) == f"nothing is served in {serving}"
    assert render_status([], serving, running) == f"{in_progress}\nnothing is served in {serving}"
