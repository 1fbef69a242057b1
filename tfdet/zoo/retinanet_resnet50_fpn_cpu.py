"""An ImageNet-pretrained RetinaNet that fine-tunes in minutes on 2 CPU cores.

ResNet-50 from Keras' ImageNet weights with the stem and the first two stages frozen (no gradient
through C2), frozen BatchNorm, bfloat16 compute; a lighter FPN (128 channels, P3-P6) and head (2
convs of 128 with GroupNorm). Inputs 512x512: small objects (tree crowns of 20-60 px in 400-px tiles)
come out better upscaled (see the README's tree-crown benchmark for what was tried).
Recipe: AdamW 2e-4, 50 warm-up steps, cosine decay over 700 steps of 4 images (about 17 minutes here).
"""

from tfdet.weights.keras_resnet import CAFFE_MEAN_RGB

SIZE = 512
MEAN, STD = tuple(v / 255.0 for v in CAFFE_MEAN_RGB), (1 / 255.0,) * 3

MODEL = dict(
    backbone=dict(name="resnet", depth=50, input_size=(SIZE, SIZE), style="caffe", frozen_stages=2, norm_eval=True,
                  init_cfg=dict(name="Pretrained", checkpoint="keras:resnet50_imagenet")),
    neck=dict(name="fpn", start_level=1, num_nb_ins=4, num_nb_outs=4, filters=128, add_extra_convs=True,
              extra_convs_on="on_input"),
    head=dict(
        name="RetinaHead",
        num_classes=80,
        anchor_config=dict(octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
        assigner=dict(name="max_iou_assigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0),
        sampler=dict(name="pseudo"),
        bbox_encode=dict(name="deltaxywh"),
        loss_cls=dict(name="focalloss", gamma=2.0, alpha=0.25),
        loss_bbox=dict(name="L1Loss"),
        stacked_convs=2,
        feat_channels=128,
        norm_cfg=dict(name="GN", groups=16),
    ),
    mean=MEAN,
    std=STD,
    mixed_precision="mixed_bfloat16",
)

TRAIN = dict(batch_size=4, steps=700, optimizer="adamw", learning_rate=2e-4, weight_decay=1e-4, warmup_steps=50,
             clipnorm=10.0)


def train_steps(pattern: str, size: int = SIZE) -> list:
    """The training input pipeline; ``size``: the network input (a multiple of 32)."""
    return [
        dict(name="InputReadRecordFiles", pattern_file=pattern, shuffle=True),
        dict(name="Resize", height=size, width=size),
        dict(name="RandomResized", height=size, width=size, scale=(0.5, 1.0), ratio=(0.75, 1.33), p=0.5),
        dict(name="RandomFlip", direction="horizontal", p=0.5),
        dict(name="RandomFlip", direction="vertical", p=0.5),
        dict(name="Normalize", mean=MEAN, std=STD),
    ]
