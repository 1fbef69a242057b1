"""FCOS at cpu_small's size (ResNetV2 x0.25, FPN P3-P6, 320x320): anchor-free, centre sampling, GIoU.

The same backbone, neck, input pipeline and recipe as cpu_small, with mmdetection's FCOS v2 head
(norm_on_bbox, centerness on the regression tower, centre sampling radius 1.5, GroupNorm towers);
regress ranges halved with the input (320 instead of COCO's 800+).
"""

from tfdet.zoo.cpu_small import MEAN, SIZE, STD, TRAIN, train_steps  # noqa: F401  (same data and recipe)
from tfdet.zoo.cpu_small import MODEL as _RETINANET

MODEL = dict(
    backbone=dict(_RETINANET["backbone"]),
    neck=dict(_RETINANET["neck"]),
    head=dict(
        name="FCOSHead",
        num_classes=5,
        regress_ranges=[(-1, 32), (32, 64), (64, 128), (128, 1e8)],
        center_sampling=True,
        center_sample_radius=1.5,
        norm_on_bbox=True,
        centerness_on_reg=True,
        loss_cls=dict(name="focalloss", gamma=2.0, alpha=0.25),
        loss_bbox=dict(name="GIoULoss"),
        loss_centerness=dict(name="CrossEntropyLoss"),
        stacked_convs=2,
        feat_channels=64,
        norm_cfg=dict(name="GN", groups=16),
    ),
    mean=MEAN,
    std=STD,
)
