"""The whole TFX DAG on the local Beam runner: the retraining story a platform engineer relies on, end to end, on
data the tiny model learns within its steps (tests/pipeline/learnable_data.py), with a real blessing bar (COCO
mAP@0.5 >= 0.5) that an untrained model fails. ``make test-slow`` (also run by ``.ci/run``).

1. span 1 on the multi-processing DirectRunner (what ``make run`` uses): every component runs; the model clears
   the bar, is pushed with its class names; batch inference scores the unlabelled images;
2. nothing new: served from the cache;
3. span 2: the Trainer is killed after its first checkpoint and resumes from it when rerun; the Pusher is killed
   with a partial version on disk; the rerun serves only whole versions, and no span is lost or counted twice;
4. span 3 with corrupted boxes, span 4 whose classes drifted, span 5 whose eval split holds an image span 1 trained
   on: the gate stops each, naming what is wrong and by how much; the notebooks run against this state;
5. span 6, sound pixels with every label swapped: trained, genuinely worse, refused; nothing pushed, the served
   model unchanged and still serving;
6. status and rollback; span 7 then warm-starts from, and is compared with, the restored version.

The blessed and the refused run's model cards are opened in headless Chromium (``make browser`` installs it).
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
from card_checks import check_card  # tests/ is on the path (its conftest)
from learnable_data import write_span
from ml_metadata.proto import metadata_store_pb2

from pipeline.configs import output_layout
from pipeline.local_runner import QUIET_WARNINGS, main
from pipeline.operations.summary import _latest, _store, collect
from tfdet.dataio import features
from tfdet.dataio.tfrecord_files import read_records
from tfdet.evaluation.saved_model import evaluate_saved_model
from tfdet.export.serving import is_complete, latest_version, versions
from tfdet.weights.detector import newest_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = ["--model-config", "tiny", "--train-steps", "80", "--min-map50", "0.5",
        "--window-spans", "2", "--min-drift-examples", "20", "--seed", "0", "--beam", "in-memory"]


def run(data_root, output_root, *extra):
    return main(["--data-root", str(data_root), "--output-root", str(output_root), *ARGS, *extra])


def start(data_root, output_root, *extra, wrapper=()):
    """The local runner as a subprocess of its own session (so that a kill takes its workers too)."""
    return subprocess.Popen([sys.executable, *(wrapper or ["-m", "pipeline.local_runner"]), "--data-root",
                             str(data_root), "--output-root", str(output_root), *ARGS, *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_when(process, ready, timeout=900):
    """SIGKILLs ``process`` (and its session) once ``ready()`` returns something; returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = ready()
        if found:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(60)
            return found
        time.sleep(0.1)
    raise AssertionError(f"the moment to kill never came (exit {process.poll()}):\n{process.stdout.read()[-3000:]}")


def corrupt_span(data_root, span: int) -> None:
    """A span whose converter was bypassed: an inverted box beside good examples (span 1's, rewritten)."""
    good_dir = os.path.join(data_root, "span-1")
    directory = os.path.join(data_root, f"span-{span}")
    os.makedirs(directory)
    for split in ("train", "eval"):
        records = read_records(f"{good_dir}/{split}-*.tfrecord")
        with tf.io.TFRecordWriter(os.path.join(directory, f"{split}-00000-of-00001.tfrecord")) as writer:
            for i, raw in enumerate(records):
                example = tf.train.Example.FromString(raw)
                if split == "train" and i in (2, 5):
                    feature = example.features.feature
                    feature[features.SOURCE_ID].bytes_list.value[:] = [f"broken-{i}".encode()]
                    for key, value in zip(features.BOX_KEYS, (0.9, 0.1, 0.1, 0.5)):  # ymin > ymax
                        feature[key].float_list.value[:] = [value]
                    feature[features.LABEL].int64_list.value[:] = [1]
                    feature[features.TEXT].bytes_list.value[:] = [b"disc"]
                writer.write(example.SerializeToString())


