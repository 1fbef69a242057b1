"""ATSS with an ImageNet ResNet-50 at CPU size: retinanet_resnet50_fpn_cpu with the ATSS head.

The backbone, neck, input pipeline and recipe of retinanet_resnet50_fpn_cpu; mmdetection's ATSS head
(one square anchor per location, adaptive positives, centerness, GIoU weight 2) with towers of 2 convs of
128 and GroupNorm. Anchors of 3 strides (24 px at P3) suit small objects such as tree crowns.
"""

from tfdet.zoo.retinanet_resnet50_fpn_cpu import MEAN, SIZE, STD, TRAIN, train_steps  # noqa: F401
from tfdet.zoo.retinanet_resnet50_fpn_cpu import MODEL as _RETINANET

MODEL = dict(
    backbone=dict(_RETINANET["backbone"]),
    neck=dict(_RETINANET["neck"]),
    head=dict(
        name="ATSSHead",
        num_classes=80,
        anchor_config=dict(octave_base_scale=3, scales_per_octave=1, ratios=[1.0]),
        assigner=dict(name="atss_assigner", topk=9),
        bbox_encode=dict(name="deltaxywh", scale_factors=[10.0, 10.0, 5.0, 5.0]),
        loss_cls=dict(name="focalloss", gamma=2.0, alpha=0.25),
        loss_bbox=dict(name="GIoULoss", loss_weight=2.0),
        loss_centerness=dict(name="CrossEntropyLoss"),
        stacked_convs=2,
        feat_channels=128,
        norm_cfg=dict(name="GN", groups=16),
    ),
    mean=MEAN,
    std=STD,
    mixed_precision="mixed_bfloat16",
)
