"""Point priors for anchor-free heads, with mmdetection's MlvlPointGenerator conventions.

A level of stride ``s`` over an H x W feature map has one point per location at
``((i + offset) * s, (j + offset) * s)`` (y, x) in input pixels, row-major -- the order of a NHWC head
output reshaped to [B, H*W, ...]. mmdetection's FCOS uses ``offset=0.5``: a location's point is the
centre of the input pixels it sees.
"""

from __future__ import annotations

from typing import List, Sequence

import tensorflow as tf


class PointGenerator:
    """Multi-level points in pixels, (y, x).

    Args:
        strides: one stride per pyramid level.
        offset: point offset within a location, in units of the stride (mmdetection: 0.5).
    """

    def __init__(self, strides: Sequence[int], offset: float = 0.5) -> None:
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"point generator: offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.offset = float(offset)

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    def level_points(self, level: int, height, width) -> tf.Tensor:
        """Points of one level for a ``height`` x ``width`` feature map, [height * width, 2] (y, x)."""
        stride = float(self.strides[level])
        ys = (tf.range(tf.cast(height, tf.float32)) + self.offset) * stride
        xs = (tf.range(tf.cast(width, tf.float32)) + self.offset) * stride
        grid_y, grid_x = tf.meshgrid(ys, xs, indexing="ij")
        return tf.reshape(tf.stack([grid_y, grid_x], axis=-1), [-1, 2])

    def __call__(self, feature_sizes: Sequence[Sequence]) -> List[tf.Tensor]:
        """Points of every level; ``feature_sizes`` holds one (height, width) per level."""
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"{len(feature_sizes)} feature maps but {self.num_levels} point strides {self.strides}; "
                             f"give one stride per neck output")
        return [self.level_points(i, h, w) for i, (h, w) in enumerate(feature_sizes)]

    def get_config(self) -> dict:
        return {"strides": self.strides, "offset": self.offset}
