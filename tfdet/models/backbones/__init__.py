"""Backbones, built by name from BACKBONES (importing this package registers them)."""

from tfdet.models.backbones.resnet import ResNet
from tfdet.models.backbones.resnetv2 import ResNetV2

__all__ = ["ResNet", "ResNetV2"]