def served_detections(version_dir, data_root):
    records = read_records(f"{data_root}/span-1/eval-*.tfrecord")[:4]
    out = tf.saved_model.load(version_dir).signatures["serving_default"](examples=tf.constant(records))
    return out["num_detections"].numpy(), out["detection_boxes"].numpy()


def check_batch_inference(summary, data_root):
    """BulkInferrer's detections (through BatchDetections' COCO JSON) are the served model's own."""
    batch = summary["batch_inference"]
    assert {key: batch[key] for key in ("images_in", "scored", "refused")} == {"images_in": 4, "scored": 4,
                                                                               "refused": 0}
    results = json.load(open(os.path.join(batch["uri"], "detections.json")))
    images = json.load(open(os.path.join(batch["uri"], "images.json")))["images"]
    records = sorted(read_records(f"{data_root}/span-1/unlabelled-*.tfrecord"),
                     key=lambda r: features.read_example(r)["source_id"])
    served = tf.saved_model.load(summary["pushed_model"]).signatures["serving_default"](examples=tf.constant(records))
    assert [image["id"] for image in images] == [0, 1, 2, 3] and batch["detections"] == len(results)
    categories = json.load(open(os.path.join(batch["uri"], "images.json")))["categories"]
    assert categories == [{"id": 0, "name": "square"}, {"id": 1, "name": "disc"}]  # the served model's label map
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


def file_hashes(version_dir):
    """sha256 of every file of a version folder, by its path inside the folder."""
    import hashlib

    found = {}
    for directory, _, names in os.walk(version_dir):
        for name in names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, version_dir)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def blessing_file(store, name):
    """A file of the newest blessing (what the decision and the model card were made from)."""
    return json.load(open(os.path.join(_latest(store, "ModelBlessing", "CompareWithBaseline").uri, name)))


def tf_serving_versions(serving_dir):
    """The folders TF Serving's file-system source aspires: every name in the model's base path that is a number."""
    return sorted((name for name in os.listdir(serving_dir) if name.isdigit()), key=int)


def gate_lines(printed):
    return [line for line in printed.splitlines() if line.startswith("the run stopped: BoxGate")]


