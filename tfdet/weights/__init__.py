"""Pretrained weights: sources, readers, converters and loading into backbones.

Ask for them in a backbone config, the mmdetection way::

    backbone=dict(name="resnet", depth=50, style="caffe",
                  init_cfg=dict(name="Pretrained", checkpoint="keras:resnet50_imagenet"))

``checkpoint`` is a local file (``.safetensors``, ``.npz``, Keras ``.h5``, a TF.js model folder)
or a named source (``keras:resnet50_imagenet``, ``timm:<model>``, ``torchvision:resnet50``); see
:mod:`tfdet.weights.sources`. Nothing is ever unpickled, and downloads are verified by sha256.
"""

import importlib
from typing import Any

# name -> module; resolved on first use, so that the cache and sha256 downloads (tfdet.files) import no TensorFlow
_EXPORTS = {"FetchError": "tfdet.files", "cache_dir": "tfdet.files", "Checkpoint": "tfdet.weights.readers",
            "init_backbone": "tfdet.weights.loading", "load_state_dict": "tfdet.weights.loading",
            "CheckpointError": "tfdet.weights.readers", "read_weights": "tfdet.weights.readers",
            "NAMED": "tfdet.weights.sources", "fetch_named": "tfdet.weights.sources",
            "load_checkpoint": "tfdet.weights.sources", "save_checkpoint": "tfdet.weights.sources"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfdet.weights' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
