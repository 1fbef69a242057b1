"""models/trainer.py: distributed training with MultiWorkerMirroredStrategy, and the rolling window."""

import json
import os
import socket
import subprocess
import sys
import types

import numpy as np
import pytest

from models.trainer import train, window_files
from tfdet.dataio import spans

WORKER = os.path.join(os.path.dirname(__file__), "mwms_worker.py")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.timeout(600)
def test_two_workers_train_in_step_and_end_with_the_same_weights(default_data, tmp_path):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes, outputs = [], []
    for index in range(2):
        out = str(tmp_path / f"worker-{index}.json")
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                     "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen([sys.executable, WORKER, default_data, out], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs.append(out)
    logs = [process.communicate(timeout=540)[0] for process in processes]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    first, second = (json.load(open(out)) for out in outputs)

    assert first["is_chief"] and not second["is_chief"]
    assert first["record"]["distribution"] == {"strategy": "MultiWorkerMirroredStrategy", "replicas": 2}
    assert first["iterations"] == second["iterations"] == 4
    # the strategy broadcasts worker 0's initial weights; every step applies the same all-reduced gradient
    for a, b in zip(first["initial"], second["initial"], strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    changed = 0
    for start, a, b in zip(first["initial"], first["final"], second["final"], strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=0, atol=1e-6)
        changed += not np.allclose(np.array(start), np.array(a))
    assert changed > len(first["final"]) // 2  # the workers trained, not just stayed at the shared start
    # the logged loss is the mean over both replicas, so the same on both workers
    assert np.isfinite(first["record"]["loss"]).all() and first["record"]["loss"] == second["record"]["loss"]


def test_window_files_add_the_accepted_spans_before_the_newest(tmp_path):
    registry = str(tmp_path / "accepted_spans")
    uris = {}
    for span in (1, 2, 3):
        uris[span] = str(tmp_path / "ExampleGen" / "examples" / str(span))
        os.makedirs(os.path.join(uris[span], "Split-train"))
        spans.register(registry, span, 0, uris[span], {"train": 1})
    fn_args = types.SimpleNamespace(train_files=[os.path.join(uris[3], "Split-train", "*")])
    files, window = window_files(fn_args, {"window_spans": 2, "accepted_spans_dir": registry})
    assert files == [os.path.join(uris[3], "Split-train", "*"), os.path.join(uris[2], "Split-train", "*")]
    assert [s["span"] for s in window] == [3, 2]
    assert window_files(fn_args, {"window_spans": 1, "accepted_spans_dir": registry}) == (fn_args.train_files, [])


@pytest.mark.timeout(300)
def test_mirrored_training_on_one_machine_records_its_strategy(default_data, tmp_path):
    """The Kubeflow default (mirrored over the pod's devices; here the one CPU) through train()."""
    fn_args = types.SimpleNamespace(
        train_files=[os.path.join(default_data, "train-*.tfrecord")], train_steps=2, transform_graph_path=None,
        model_run_dir=str(tmp_path / "Trainer" / "model_run" / "1"),
        custom_config={"model_config": "tiny", "num_classes": 5, "batch_size": 2, "distribution": "mirrored"})
    model, record = train(fn_args)
    assert record["distribution"] == {"strategy": "MirroredStrategy", "replicas": 1}
    assert int(model.optimizer.iterations.numpy()) == 2 and np.isfinite(record["loss"]).all()
    assert record["train_files"] == fn_args.train_files and record["warm_started_from"] is None


@pytest.mark.timeout(300)
def test_warm_start_survives_a_class_count_change(default_data, tmp_path):
    """The served model had 5 classes; the new data brings 2 more: everything but the class logits carries over."""
    import tensorflow as tf

    import tfdet
    from tfdet.export import export_saved_model

    served = tfdet.create_model("tiny", num_classes=5)  # any trained weights would do: these are random
    export_saved_model(served, str(tmp_path / "serving" / "1"))
    fn_args = types.SimpleNamespace(
        train_files=[os.path.join(default_data, "train-*.tfrecord")], train_steps=2, transform_graph_path=None,
        model_run_dir=str(tmp_path / "Trainer" / "model_run" / "1"),
        custom_config={"model_config": "tiny", "num_classes": 5, "batch_size": 2})
    fn_args.train_steps = 1  # with a learning rate of 0: compare the weights as restored
    fn_args.custom_config = dict(fn_args.custom_config, num_classes=7, warm_start_dir=str(tmp_path / "serving"),
                                 learning_rate=0.0)
    model, record = train(fn_args)
    assert record["warm_started_from"] == str(tmp_path / "serving" / "1")
    assert record["reinitialised_on_warm_start"] == ["retina_cls"]
    assert model.num_classes == 7 and model.head.retina_cls.kernel.shape[-1] == 7 * model.head.num_anchors
    for kept, restored in ((served.neck, model.neck), (served.head.retina_reg, model.head.retina_reg),
                           *zip(served.head.cls_convs + served.head.reg_convs,
                                model.head.cls_convs + model.head.reg_convs, strict=True)):
        assert kept.weights
        for a, b in zip(kept.weights, restored.weights, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    x = tf.random.uniform([1, 128, 128, 3], seed=3)
    for a, b in zip(served.backbone(x, return_features=True), model.backbone(x, return_features=True), strict=True):
        # folded kernels: their rounding carried through 4 stages
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=5e-4)


def test_class_names_the_training_split_lacks_come_from_the_spans_label_maps(default_data, monkeypatch):
    """A class the window's training data never shows keeps its label-map name, so a refusal says 'ring', not '4'."""
    from models import trainer

    monkeypatch.setattr(trainer, "dataset_statistics", lambda path, example: {
        "label_map": {0: "square", 1: "disc"}, "class_vocabulary": ["disc", "square"]})
    fn_args = types.SimpleNamespace(transform_graph_path="transform", train_files=[os.path.join(default_data,
                                                                                         "train-*.tfrecord")])
    stats, names = trainer.data_classes(fn_args, 5, {"0": "square", "4": "ring"})
    assert names == {0: "square", 1: "disc", 4: "ring"} and stats == {"class_vocabulary": ["disc", "square"]}
    monkeypatch.setattr(trainer, "dataset_statistics", lambda path, example: {
        "label_map": {0: "box"}, "class_vocabulary": ["box"]})
    assert trainer.data_classes(fn_args, 5, {"0": "square"})[1] == {0: "box"}  # what the data says wins
