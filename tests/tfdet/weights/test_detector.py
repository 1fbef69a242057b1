import numpy as np
import pytest
import tensorflow as tf

from tfdet.export import export_saved_model
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.weights import CheckpointError
from tfdet.weights.detector import newest_checkpoint, restore_detector


def build(config):
    return OneStageModel(ConfigOneStage(**config)).build_model()


def neck_and_head_weights(model):
    """Every weight of the neck and of the head but its class logits, in a fixed order."""
    parts = [model.neck] + [getattr(model.head, name) for name in
                            ("cls_convs", "cls_norms", "reg_convs", "reg_norms", "retina_reg")]
    weights = [w for part in parts for layer in (part if isinstance(part, list) else [part]) if layer is not None
               for w in layer.weights]
    assert len(weights) >= 16  # the FPN, both towers with their norms and the regressor, not a few layers
    return weights


def perturb(model, seed=0):
    rng = np.random.RandomState(seed)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("root_conftest", os.path.join(os.path.dirname(__file__), "..", "..",
                                                                               "conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = build(module.tiny_model_config(num_classes=5))
    perturb(model)
    folder = tmp_path_factory.mktemp("served")
    export_saved_model(model, str(folder / "1"))
    model.save_weights(str(folder / "ckpt" / "weights"))
    return model, str(folder), module.tiny_model_config


@pytest.mark.parametrize("source", ["1", "ckpt/weights"])
def test_same_classes_restore_everything(trained, source):
    model, folder, config = trained
    fresh = build(config(num_classes=5))
    report = restore_detector(fresh, f"{folder}/{source}")
    assert report.reinitialised == []
    x = tf.random.uniform([1, 128, 128, 3], seed=1)
    for a, b in zip(tf.nest.flatten(model(x)), tf.nest.flatten(fresh(x)), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=5e-4)


def test_another_class_count_keeps_all_but_the_class_logits(trained):
    model, folder, config = trained
    fresh = build(config(num_classes=3))
    initial_logits = [w.numpy() for w in fresh.head.retina_cls.weights]
    report = restore_detector(fresh, f"{folder}/1")
    assert report.reinitialised == ["retina_cls"]
    for a, b in zip(neck_and_head_weights(model), neck_and_head_weights(fresh), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=b.name)  # towers, norms, regressor
    for before, after in zip(initial_logits, fresh.head.retina_cls.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())  # left as initialised (prior bias)
    x = tf.random.uniform([1, 128, 128, 3], seed=2)
    features, again = model.backbone(x, return_features=True), fresh.backbone(x, return_features=True)
    for a, b in zip(features, again, strict=True):  # the export folded weight standardisation: equal up to rounding
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=5e-4)


def test_a_different_architecture_is_named(trained):
    _, folder, config = trained
    wider = config(num_classes=5, feat_channels=48)
    with pytest.raises(CheckpointError, match=r"head layer 'cls_convs' differs: 0/kernel has shape \(3, 3, 32, 32\) "
                                              r"there but \(3, 3, 32, 48\) here; only the class-dependent layers "
                                              r"\('retina_cls',\) may differ"):
        restore_detector(build(wider), f"{folder}/1")
    with pytest.raises(CheckpointError, match="neither a SavedModel directory, a checkpoint prefix nor a folder"):
        restore_detector(build(config()), f"{folder}/nothing-here")


def test_the_newest_checkpoint_includes_one_saved_but_not_yet_recorded_and_skips_one_cut_short(tmp_path):
    directory = str(tmp_path)
    assert newest_checkpoint(directory) is None
    step = tf.Variable(0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), directory, max_to_keep=5)
    for number in (1, 2):
        step.assign(number)
        manager.save(checkpoint_number=number)
    assert newest_checkpoint(directory).endswith("ckpt-2")
    # what a process killed between writing a checkpoint and recording it leaves: a whole ckpt-10, unrecorded
    step.assign(10)
    whole = tf.train.Checkpoint(step=step).write(f"{directory}/ckpt-10")
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-2")
    assert newest_checkpoint(directory) == whole
    assert int(tf.train.load_variable(newest_checkpoint(directory), "step/.ATTRIBUTES/VARIABLE_VALUE")) == 10
    # one killed while its index was being written is passed over for the newest readable one
    for name in tf.io.gfile.glob(f"{whole}.*"):
        data = open(name, "rb").read()
        open(name.replace("ckpt-10", "ckpt-11"), "wb").write(data[: len(data) // 2] if name.endswith(".index")
                                                            else data)
    assert newest_checkpoint(directory) == whole
    # and without the folder's record at all
    tf.io.gfile.remove(f"{directory}/checkpoint")
    for name in tf.io.gfile.glob(f"{directory}/ckpt-1[01].*"):
        tf.io.gfile.remove(name)
    assert newest_checkpoint(directory).endswith("ckpt-2")
