"""Sections and pipelines zoo entries share (not an entry: the package scan skips ``_`` modules)."""

from typing import Optional, Sequence

# mmdetection's RetinaNet head: 9 anchors per location (octave base 4, 3 scales, 3 ratios), max-IoU assignment,
# all positives and negatives, focal + L1
RETINA_HEAD = dict(
    anchor_config=dict(octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
    assigner=dict(name="max_iou_assigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0),
    sampler=dict(name="pseudo"),
    bbox_encode=dict(name="deltaxywh"),
    loss_cls=dict(name="focalloss", gamma=2.0, alpha=0.25),
    loss_bbox=dict(name="L1Loss"),
)

# mmdetection's FCOS v2 head (norm_on_bbox, centerness on the regression tower, centre sampling radius 1.5)
FCOS_HEAD = dict(
    name="FCOSHead",
    center_sampling=True,
    center_sample_radius=1.5,
    norm_on_bbox=True,
    centerness_on_reg=True,
    loss_cls=dict(name="focalloss", gamma=2.0, alpha=0.25),
    loss_bbox=dict(name="GIoULoss"),
    loss_centerness=dict(name="CrossEntropyLoss"),
    norm_cfg=dict(name="GN", groups=16),
)

# mmdetection's ATSS head: one square anchor per location, the ATSS assigner (top 9 per level), GIoU (weight 2)
# weighted by centerness
ATSS_HEAD = dict(
    name="ATSSHead",
    anchor_config=dict(octave_base_scale=3, scales_per_octave=1, ratios=[1.0]),
    assigner=dict(name="atss_assigner", topk=9),
    bbox_encode=dict(name="deltaxywh", scale_factors=[10.0, 10.0, 5.0, 5.0]),
    loss_cls=dict(name="focalloss", gamma=2.0, alpha=0.25),
    loss_bbox=dict(name="GIoULoss", loss_weight=2.0),
    loss_centerness=dict(name="CrossEntropyLoss"),
    norm_cfg=dict(name="GN", groups=16),
)


def letterbox_crop_flip(pattern: str, size: int, mean, std, vertical_flip: bool = False,
                        zoom_out: Optional[Sequence[float]] = None) -> list:
    """The CPU entries' training pipeline: letterboxed to ``size``, half of the images cropped and zoomed (up to
    1.4x, aspect 0.75-1.33), flipped left-right (and upside down, for views from above), normalised. ``zoom_out``:
    (min, max) factor by which half of the images are also shrunk into the canvas (multi-scale training)."""
    flips = [dict(name="RandomFlip", direction="horizontal", p=0.5)]
    if vertical_flip:
        flips.append(dict(name="RandomFlip", direction="vertical", p=0.5))
    zoom = [dict(name="RandomZoomOut", height=size, width=size, scale=tuple(zoom_out), p=0.5)] if zoom_out else []
    return [
        dict(name="InputReadRecordFiles", pattern_file=pattern, shuffle=True),
        dict(name="Resize", height=size, width=size),
        dict(name="RandomResized", height=size, width=size, scale=(0.5, 1.0), ratio=(0.75, 1.33), p=0.5),
        *zoom,
        *flips,
        dict(name="Normalize", mean=mean, std=std),
    ]
