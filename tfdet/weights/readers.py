"""Reading weight files into ``{name: numpy array}`` without pickle.

Supported: ``.safetensors``; ``.npz`` (``allow_pickle=False``); Keras ``.h5``
(``save_weights`` files and whole-model files); TF.js layers models (a folder
or its ``model.json`` with the ``*.bin`` shards beside it). PyTorch's ``.pth``
/ ``.pt`` / ``.bin`` / ``.ckpt`` files are pickles, which can run code when
loaded: they are refused with the one-line conversion to safetensors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict

import numpy as np

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the file or key."""


@dataclass
class Checkpoint:
    """A state dict in the backbone family's naming and PyTorch layouts, and what is known about it.

    ``metadata`` may hold ``architecture``, ``style``, ``mean``, ``std`` (RGB, [0, 1] units: the
    Normalize the weights expect), ``class_names`` and where the weights came from.
    """

    source: str
    state_dict: Dict[str, np.ndarray]
    metadata: Dict[str, Any] = field(default_factory=dict)


@dataclass
class WeightFile:
    """Arrays by name, plus what the file says about itself (``metadata``: str -> JSON-able)."""

    path: str
    tensors: Dict[str, np.ndarray]
    metadata: Dict[str, Any] = field(default_factory=dict)


def _safetensors(path: str) -> WeightFile:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        raw = handle.metadata() or {}
    metadata = {key: _maybe_json(value) for key, value in raw.items()}
    return WeightFile(path, tensors, metadata)


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _npz(path: str) -> WeightFile:
    with np.load(path, allow_pickle=False) as data:
        return WeightFile(path, {key: data[key] for key in data.files})


def _h5(path: str) -> WeightFile:
    import h5py

    tensors: Dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        layer_names = [_text(n) for n in root.attrs.get("layer_names", [])]
        if not layer_names:
            raise CheckpointError(f"{path}: no 'layer_names' attribute; not a Keras weights file")
        for layer in layer_names:
            group = root[layer]
            for weight in (_text(n) for n in group.attrs.get("weight_names", [])):
                name = weight[:-2] if weight.endswith(":0") else weight
                tensors[name] = np.asarray(group[weight])
    return WeightFile(path, tensors, {"format": "keras_h5"})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _tfjs(path: str) -> WeightFile:
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    model_json = path if path.endswith(".json") else os.path.join(folder, "model.json")
    with open(model_json) as handle:
        model = json.load(handle)
    if "weightsManifest" not in model:
        raise CheckpointError(f"{model_json}: no weightsManifest; not a TF.js layers model")
    tensors: Dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        data = b"".join(_read(os.path.join(folder, shard)) for shard in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if "quantization" in spec or spec.get("dtype", "float32") != "float32":
                raise CheckpointError(f"{model_json}: weight {spec['name']} is {spec.get('dtype')} "
                                      f"{'quantised ' if 'quantization' in spec else ''}; only float32 is read")
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            end = offset + 4 * count
            if end > len(data):
                raise CheckpointError(f"{model_json}: the shards end before weight {spec['name']}; a shard is "
                                      f"missing or cut short")
            tensors[spec["name"]] = np.frombuffer(data[offset:end], "<f4").reshape(spec["shape"]).copy()
            offset = end
    return WeightFile(model_json, tensors, {"format": "tfjs", "keras_layers": _tfjs_layers(model)})


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _tfjs_layers(model: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Layer name -> config from the Keras topology (e.g. BatchNormalization epsilons)."""
    topology = model.get("modelTopology") or {}
    config = (topology.get("model_config") or topology).get("config") or {}
    return {layer["config"]["name"]: layer["config"] for layer in config.get("layers", [])
            if "config" in layer and "name" in layer["config"]}


def read_weights(path: str) -> WeightFile:
    """Reads a local weight file (see the module docstring for the formats).

    Raises:
        CheckpointError: naming the file: missing, a pickle format, an
            unknown format, or unreadable content.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    lower = path.lower()
    if lower.endswith(PICKLE_SUFFIXES):
        raise CheckpointError(
            f"{path}: PyTorch checkpoints are pickles, which can run code when loaded; tfdet does not load them. "
            f"Convert it once where torch is installed: safetensors.torch.save_file(torch.load(path, "
            f"weights_only=True), 'weights.safetensors'), then pass the .safetensors file")
    if os.path.isdir(path) or lower.endswith("model.json"):
        reader = _tfjs
    elif lower.endswith(".safetensors"):
        reader = _safetensors
    elif lower.endswith(".npz"):
        reader = _npz
    elif lower.endswith((".h5", ".hdf5", ".keras.h5")):
        reader = _h5
    else:
        raise CheckpointError(f"{path}: unknown weight format; use .safetensors, .npz, a Keras .h5 or a TF.js "
                              f"model folder")
    try:
        return reader(path)
    except CheckpointError:
        raise
    except Exception as error:  # each library raises its own types for corrupt files
        raise CheckpointError(f"{path}: cannot be read as {reader.__name__.strip('_')} weights "
                              f"({type(error).__name__}: {error})") from None
