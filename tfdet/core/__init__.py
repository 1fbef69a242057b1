"""Detection building blocks without trainable weights: boxes, anchors, matching, coding, NMS.

Importing this package registers the assigners, samplers and box coders.
"""

from tfdet.core import assigners, atss_assigner, box_coders, fcos_assigner, samplers  # noqa: F401
from tfdet.core.anchors import AnchorGenerator
from tfdet.core.box_ops import box_area, pairwise_giou, pairwise_iou
from tfdet.core.points import PointGenerator

__all__ = ["AnchorGenerator", "PointGenerator", "box_area", "pairwise_iou", "pairwise_giou"]