@pytest.mark.slow
@pytest.mark.long(25)
@pytest.mark.timeout(3600)
def test_the_retraining_story(tmp_path, capsys):
    data_root, output_root = tmp_path / "data", tmp_path / "out"
    layout = output_layout(str(output_root))
    metadata_path, serving_dir = layout["metadata_path"], layout["serving_model_dir"]
    span_1 = write_span(str(data_root), 1, num_unlabelled=4)

    # 1. span 1 on the multi-processing DirectRunner: trained, above the real bar, pushed with its class names
    assert run(data_root, output_root, "--beam", "direct") == 0
    printed = capsys.readouterr().out
    summary = collect(metadata_path, layout["pipeline_root"])
    assert "examples: train 48, eval 16" in printed and "box gate: passed, 64 examples checked" in printed
    assert summary["anomalies"] == {"train": [], "eval": []} and summary["gate"]["passed"]
    assert summary["training"]["steps"] == 80 and summary["training"]["initialisation"] == "random init"
    comparison = summary["comparison"]
    assert comparison["blessed"] and comparison["candidate_map50"] >= 0.5 and comparison["baseline_model"] is None
    assert comparison["classes_without_eval_boxes"] == []
    assert (f"evaluation (COCO mAP by pycocotools, eval split): mAP@0.5 {comparison['candidate_map50']:.3f}"
            in printed)
    assert "training: 80 steps (random init) on spans 1, loss" in printed
    store = _store(metadata_path)
    transform_graph = _latest(store, "TransformGraph")
    assert sorted(open(os.path.join(transform_graph.uri, "transform_fn", "assets", "class_text")).read().split()) \
        == ["disc", "square"]
    model = _latest(store, "Model")
    history = json.load(open(os.path.join(model.uri, "training_history.json")))
    assert history["class_names"] == {"0": "square", "1": "disc"} and history["seed"] == 0
    assert len(history["dataset_statistics"]["pixel_mean"]) == 3
    evaluation = _latest(store, "ModelEvaluation")  # TFMA's analysis is still made, beside the decision
    assert {"mAP", "mAP50", "mAR"} <= set(
        __import__("tensorflow_model_analysis").load_eval_result(evaluation.uri).slicing_metrics[0][1][""][""])
    versions_now = versions(serving_dir)
    assert len(versions_now) == 1 and summary["pushed_model"] == versions_now[0]
    assert json.load(open(os.path.join(versions_now[0], "label_map.json"))) == {"0": "square", "1": "disc"}
    assert json.load(open(os.path.join(versions_now[0], "tfdet_model.json")))["model"]["head"]["num_classes"] == 2
    # the served version carries the card the run printed, the same file; Chromium shows the blessing's figures
    card = os.path.join(versions_now[0], "assets.extra", "model_card.html")
    assert f"model card: {summary['model_card']}" in printed
    assert open(card).read() == open(summary["model_card"]).read()
    check_card(card, str(tmp_path), comparison, blessing_file(store, "evaluation.json")["candidate"],
               summary["gate"], {0: "square", 1: "disc"})
    check_batch_inference(summary, data_root)
    # the bar is real: the same detector untrained, served the same way, scores far below it -- one whose prior
    # puts every anchor's score at 0.5, so that it answers with a full set of (random) detections, not with none
    import tfdet
    from tfdet.export import export_saved_model

    guesser = tfdet.create_model("tiny", num_classes=2, **{"head.prior_prob": 0.5})
    untrained = export_saved_model(guesser, str(tmp_path / "untrained"))
    eval_records = read_records(f"{data_root}/span-1/eval-*.tfrecord")
    guesses = tf.saved_model.load(untrained).signatures["serving_default"](examples=tf.constant(eval_records))
    assert guesses["num_detections"].numpy().min() >= 50  # it does answer, for every image
    assert evaluate_saved_model(untrained, eval_records, 2)["AP50"] < 0.1

    # 2. nothing new: every component is served from the cache (the same arguments: Beam's are part of the key)
    executions_before = len(store.get_executions())
    assert run(data_root, output_root, "--beam", "direct") == 0
    printed = capsys.readouterr().out
    store = _store(metadata_path)
    names = {t.id: t.name for t in store.get_execution_types()}
    states = {names[e.type_id]: e.last_known_state for e in store.get_executions()[executions_before:]
              if "Resolver" not in names[e.type_id]}
    assert states and set(states.values()) == {metadata_store_pb2.Execution.CACHED}, states
    assert len(versions(serving_dir)) == 1

    # 3. span 2: killed in the Trainer once a checkpoint exists, resumed from it; killed in the Pusher with a
    #    partial version on disk; the rerun serves whole versions only, trained on spans 2 and 1, each once
    write_span(str(data_root), 2)
    span_2 = ["--train-steps", "300"]  # long enough to kill between its first checkpoint and its end
    checkpoints = os.path.join(layout["pipeline_root"], "Trainer", "checkpoints")
    process = start(data_root, output_root, *span_2)
    # the moment a whole checkpoint is on disk, recorded or not (TensorFlow writes it before its record)
    found = kill_when(process, lambda: [prefix for folder in tf.io.gfile.glob(f"{checkpoints}/*/checkpoints")
                                        for prefix in [newest_checkpoint(folder)] if prefix])
    assert found and _latest(_store(metadata_path), "Model").uri == model.uri  # the killed Trainer left no model
    assert len(versions(serving_dir)) == 1  # nothing pushed by the killed run
    marker = str(tmp_path / "pusher_paused")
    process = start(data_root, output_root, *span_2, wrapper=[os.path.join(HERE, "paused_pusher.py"), marker])
    served_before = tf_serving_versions(serving_dir)
    partial = kill_when(process, lambda: os.path.exists(marker) and open(marker).read())
    assert os.path.isdir(partial) and not is_complete(partial)  # the Pusher died mid-copy
    # what TF Serving's file-system source sees (every numbered folder): not one more than before
    assert tf_serving_versions(serving_dir) == served_before and os.path.basename(partial).startswith(".")
    trained = _latest(_store(metadata_path), "Model")
    history = json.load(open(os.path.join(trained.uri, "training_history.json")))
    assert history["resumed_from"] and history["resumed_from"].startswith(os.path.dirname(found[0]))
    assert history["initialisation"].startswith("resumed from ")
    assert history["warm_started_from"] == versions_now[0]
    assert run(data_root, output_root, *span_2) == 0
    printed = capsys.readouterr().out
    summary = collect(metadata_path, layout["pipeline_root"])
    whole = versions(serving_dir)
    assert len(whole) == 2 and summary["pushed_model"] == whole[-1], printed[-4000:]
    # the next push cleared what the cut one left; every numbered folder is a whole version
    assert not os.path.exists(partial) and tf_serving_versions(serving_dir) == [os.path.basename(v) for v in whole]
    assert latest_version(serving_dir) == whole[-1]
    assert "examples: train 48, eval 16" in printed and "on spans 2, 1" in printed
    assert summary["comparison"]["baseline_model"] == whole[0]
    registry = os.path.join(layout["pipeline_root"], "accepted_spans")
    entries = [json.load(open(os.path.join(registry, f"span-{n}.json"))) for n in (1, 2)]
    assert sorted(os.listdir(registry)) == ["span-1.json", "span-1.profile.json", "span-2.json",
                                            "span-2.profile.json"]  # each span once
    assert [e["examples_checked"] for e in entries] == [{"train": 48, "eval": 16}] * 2
    assert not tf.io.gfile.glob(f"{checkpoints}/*")  # removed once the model was exported

    # 4. bad spans stop at the gate, each with what is wrong and by how much; the served model stays
    corrupt_span(str(data_root), 3)
    assert run(data_root, output_root) == 1
    printed = capsys.readouterr().out
    assert "box gate: FAILED (2 bad examples {'box_inverted': 2})" in printed
    assert "train source_id 'broken-2' (box_inverted)" in printed and "train source_id 'broken-5'" in printed
    assert "nothing was trained or pushed; the served model is unchanged" in printed
    write_span(str(data_root), 4, only_class=1)  # every box a disc: the classes moved from span 2's
    assert run(data_root, output_root) == 1
    printed = capsys.readouterr().out
    (reason,) = gate_lines(printed)
    previous = json.load(open(os.path.join(registry, "span-2.profile.json")))["train_distributions"]["classes"]
    moved = round(previous["0"], 4)  # the squares' share, gone; the discs' grew by as much
    assert (f"Drift: classes moved {moved} (L-infinity) from span 2, more than 0.2: now {{'1': 1.0}}, before "
            f"{previous}") in reason
    seen = span_1["train"][0]  # an image span 1 trained on, in span 5's eval split
    write_span(str(data_root), 5, eval_extra=[dict(seen, source_id="reused")])
    assert run(data_root, output_root) == 1
    printed = capsys.readouterr().out
    (reason,) = gate_lines(printed)
    assert (f"Leakage: train image(s) {seen['source_id']} have the same bytes as eval image(s) reused of this span's "
            f"eval split, trained on in accepted span 1.") in reason
    assert sorted(os.listdir(registry)) == ["span-1.json", "span-1.profile.json", "span-2.json",
                                            "span-2.profile.json"]  # none of spans 3-5 enters the window
    assert versions(serving_dir) == whole

    import nbclient
    import nbformat

    os.environ["TFDET_OUTPUT_ROOT"] = str(output_root)
    notebooks = os.path.join(REPO, "notebooks")
    for name in ("data_validation.ipynb", "model_analysis.ipynb"):
        notebook = nbformat.read(os.path.join(notebooks, name), as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
        nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": notebooks}}).execute()
        text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
        assert any("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))
        assert "pipeline outputs: " + str(output_root) in text
        if name == "data_validation.ipynb":
            assert "BoxGate passed: False" in text and "drift span 1 -> 2: classes L-inf " in text
        else:
            assert "TFMA analysis (eval split): {" in text and "per-class AP@0.5 square: candidate " in text
            assert "served model: " + whole[-1] in text

    # 5. span 6: sound pixels, every train label swapped: trained on it alone, genuinely worse, refused
    write_span(str(data_root), 6, swap_train_labels=True)
    before = served_detections(whole[-1], data_root)
    assert run(data_root, output_root, "--window-spans", "1") == 3
    printed = capsys.readouterr().out
    comparison = collect(metadata_path)["comparison"]
    assert not comparison["blessed"] and comparison["baseline_model"] == whole[-1]
    assert comparison["candidate_map50"] < 0.5 <= comparison["baseline_map50"]
    # each rule refuses it on its own numbers: the value bar, the change against the served model, and the classes
    reasons = comparison["reasons"]
    assert any(r.startswith(f"mAP@0.5 {comparison['candidate_map50']:.3f} is below the value threshold 0.5 "
                            f"(min_map50; pycocotools, eval split: mean over 2 classes with eval boxes)")
               for r in reasons), reasons
    assert any(r.startswith(f"mAP@0.5 {comparison['candidate_map50']:.3f} vs served "
                            f"{comparison['baseline_map50']:.3f}: a change of -") and "(max_map50_drop;" in r
               for r in reasons), reasons
    assert sorted(r.split(" AP@0.5 ")[0] for r in reasons if "(max_class_ap50_drop;" in r) == [
        "class 'disc'", "class 'square'"], reasons  # both classes lost more than 0.1, each named
    assert "blessed: NO" in printed and "the candidate was NOT blessed: nothing was pushed" in printed
    refused = collect(metadata_path)["model_card"]  # in the run's outputs, leading with the refusal
    check_card(refused, str(tmp_path), comparison, blessing_file(_store(metadata_path), "evaluation.json")["candidate"])
    assert not any(os.path.exists(os.path.join(v, "assets.extra", "model_card.html")) and
                   open(os.path.join(v, "assets.extra", "model_card.html")).read() == open(refused).read()
                   for v in versions(serving_dir))
    assert versions(serving_dir) == whole
    for now, then in zip(served_detections(whole[-1], data_root), before):
        np.testing.assert_array_equal(now, then)  # the served model still serves, unchanged

    # 6. status and rollback; the next span warm-starts from the restored version and is compared with it
    assert main(["status", "--output-root", str(output_root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [entry["version"] for entry in status] == [int(os.path.basename(v)) for v in reversed(whole)]
    assert status[0]["training"]["spans"] == [2, 1] and status[0]["blessing"]["blessed"]
    assert [entry["model_card"] for entry in status] == [os.path.join(v, "assets.extra", "model_card.html")
                                                         for v in reversed(whole)]
    first = os.path.basename(whole[0])
    assert main(["rollback", "--output-root", str(output_root), "--to", first]) == 0
    restored = latest_version(serving_dir)
    assert os.path.basename(restored) not in (first, os.path.basename(whole[-1]))
    # restored by content: every file byte-equal to v<first>'s, the same detections, and the lineage says so
    assert file_hashes(restored) == file_hashes(whole[0]) != file_hashes(whole[-1])
    for now, then in zip(served_detections(restored, data_root), served_detections(whole[0], data_root)):
        np.testing.assert_array_equal(now, then)
    capsys.readouterr()
    assert main(["status", "--output-root", str(output_root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status[0]["version"] == int(os.path.basename(restored)) and status[0]["rollback_of"] == f"v{first}"
    assert status[0]["training"]["model_uri"] == status[-1]["training"]["model_uri"]  # v<first>'s own lineage
    write_span(str(data_root), 7)
    assert run(data_root, output_root, "--window-spans", "1") == 0
    capsys.readouterr()
    summary = collect(metadata_path, layout["pipeline_root"])
    history = json.load(open(os.path.join(_latest(_store(metadata_path), "Model").uri, "training_history.json")))
    assert history["warm_started_from"] == restored and summary["comparison"]["baseline_model"] == restored
    assert main(["rollback", "--output-root", str(output_root), "--to", "12345"]) == 2


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
