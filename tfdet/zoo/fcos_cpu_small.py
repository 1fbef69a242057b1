"""FCOS at cpu_small's size (ResNetV2 x0.25, FPN P3-P6, 320x320): anchor-free, centre sampling, GIoU.

cpu_small's backbone, neck, input pipeline and recipe with mmdetection's FCOS v2 head (GroupNorm towers); regress
ranges halved with the input (320 instead of COCO's 800+).
"""

from tfdet.zoo._parts import FCOS_HEAD

BASE = "cpu_small"
MODEL = dict(head=dict(FCOS_HEAD, num_classes=5, regress_ranges=[(-1, 32), (32, 64), (64, 128), (128, 1e8)],
                       stacked_convs=2, feat_channels=64))
