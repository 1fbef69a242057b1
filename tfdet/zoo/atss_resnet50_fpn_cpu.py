"""ATSS with an ImageNet ResNet-50 at CPU size: retinanet_resnet50_fpn_cpu with the ATSS head.

The backbone, neck, input pipeline and recipe of retinanet_resnet50_fpn_cpu; mmdetection's ATSS head with towers of
2 convs of 128 and GroupNorm. Anchors of 3 strides (24 px at P3) suit small objects such as tree crowns.
"""

from tfdet.zoo._parts import ATSS_HEAD

BASE = "retinanet_resnet50_fpn_cpu"
MODEL = dict(head=dict(ATSS_HEAD, num_classes=80, stacked_convs=2, feat_channels=128))
