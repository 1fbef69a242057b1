"""The whole TFX DAG on the local Beam runner, tiny data and a tiny model: one test walks the
retraining story through four runs (rolling window of 2 spans).

1. span 1 (good): every component runs; every artifact is checked; the model is pushed;
2. nothing new: served from the cache;
3. span 2 (good, more data): the Trainer warm-starts from the served (= latest blessed) model, trains on
   spans 2 and 1, CompareWithBaseline evaluates both models on the eval split, blesses, a new version is pushed;
4. span 3 with corrupted boxes: BoxGate stops the run before the Trainer; span 2's model stays served
   and span 3 never enters the window; the notebooks run against this state;
5. span 4: a candidate refused by the change threshold, then by the value threshold: nothing is pushed,
   the served model is unchanged and still serves, the summary and exit code say so;
6. `status` tells what made each served version; `rollback` serves version 1 again as a new version, which
   is what the next run warm-starts from and compares against.

Step 3 runs as a subprocess killed with SIGKILL in the Trainer, rerun and killed in the Pusher, and rerun
to completion: every served version stays whole and loadable, no span is lost or counted twice.
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipeline.local_runner import QUIET_WARNINGS, main
from pipeline.summary import _latest, _store, collect
from tfdet.dataio import features
from tfdet.dataio.synthetic import generate_default_dataset
from tfdet.export.serving import is_complete, latest_version

ARGS = ["--model-config", "tiny", "--train-steps", "20", "--batch-size", "4", "--min-map50", "0.0",
        "--window-spans", "2", "--beam", "in-memory"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(data_root, output_root, *extra):
    return main(["--data-root", data_root, "--output-root", output_root, *ARGS, *extra])


def run_killed(data_root, output_root, component, delay, *extra):
    """The local runner as a subprocess, killed with SIGKILL ``delay`` s after ``component`` starts."""
    process = subprocess.Popen([sys.executable, "-m", "pipeline.local_runner", "--data-root", data_root,
                                "--output-root", output_root, *ARGS, *extra], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.strip().endswith(f"{component} ..."):
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)[-3000:]


def _status_json(output_root):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["status", "--output-root", output_root, "--json"])
    return buffer.getvalue()


def loads_and_serves(version_dir, data_root):
    from_examples, _ = serve(version_dir, data_root)
    return from_examples["num_detections"].numpy()


def corrupt_span(data_root: str, span: int) -> None:
    """A span whose converter was bypassed: an inverted box and a label out of range, beside good examples."""
    good_dir = os.path.join(data_root, "span-1")
    directory = os.path.join(data_root, f"span-{span}")
    os.makedirs(directory)
    for split in ("train", "eval"):
        records = list(tf.data.TFRecordDataset(tf.io.gfile.glob(f"{good_dir}/{split}-*.tfrecord")).as_numpy_iterator())
        with tf.io.TFRecordWriter(os.path.join(directory, f"{split}-00000-of-00001.tfrecord")) as writer:
            for i, raw in enumerate(records):
                example = tf.train.Example.FromString(raw)
                if split == "train" and i in (2, 5):
                    feature = example.features.feature
                    feature[features.SOURCE_ID].bytes_list.value[:] = [f"broken-{i}".encode()]
                    feature[features.YMIN].float_list.value[:] = [0.9]
                    feature[features.YMAX].float_list.value[:] = [0.1]
                    feature[features.XMIN].float_list.value[:] = [0.1]
                    feature[features.XMAX].float_list.value[:] = [0.5]
                    feature[features.LABEL].int64_list.value[:] = [1]
                    feature[features.TEXT].bytes_list.value[:] = [b"ellipse"]
                writer.write(example.SerializeToString())


def check_batch_inference(summary, data_root):
    """BulkInferrer's detections (through BatchDetections' COCO JSON) are the served model's own for the
    unlabelled images."""
    batch = summary["batch_inference"]
    assert {key: batch[key] for key in ("images_in", "scored", "refused")} == {"images_in": 4, "scored": 4,
                                                                               "refused": 0}
    results = json.load(open(os.path.join(batch["uri"], "detections.json")))
    images = json.load(open(os.path.join(batch["uri"], "images.json")))["images"]
    records = sorted(tf.data.TFRecordDataset(tf.io.gfile.glob(f"{data_root}/span-1/unlabelled-*.tfrecord"))
                     .as_numpy_iterator(), key=lambda r: tf.train.Example.FromString(r).features.feature[
                         features.SOURCE_ID].bytes_list.value[0])
    served = tf.saved_model.load(summary["pushed_model"]).signatures["serving_default"](examples=tf.constant(records))
    assert [image["id"] for image in images] == [0, 1, 2, 3] and batch["detections"] == len(results)
    for image in images:
        mine = [r for r in results if r["image_id"] == image["id"]]
        count = int(served["num_detections"][image["id"]])
        assert len(mine) == count > 0
        scale = np.array([image["height"], image["width"]] * 2)
        ymin, xmin, ymax, xmax = (served["detection_boxes"][image["id"], :count].numpy() * scale).T
        np.testing.assert_allclose([r["bbox"] for r in mine], np.stack([xmin, ymin, xmax - xmin, ymax - ymin], 1),
                                   atol=0.01)
        np.testing.assert_allclose([r["score"] for r in mine], served["detection_scores"][image["id"], :count],
                                   atol=1e-5)
        assert [r["category_id"] for r in mine] == served["detection_classes"][image["id"], :count].numpy().tolist()


def executions(metadata_path):
    store = _store(metadata_path)
    return store, store.get_executions()


def serve(pushed_dir, data_root):
    loaded = tf.saved_model.load(pushed_dir)
    records = list(tf.data.TFRecordDataset(tf.io.gfile.glob(f"{data_root}/span-1/eval-*.tfrecord"))
                   .take(2).as_numpy_iterator())
    from_examples = loaded.signatures["serving_default"](examples=tf.constant(records))
    encoded = [tf.train.Example.FromString(r).features.feature[features.ENCODED].bytes_list.value[0] for r in records]
    from_images = loaded.signatures["serving_images"](images=tf.constant(encoded))
    return from_examples, from_images


@pytest.mark.long(9)
@pytest.mark.timeout(1800)
def test_pipeline_runs_caches_gates_and_retrains(tmp_path, capsys):
    data_root = str(tmp_path / "data" / "small")
    output_root = str(tmp_path / "out")
    generate_default_dataset(str(tmp_path / "data"), "small", spans=(1,), num_train=24, num_eval=8, num_shards=2,
                             num_unlabelled=4)
    metadata_path = os.path.join(output_root, "metadata", "tfdet", "metadata.db")
    serving_dir = os.path.join(output_root, "serving_model", "tfdet")

    # 1. a good span: the whole DAG
    assert run(data_root, output_root) == 0
    printed = capsys.readouterr().out
    assert "examples: train 24, eval 8" in printed and "box gate: passed, 32 examples checked" in printed
    summary = collect(metadata_path)
    assert summary["anomalies"] == {"train": [], "eval": []}
    assert summary["gate"]["passed"] and summary["gate"]["examples_checked"] == {"train": 24, "eval": 8}
    assert summary["training"]["steps"] == 20 and summary["training"]["warm_started_from"] is None
    assert set(summary["metrics"]) == {"mAP", "mAP50", "mAR"} and 0.0 <= summary["metrics"]["mAP50"] <= 1.0
    assert summary["blessed"] and summary["pushed"]
    store = _store(metadata_path)
    transform_graph = _latest(store, "TransformGraph")
    vocabulary = open(os.path.join(transform_graph.uri, "transform_fn", "assets", "class_text")).read().split()
    assert set(vocabulary) <= {"rectangle", "ellipse", "triangle", "cross", "ring"} and vocabulary
    model = _latest(store, "Model")
    history = json.load(open(os.path.join(model.uri, "training_history.json")))
    assert len(history["dataset_statistics"]["pixel_mean"]) == 3
    assert 0.0 < history["dataset_statistics"]["box_height_mean"] < 1.0
    model_run = _latest(store, "ModelRun")
    assert any("tfevents" in name for _, _, names in os.walk(os.path.join(model_run.uri, "logs")) for name in names)
    for component in ("ImportExampleGen", "BoxGate", "Trainer", "Pusher", "BulkInferrer"):  # the console's lines
        assert f"{component} ..." in printed and any(
            line.split()[1:3] == [component, "COMPLETE"] for line in printed.splitlines() if line[:2].isdigit())
    assert "TensorBoard: tensorboard --logdir" in printed and "served model: " in printed
    assert summary["comparison"]["value_threshold_passed"] and summary["comparison"]["baseline_model"] is None
    blessing = _latest(store, "ModelBlessing", "CompareWithBaseline")
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert blessing.custom_properties["current_model_id"].int_value == model.id
    versions = os.listdir(serving_dir)
    assert len(versions) == 1 and summary["pushed_model"] == os.path.join(serving_dir, versions[0])
    from_examples, from_images = serve(summary["pushed_model"], data_root)
    for key in ("detection_boxes", "detection_scores", "num_detections"):
        np.testing.assert_allclose(from_examples[key].numpy(), from_images[key].numpy(), atol=1e-5)
    assert from_examples["num_detections"].dtype == tf.int32
    assert "batch inference: 4 unlabelled images, 4 scored, 0 refused" in printed
    check_batch_inference(summary, data_root)
    first_executions = len(store.get_executions())

    # 2. nothing new: every component is served from the cache
    assert run(data_root, output_root) == 0
    printed = capsys.readouterr().out
    store, runs = executions(metadata_path)
    second = runs[first_executions:]
    names = {t.id: t.name for t in store.get_execution_types()}
    states = {names[e.type_id]: e.last_known_state for e in second if "Resolver" not in names[e.type_id]}
    assert states and set(states.values()) == {metadata_store_pb2.Execution.CACHED}, states
    assert "Trainer                CACHED" in printed
    assert len(os.listdir(serving_dir)) == 1

    # 3. span 2, good and larger: warm start from the blessed model, trained on the window (spans 2 and 1),
    #    evaluated against the served model, blessed and pushed as a new version
    generate_default_dataset(str(tmp_path / "data"), "small", spans=(2,), num_train=32, num_eval=8, num_shards=2)
    run_killed(data_root, output_root, "Trainer", 3, "--max-map50-drop", "1.0")  # SIGKILL mid-training
    run_killed(data_root, output_root, "Pusher", 0, "--max-map50-drop", "1.0")  # SIGKILL as it pushes
    for version in os.listdir(serving_dir):  # whatever the kill left: only whole versions count
        if is_complete(os.path.join(serving_dir, version)):
            loads_and_serves(os.path.join(serving_dir, version), data_root)
    capsys.readouterr()
    assert run(data_root, output_root, "--max-map50-drop", "1.0") == 0
    printed = capsys.readouterr().out
    store = _store(metadata_path)
    names = {t.id: t.name for t in store.get_execution_types()}
    trainers = [e for e in store.get_executions() if names[e.type_id].endswith("Trainer")]
    assert len(trainers) >= 3 and sum(e.last_known_state == metadata_store_pb2.Execution.COMPLETE
                                      for e in trainers) == 2  # span 1's, and span 2's re-executed one
    assert "examples: train 32, eval 8" in printed and "warm start from the blessed model on spans 2, 1" in printed
    summary = collect(metadata_path)
    assert summary["training"]["warm_started_from"] == os.path.join(serving_dir, versions[0])
    store = _store(metadata_path)
    span_examples = {a.custom_properties["span"].int_value: a.uri for a in store.get_artifacts_by_type("Examples")
                     if f"{os.sep}ImportExampleGen{os.sep}" in a.uri}  # not UnlabelledExampleGen's
    history = json.load(open(os.path.join(_latest(store, "Model").uri, "training_history.json")))
    assert history["train_spans"] == [{"span": 2, "uri": span_examples[2]}, {"span": 1, "uri": span_examples[1]}]
    assert history["train_files"] == [os.path.join(span_examples[s], "Split-train", "*") for s in (2, 1)]
    comparison = summary["comparison"]
    assert comparison["baseline_model"] == os.path.join(serving_dir, versions[0])
    assert 0.0 <= comparison["candidate_map50"] <= 1.0 and 0.0 <= comparison["baseline_map50"] <= 1.0
    assert summary["blessed"] and "vs served" in printed
    versions = sorted((v for v in os.listdir(serving_dir) if is_complete(os.path.join(serving_dir, v))), key=int)
    assert len(versions) == 2 and summary["pushed_model"] == os.path.join(serving_dir, versions[-1])
    assert sorted(os.listdir(os.path.join(output_root, "tfdet", "accepted_spans"))) == [
        "span-1.json", "span-1.profile.json", "span-2.json", "span-2.profile.json"]  # each span once

    # 4. span 3 with corrupted boxes: the gate stops the run before the Trainer; span 2's model stays served
    corrupt_span(data_root, 3)
    models_before = len(store.get_artifacts_by_type("Model"))
    assert run(data_root, output_root) == 1
    printed = capsys.readouterr().out
    assert "box gate: FAILED (2 bad examples {'box_inverted': 2})" in printed
    assert "BoxGate stopped the pipeline: 2 of 32 examples have bad boxes or images" in printed
    assert any(line.split()[1:3] == ["BoxGate", "FAILED"] for line in printed.splitlines() if line[:2].isdigit())
    assert "source_id 'broken-2': box_inverted" in printed and "source_id 'broken-5'" in printed
    assert "nothing was trained or pushed; the served model is unchanged" in printed
    kept = printed.split("Full report: ")[1].split()[0]
    offenders = json.load(open(kept))["offending"]  # ExampleGen does not keep the record order
    assert {o["source_id"] for o in offenders} == {"broken-2", "broken-5"}
    assert "training:" not in printed
    store = _store(metadata_path)
    assert len(store.get_artifacts_by_type("Model")) == models_before  # the Trainer never ran
    assert sorted((v for v in os.listdir(serving_dir) if is_complete(os.path.join(serving_dir, v))),
                  key=int) == versions  # span 2's model is still the newest version
    registry = os.path.join(output_root, "tfdet", "accepted_spans")
    assert sorted(os.listdir(registry)) == ["span-1.json", "span-1.profile.json", "span-2.json",
                                            "span-2.profile.json"]  # span 3 never enters the window

    # 4b. the notebooks run headless against this pipeline's outputs
    import nbclient
    import nbformat

    os.environ["TFDET_OUTPUT_ROOT"] = output_root
    notebooks = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "notebooks")
    for name in ("data_validation.ipynb", "model_analysis.ipynb"):
        notebook = nbformat.read(os.path.join(notebooks, name), as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
        nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": notebooks}}).execute()
        text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
        assert any("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))
        assert "pipeline outputs: " + output_root in text
        if name == "data_validation.ipynb":
            # the newest span is the rejected one: its statistics and the failed verdict
            assert "examples: train 24 eval 8" in text and "BoxGate passed: False" in text and "box_inverted" in text
            assert "drift span 1 -> 2: classes L-inf " in text  # the two accepted spans, plotted
        else:
            assert "TFMA (eval split):" in text and "per-class AP" in text
            assert "per-class AP@0.5 0: candidate " in text  # span 2's model against span 1's, plotted
            assert "evaluated on: " + span_examples[2] in text  # not the rejected span 3
            assert "served model: " + os.path.join(serving_dir, versions[-1]) in text

    # 5. span 4: refused by the value threshold and by the change threshold (here: it must beat the served model
    #    by 1.0); nothing is pushed and the served model still serves
    generate_default_dataset(str(tmp_path / "data"), "small", spans=(4,), num_train=24, num_eval=8, num_shards=2)
    served_before = loads_and_serves(os.path.join(serving_dir, versions[-1]), data_root)
    assert run(data_root, output_root, "--min-map50", "0.99", "--max-map50-drop", "-1.0") == 3
    printed = capsys.readouterr().out
    comparison = collect(metadata_path)["comparison"]
    assert not comparison["blessed"] and comparison["baseline_model"] == os.path.join(serving_dir, versions[-1])
    value, change = comparison["reasons"][:2]
    assert value == f"mAP@0.5 {comparison['candidate_map50']:.3f} is below the value threshold 0.99 (TFMA Evaluator)"
    assert change.startswith(f"mAP@0.5 {comparison['candidate_map50']:.3f} vs served "
                             f"{comparison['baseline_map50']:.3f}: a change of ") and change.endswith(
        "below the least allowed +1.000 (max_map50_drop)")
    assert "blessed: NO" in printed and f"not blessed: {change}" in printed
    assert "the candidate was NOT blessed: nothing was pushed; the served model is unchanged" in printed
    assert "batch inference: nothing scored (the candidate model was not blessed, so BulkInferrer scored " \
        "nothing)" in printed
    assert [v for v in sorted(os.listdir(serving_dir), key=int) if is_complete(os.path.join(serving_dir, v))] == \
        versions
    np.testing.assert_array_equal(loads_and_serves(os.path.join(serving_dir, versions[-1]), data_root),
                                  served_before)

    # 6. status and rollback; the next run warm-starts from and compares against the restored version
    assert main(["status", "--output-root", output_root, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [entry["version"] for entry in status] == [int(v) for v in reversed(versions)]
    newest = status[0]
    assert newest["training"]["spans"] == [2, 1] and newest["training"]["steps"] == 20
    assert newest["training"]["model_config"] == "tiny" and newest["training"]["code"]["version"]
    assert newest["blessing"]["blessed"] and newest["blessing"]["baseline_model"].endswith(versions[0])
    assert main(["rollback", "--output-root", output_root, "--to", versions[0]]) == 0
    assert "is served again as" in capsys.readouterr().out
    restored = sorted(os.listdir(serving_dir), key=int)[-1]
    np.testing.assert_array_equal(loads_and_serves(os.path.join(serving_dir, restored), data_root),
                                  loads_and_serves(os.path.join(serving_dir, versions[0]), data_root))
    assert main(["status", "--output-root", output_root]) == 0
    printed = capsys.readouterr().out
    assert f"v{restored}" in printed and f"ROLLBACK to v{versions[0]}" in printed
    (entry,) = [e for e in json.loads(_status_json(output_root)) if str(e["version"]) == restored]
    assert entry["training"]["spans"] == [1]  # the lineage of the restored model is version 1's
    assert latest_version(serving_dir) == os.path.join(serving_dir, restored)  # what the Trainer and the
    assert main(["rollback", "--output-root", output_root, "--to", "12345"]) == 2  # comparison read next


def test_the_runner_silences_only_tfmas_nan_precision_warning_in_worker_processes():
    """A Beam worker inherits PYTHONWARNINGS: TFMA's 0 / 0 precision warning is dropped, the same warning
    from any other module still shows."""
    assert os.environ["PYTHONWARNINGS"].split(",")[-2:] == list(QUIET_WARNINGS)  # set on import
    emit = ("import warnings\n"
            "for module, line in (('tensorflow_model_analysis.metrics.confusion_matrix_metrics', 845), ('mine', 7)):\n"
            "    warnings.warn_explicit('invalid value encountered in divide', RuntimeWarning, 'm.py', line,"
            " module=module)\n")
    worker = subprocess.run([sys.executable, "-c", emit], env=dict(os.environ), capture_output=True, text=True,
                            check=True)
    assert "m.py:7: RuntimeWarning: invalid value encountered in divide" in worker.stderr
    assert "m.py:845" not in worker.stderr


def test_the_runner_sets_the_same_filters_in_its_own_process():
    """The runner's own process drops what its workers drop (the filters read from QUIET_WARNINGS as -W reads
    them), and nothing else."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from pipeline import local_runner

        local_runner._quiet_warnings()
        for module, line in (("tensorflow_model_analysis.metrics.confusion_matrix_metrics", 845), ("mine", 7),
                             ("tensorflow_model_analysis.metrics.confusion_matrix_metrics_x", 9)):
            warnings.warn_explicit("invalid value encountered in divide", RuntimeWarning, "m.py", line, module=module)
        warnings.warn_explicit("an old API", FutureWarning, "m.py", 3, module="mine")
        warnings.warn_explicit("an old API", DeprecationWarning, "m.py", 4, module="mine")
    assert sorted(w.lineno for w in caught) == [4, 7, 9]
