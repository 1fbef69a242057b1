"""Detection building blocks without trainable weights: boxes, anchors, matching, coding, NMS.

The assigners, samplers and box coders register themselves in their modules; the registries import every module of
this package on first use, so a new one is one file.
"""

from tfdet.core.anchors import AnchorGenerator
from tfdet.core.box_ops import box_area, pairwise_giou, pairwise_iou
from tfdet.core.points import PointGenerator

__all__ = ["AnchorGenerator", "PointGenerator", "box_area", "pairwise_iou", "pairwise_giou"]
