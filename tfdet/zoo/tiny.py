"""A tiny detector for smoke runs and tests of the pipeline (128x128, about 0.2 M parameters)."""

SIZE = 128
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

MODEL = dict(
    backbone=dict(name="resnetv2", input_size=(SIZE, SIZE), nb_blocks=(1, 1, 1, 1), width_factor=0.25, groups=8),
    neck=dict(name="fpn", start_level=1, num_nb_ins=4, num_nb_outs=4, filters=32, add_extra_convs=True),
    head=dict(
        name="AnchorHead", num_classes=5,
        anchor_config=dict(octave_base_scale=2, scales_per_octave=2, ratios=[0.5, 1.0, 2.0]),
        loss_cls=dict(name="focalloss"), loss_bbox=dict(name="L1Loss"), stacked_convs=1, feat_channels=32,
        norm_cfg=dict(name="GN", groups=8),
    ),
    mean=MEAN,
    std=STD,
)

TRAIN = dict(batch_size=4, epochs=5, steps=100, optimizer="adam", learning_rate=2e-3)


def train_steps(pattern: str, size: int = SIZE) -> list:
    """The training input pipeline; ``size``: the network input (a multiple of 32)."""
    return [dict(name="InputReadRecordFiles", pattern_file=pattern, shuffle=True),
            dict(name="Resize", height=size, width=size), dict(name="RandomFlip"),
            dict(name="Normalize", mean=MEAN, std=STD)]
