"""Head sections two zoo entries share (not an entry: the package scan skips ``_`` modules)."""

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
