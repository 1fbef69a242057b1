"""Backbones, built by name from BACKBONES; the registry imports every module of this package on first use,
so a new one is one file with its registration.
"""

from tfdet.models.backbones.resnet import ResNet
from tfdet.models.backbones.resnetv2 import ResNetV2

__all__ = ["ResNet", "ResNetV2"]
