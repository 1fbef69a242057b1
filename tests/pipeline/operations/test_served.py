"""pipeline/operations/served.py on tiny real artifacts: ``rollback`` serves version N again -- byte for byte, with N's
answers and N's lineage -- or refuses in one line; ``status`` reads what made each version and says when a run is
going on."""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tiny_artifacts import eval_records, save_echo  # tests/ is on the path (its conftest)

from pipeline.operations.served import _store, lineage, render_status, rollback
from tfdet.export.serving import versions


def hashes(directory):
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def record_push(store, context, version_dir, model_uri):
    """What TFX's launcher records for a push: Model and ModelBlessing in, PushedModel out, in the pipeline."""
    type_ids = {name: store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
                for name in ("Model", "ModelBlessing", "PushedModel")}
    model = metadata_store_pb2.Artifact(type_id=type_ids["Model"], uri=model_uri)
    blessing = metadata_store_pb2.Artifact(type_id=type_ids["ModelBlessing"], uri=model_uri + "-blessing")
    pushed = metadata_store_pb2.Artifact(type_id=type_ids["PushedModel"], uri=version_dir)
    pushed.custom_properties["pushed"].int_value = 1
    pushed.custom_properties["pushed_destination"].string_value = version_dir
    execution = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(metadata_store_pb2.ExecutionType(name="tfdet.Pusher")),
        last_known_state=metadata_store_pb2.Execution.COMPLETE)
    store.put_execution(execution, [(model, metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)),
                                    (blessing, metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)),
                                    (pushed, metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT))],
                        [context])


@pytest.fixture
def served(tmp_path):
    """Two pushed versions with their lineage in MLMD: v1700000001 answers every class, v1700000002 squares only."""
    metadata, serving = str(tmp_path / "metadata.db"), tmp_path / "serving"
    store = _store(metadata, read_only=False)
    context = metadata_store_pb2.Context(
        type_id=store.put_context_type(metadata_store_pb2.ContextType(name="pipeline")), name="tfdet")
    [context.id] = store.put_contexts([context])
    for version, kwargs in (("1700000001", {}), ("1700000002", {"keep": (0,)})):
        save_echo(str(serving / version), **kwargs)
        record_push(store, context, str(serving / version), str(tmp_path / "models" / version))
    return metadata, str(serving)


def answers(version_dir):
    out = tf.saved_model.load(version_dir).signatures["serving_default"](examples=tf.constant(eval_records(4)))
    return {key: value.numpy() for key, value in out.items()}


def test_rollback_serves_version_n_again_by_content_and_lineage(served):
    metadata, serving = served
    first, second = versions(serving)
    target = rollback(metadata, serving, 1700000001)
    assert target == os.path.join(serving, "1700000003") and versions(serving) == [first, second, target]
    assert hashes(target) == hashes(first) != hashes(second)  # every file, byte for byte
    mine, theirs = answers(target), answers(first)
    assert not np.array_equal(answers(second)["num_detections"], theirs["num_detections"])
    for key in theirs:
        np.testing.assert_array_equal(mine[key], theirs[key])
    entries = lineage(metadata, serving)
    assert [entry["version"] for entry in entries] == [1700000003, 1700000002, 1700000001]
    assert entries[0]["rollback_of"] == "v1700000001" and "rollback_of" not in entries[1]
    assert sorted(os.listdir(serving)) == ["1700000001", "1700000002", "1700000003", "rollbacks.json"]  # no staging
    (entry,) = json.load(open(os.path.join(serving, "rollbacks.json")))  # what the model card lists
    assert (entry["to"], entry["as"]) == (1700000001, 1700000003)
    status = render_status(entries, serving)
    assert status.splitlines()[:2] == [f"served versions in {serving}, newest first (TF Serving serves v1700000003):",
                                       status.splitlines()[1]]
    assert "ROLLBACK to v1700000001" in status.splitlines()[1]


def test_rollback_to_a_missing_or_incomplete_version_is_one_clear_error(served):
    metadata, serving = served
    os.makedirs(os.path.join(serving, "1700000005", "variables"))  # cut short: not a version to go back to
    for missing in (99, 1700000005):
        with pytest.raises(ValueError) as error:
            rollback(metadata, serving, missing)
        assert str(error.value) == (f"version {missing} is not a complete version in {serving}; served: "
                                    f"[1700000001, 1700000002]")
    assert [os.path.basename(v) for v in versions(serving)] == ["1700000001", "1700000002"]


def test_status_says_when_a_run_is_in_progress(served):
    metadata, serving = served
    running = {"pid": 4242, "host": "ci", "started": 0}
    lines = render_status(lineage(metadata, serving), serving, running).splitlines()
    assert lines[0].startswith("a run is in progress: pid 4242 on ci since ")
    assert lines[1].startswith(f"served versions in {serving}")
    assert render_status([], serving) == f"nothing is served in {serving}"
