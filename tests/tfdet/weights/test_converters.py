"""Each converter against the framework its weights come from.

Keras: tf_keras.applications.ResNet50 itself, built here with random weights. timm and torchvision:
files that tests/reference/make_reference_files.py wrote with the real libraries (random small
networks, their inputs and stage outputs); torch is not needed here.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from keras_fixtures import randomise
from safetensors.numpy import load_file

from tfdet.models.backbones.resnet import ResNet
from tfdet.models.backbones.resnetv2 import ResNetV2
from tfdet.weights import load_checkpoint, load_state_dict
from tfdet.weights.loading import build

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "reference")
KERAS_STAGES = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")


def relative_error(actual, expected) -> float:
    return float(np.abs(np.asarray(actual) - np.asarray(expected)).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def keras_resnet50(tmp_path_factory):
    """tf_keras' own ResNet50 with random weights, BatchNorm statistics and conv biases, saved as .h5."""
    model = randomise(tf_keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=1000))
    path = str(tmp_path_factory.mktemp("keras") / "resnet50.h5")
    model.save_weights(path)
    return model, path


def test_keras_resnet50_converts_exactly(keras_resnet50):
    model, path = keras_resnet50
    checkpoint = load_checkpoint(path)
    assert checkpoint.metadata["style"] == "caffe" and checkpoint.metadata["depth"] == 50
    backbone = ResNet(depth=50, style="caffe", input_size=(64, 64))
    build(backbone)
    assert load_state_dict(backbone, checkpoint.state_dict, path) == ["fc.bias", "fc.weight"]

    images = tf.random.uniform([2, 64, 64, 3], seed=1)  # RGB in [0, 1]
    caffe = images[..., ::-1] * 255.0 - tf.constant([103.939, 116.779, 123.68])  # Keras' own preprocessing
    stages = tf_keras.Model(model.input, [model.get_layer(name).output for name in KERAS_STAGES])(caffe)
    ours = backbone((images - checkpoint.metadata["mean"]) / checkpoint.metadata["std"], return_features=True)
    for theirs, mine in zip(stages, ours):
        assert relative_error(mine, theirs) < 1e-4
    # and the classifier: global average pool + fc gives Keras' probabilities
    logits = tf.reduce_mean(ours[-1], axis=[1, 2]).numpy() @ checkpoint.state_dict["fc.weight"].T
    probabilities = tf.nn.softmax(logits + checkpoint.state_dict["fc.bias"]).numpy()
    np.testing.assert_allclose(probabilities, model(caffe).numpy(), atol=1e-5)


def reference(name):
    tensors = load_file(os.path.join(REFERENCE, f"{name}.safetensors"))
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    features = [tensors[f"features.{i}"] for i in range(4)]
    return state, tensors["input"], features


@pytest.mark.parametrize("name,depth,blocks,stem", [
    ("torchvision_resnet_bottleneck", 50, (2, 1, 1, 1), 8),
    ("torchvision_resnet_basic", 18, (2, 1, 1, 1), 8),
    ("timm_resnet_bottleneck", 50, (2, 1, 1, 1), 64),  # timm narrows the stages, not the stem
])
def test_torchvision_and_timm_resnets_convert_exactly(name, depth, blocks, stem, monkeypatch):
    state, images, expected = reference(name)
    from tfdet.models.backbones import resnet

    kind = resnet.DEPTHS[depth][0]
    monkeypatch.setitem(resnet.DEPTHS, depth, (kind, blocks))  # the reference networks are short
    backbone = ResNet(depth=depth, style="pytorch", base_channels=8, stem_channels=stem, input_size=(64, 64))
    build(backbone)
    unused = load_state_dict(backbone, state, name)
    assert unused == ["fc.bias", "fc.weight"]
    for mine, theirs in zip(backbone(tf.constant(images), return_features=True), expected):
        assert mine.shape == theirs.shape
        assert relative_error(mine, theirs) < 1e-4


def test_timm_resnetv2_bit_converts_exactly():
    state, images, expected = reference("timm_resnetv2_bit")
    backbone = ResNetV2(input_size=(64, 64), nb_blocks=(1, 1, 1, 1), width_factor=0.25, groups=8)
    assert backbone.load_timm_state_dict(state) == ["head.fc.bias", "head.fc.weight"]
    for mine, theirs in zip(backbone(tf.constant(images), return_features=True), expected):
        assert relative_error(mine, theirs) < 1e-4


def test_a_wrong_stride_placement_changes_the_features():
    """The check above can fail: the same weights in a caffe-style network give other features."""
    state, images, expected = reference("torchvision_resnet_bottleneck")
    from tfdet.models.backbones import resnet

    original = resnet.DEPTHS[50]
    resnet.DEPTHS[50] = ("bottleneck", (2, 1, 1, 1))
    try:
        backbone = ResNet(depth=50, style="caffe", base_channels=8, input_size=(64, 64))
        build(backbone)
    finally:
        resnet.DEPTHS[50] = original
    load_state_dict(backbone, state, "reference")
    assert relative_error(backbone(tf.constant(images), return_features=True)[-1], expected[-1]) > 0.01
