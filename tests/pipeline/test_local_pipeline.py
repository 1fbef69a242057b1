"""The whole TFX DAG on the local Beam runner, tiny data and a tiny model: one test walks the
retraining story through four runs (rolling window of 2 spans).

1. span 1 (good): every component runs; every artifact is checked; the model is pushed;
2. nothing new: served from the cache;
3. span 2 (good, more data): the Trainer warm-starts from the served (= latest blessed) model, trains on
   spans 2 and 1, CompareWithBaseline evaluates both models on the eval split, blesses, a new version is pushed;
4. span 3 with corrupted boxes: BoxGate stops the run before the Trainer; span 2's model stays served
   and span 3 never enters the window.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipeline.local_runner import main
from pipeline.summary import _latest, _store, collect
from tfdet.dataio import features
from tfdet.dataio.synthetic import generate_default_dataset


def run(data_root, output_root, *extra):
    return main(["--data-root", data_root, "--output-root", output_root, "--model-config", "tiny",
                 "--train-steps", "20", "--batch-size", "4", "--min-map50", "0.0", "--window-spans", "2", *extra])


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


@pytest.mark.timeout(1800)
def test_pipeline_runs_caches_gates_and_retrains(tmp_path, capsys):
    data_root = str(tmp_path / "data" / "small")
    output_root = str(tmp_path / "out")
    generate_default_dataset(str(tmp_path / "data"), "small", spans=(1,), num_train=24, num_eval=8, num_shards=2)
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
    for component in ("ImportExampleGen", "BoxGate", "Trainer", "Pusher"):  # the console's progress lines
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
    assert run(data_root, output_root, "--max-map50-drop", "1.0") == 0
    printed = capsys.readouterr().out
    assert "examples: train 32, eval 8" in printed and "warm start from the blessed model on spans 2, 1" in printed
    summary = collect(metadata_path)
    assert summary["training"]["warm_started_from"] == os.path.join(serving_dir, versions[0])
    store = _store(metadata_path)
    span_examples = {a.custom_properties["span"].int_value: a.uri for a in store.get_artifacts_by_type("Examples")}
    history = json.load(open(os.path.join(_latest(store, "Model").uri, "training_history.json")))
    assert history["train_spans"] == [{"span": 2, "uri": span_examples[2]}, {"span": 1, "uri": span_examples[1]}]
    assert history["train_files"] == [os.path.join(span_examples[s], "Split-train", "*") for s in (2, 1)]
    comparison = summary["comparison"]
    assert comparison["baseline_model"] == os.path.join(serving_dir, versions[0])
    assert 0.0 <= comparison["candidate_map50"] <= 1.0 and 0.0 <= comparison["baseline_map50"] <= 1.0
    assert summary["blessed"] and "vs served" in printed
    versions = sorted(os.listdir(serving_dir), key=int)
    assert len(versions) == 2 and summary["pushed_model"] == os.path.join(serving_dir, versions[-1])

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
    assert sorted(os.listdir(serving_dir), key=int) == versions  # span 2's model is still the newest version
    registry = os.path.join(output_root, "tfdet", "accepted_spans")
    assert sorted(os.listdir(registry)) == ["span-1.json", "span-2.json"]  # span 3 never enters the window

    # 5. the notebooks run headless against this pipeline's outputs
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
        assert "pipeline outputs: " + output_root in text
        if name == "data_validation.ipynb":
            # the newest span is the rejected one: its statistics and the failed verdict
            assert "examples: train 24 eval 8" in text and "BoxGate passed: False" in text and "box_inverted" in text
        else:
            assert "TFMA (eval split):" in text and "per-class AP" in text
            assert "evaluated on: " + span_examples[2] in text  # not the rejected span 3
            assert "served model: " + os.path.join(serving_dir, versions[-1]) in text
