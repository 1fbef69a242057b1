"""ATSS at cpu_small's size (ResNetV2 x0.25, FPN P3-P6, 320x320): adaptive positives, centerness, GIoU.

cpu_small's backbone, neck, input pipeline and recipe with mmdetection's ATSS head; its square anchor is 3 strides
(COCO's 8 in proportion to the 320-pixel input).
"""

from tfdet.zoo._parts import ATSS_HEAD

BASE = "cpu_small"
MODEL = dict(head=dict(ATSS_HEAD, num_classes=5, stacked_convs=2, feat_channels=64))
