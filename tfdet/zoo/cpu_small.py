"""A CPU-sized RetinaNet for the default dataset: ResNetV2 x0.25, FPN P3-P6, 320x320.

Anchors start at 16 px (octave_base_scale 2) because the default data has
objects from about 12 px; four levels (strides 8-64) cover up to about 270 px.
"""

from tfdet.zoo._parts import RETINA_HEAD, letterbox_crop_flip

SIZE = 320
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

MODEL = dict(
    backbone=dict(name="resnetv2", input_size=(SIZE, SIZE), nb_blocks=(1, 1, 2, 1), width_factor=0.25, groups=8),
    neck=dict(name="fpn", start_level=1, num_nb_ins=4, num_nb_outs=4, filters=64, add_extra_convs=True,
              extra_convs_on="on_input"),
    head=dict(RETINA_HEAD, name="AnchorHead", num_classes=5, stacked_convs=2, feat_channels=64,
              anchor_config=dict(octave_base_scale=2, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
              norm_cfg=dict(name="GN", groups=16)),
    mean=MEAN,
    std=STD,
)

# epochs: the default-data benchmark (benchmarks/train.py); steps: the TFX pipeline's budget
TRAIN = dict(batch_size=8, epochs=20, steps=1500, optimizer="adam", learning_rate=1e-3)


def train_steps(pattern: str, size: int = SIZE) -> list:
    """The training input pipeline; ``size``: the network input (a multiple of 32)."""
    return letterbox_crop_flip(pattern, size, MEAN, STD)
