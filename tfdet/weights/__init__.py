"""Pretrained weights: sources, readers, converters and loading into backbones.

Ask for them in a backbone config, the mmdetection way::

    backbone=dict(name="resnet", depth=50, style="caffe",
                  init_cfg=dict(name="Pretrained", checkpoint="keras:resnet50_imagenet"))

``checkpoint`` is a local file (``.safetensors``, ``.npz``, Keras ``.h5``, a TF.js model folder)
or a named source (``keras:resnet50_imagenet``, ``timm:<model>``, ``torchvision:resnet50``); see
:mod:`tfdet.weights.sources`. Nothing is ever unpickled, and downloads are verified by sha256.
"""

from tfdet.weights.fetch import FetchError, cache_dir
from tfdet.weights.loading import Checkpoint, init_backbone, load_state_dict
from tfdet.weights.readers import CheckpointError, read_weights
from tfdet.weights.sources import NAMED, fetch_named, load_checkpoint, save_checkpoint

__all__ = ["Checkpoint", "CheckpointError", "FetchError", "NAMED", "cache_dir", "fetch_named", "init_backbone",
           "load_checkpoint", "load_state_dict", "read_weights", "save_checkpoint"]
