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

# name -> submodule; resolved on first use, so that `tfdet.weights.fetch` (the cache, sha256 downloads) does not
# import TensorFlow
_EXPORTS = {"FetchError": "fetch", "cache_dir": "fetch", "Checkpoint": "readers", "init_backbone": "loading",
            "load_state_dict": "loading", "CheckpointError": "readers", "read_weights": "readers", "NAMED": "sources",
            "fetch_named": "sources", "load_checkpoint": "sources", "save_checkpoint": "sources"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfdet.weights' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tfdet.weights.{_EXPORTS[name]}"), name)
