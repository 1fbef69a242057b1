"""An ImageNet-pretrained RetinaNet that fine-tunes in minutes on 2 CPU cores.

ResNet-50 from Keras' ImageNet weights with the stem and the first two stages frozen (no gradient
through C2), frozen BatchNorm, bfloat16 compute; a lighter FPN (128 channels, P3-P6) and head (2
convs of 128 with GroupNorm), 4,000 candidates per level into NMS and box voting after it. Inputs
512x512: small objects (tree crowns of 20-60 px in 400-px tiles) come out better upscaled
(benchmarks/README.md has what was tried and what each lever gave). Recipe: AdamW 2e-4, 50 warm-up
steps, cosine decay over 700 steps of 4 images.
"""

from tfdet.zoo._parts import letterbox_crop_flip
from tfdet.zoo.retinanet_resnet50_fpn import MEAN, SIZE, STD

BASE = "retinanet_resnet50_fpn"
# what differs from the base: stages 1-2 frozen, a lighter FPN (P3-P6, 128 channels) and head (2 convs of 128 with
# GroupNorm; 4,000 candidates per level into NMS so that faint crowns among many anchors of bright ones still reach
# it; box voting), bfloat16 compute, a fine-tuning recipe
MODEL = dict(
    backbone=dict(frozen_stages=2),
    neck=dict(num_nb_outs=4, filters=128),
    head=dict(stacked_convs=2, feat_channels=128, norm_cfg=dict(name="GN", groups=16),
              test_cfg=dict(nms_pre=4000, box_voting_iou=0.6)),
    mixed_precision="mixed_bfloat16",
)
TRAIN = dict(batch_size=4, steps=700, optimizer="adamw", learning_rate=2e-4, weight_decay=1e-4, warmup_steps=50,
             clipnorm=10.0)


def train_steps(pattern: str, size: int = SIZE) -> list:
    """The training input pipeline (flips both ways: tree crowns seen from above have no up); ``size``: the network
    input (a multiple of 32)."""
    return letterbox_crop_flip(pattern, size, MEAN, STD, vertical_flip=True)
