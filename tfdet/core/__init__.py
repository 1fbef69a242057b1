"""Detection building blocks without trainable weights: boxes, anchors, matching, coding, NMS.

Importing this package registers the assigners, samplers and box coders.
"""

from tfdet.core import assigners, box_coders, samplers  # noqa: F401
from tfdet.core.anchors import AnchorGenerator
from tfdet.core.box_ops import box_area, pairwise_giou, pairwise_iou

__all__ = ["AnchorGenerator", "box_area", "pairwise_iou", "pairwise_giou"]
