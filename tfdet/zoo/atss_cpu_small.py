"""ATSS at cpu_small's size (ResNetV2 x0.25, FPN P3-P6, 320x320): adaptive positives, centerness, GIoU.

The same backbone, neck, input pipeline and recipe as cpu_small, with mmdetection's ATSS head: one
square anchor per location (octave_base_scale 8 at COCO's 800-pixel inputs; 3 here, in proportion to
the 320-pixel input), the ATSS assigner (top 9 per level), GIoU loss (weight 2) weighted by centerness.
"""

from tfdet.zoo.cpu_small import MEAN, SIZE, STD, TRAIN, train_steps  # noqa: F401  (same data and recipe)
from tfdet.zoo.cpu_small import MODEL as _RETINANET

MODEL = dict(
    backbone=dict(_RETINANET["backbone"]),
    neck=dict(_RETINANET["neck"]),
    head=dict(
        name="ATSSHead",
        num_classes=5,
        anchor_config=dict(octave_base_scale=3, scales_per_octave=1, ratios=[1.0]),
        assigner=dict(name="atss_assigner", topk=9),
        bbox_encode=dict(name="deltaxywh", scale_factors=[10.0, 10.0, 5.0, 5.0]),
        loss_cls=dict(name="focalloss", gamma=2.0, alpha=0.25),
        loss_bbox=dict(name="GIoULoss", loss_weight=2.0),
        loss_centerness=dict(name="CrossEntropyLoss"),
        stacked_convs=2,
        feat_channels=64,
        norm_cfg=dict(name="GN", groups=16),
    ),
    mean=MEAN,
    std=STD,
)
