"""The seed's detector: RetinaNet with a BiT ResNetV2-50, FPN P3-P7, 20 classes, 512x512."""

MODEL = dict(
    backbone=dict(
        name="resnetv2",
        input_size=(512, 512),
        nb_blocks=(3, 4, 6, 3),
        width_factor=1,
        pool_size=14,
        crop_pct=1.0,
    ),
    neck=dict(
        name="fpn",
        start_level=1,
        num_nb_ins=4,
        num_nb_outs=5,
        filters=256,
        add_extra_convs=True,
        extra_convs_on="on_input",
        relu_before_extra_convs=False,
    ),
    head=dict(
        name="AnchorHead",
        anchor_config=dict(octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                           strides=[8, 16, 32, 64, 128], center_offset=0),
        assigner=dict(name="max_iou_assigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0),
        sampler=dict(name="pseudo"),
        bbox_encode=dict(name="deltaxywh", scale_factors=[1.0, 1.0, 1.0, 1.0]),
        act_cfg="relu",
        num_classes=20,
        loss_cls={"name": "focalloss", "use_sigmoid": True, "loss_weight": 1.0},
        loss_bbox={"name": "SmoothL1Loss", "beta": 1.0 / 9.0, "loss_weight": 1.0},
        train_cfg=dict(batch_size=4),
    ),
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRAIN = dict(batch_size=4, epochs=12, steps=20000, optimizer="adam", learning_rate=1e-4)


def train_steps(pattern: str, size: int = 512) -> list:
    """The training input pipeline (the seed's Step 02 with flips); ``size``: the network input."""
    return [
        dict(name="InputReadRecordFiles", pattern_file=pattern, shuffle=True),
        dict(name="RandomResized", height=size, width=size, scale=(0.8, 1.0), ratio=(0.75, 1.3333333333333333)),
        dict(name="RandomFlip", direction="horizontal", p=0.5),
        dict(name="Normalize", mean=MEAN, std=STD),
    ]
