"""Anchor generation with mmdetection's AnchorGenerator conventions.

For each stride (base size = stride): scales ``octave_base_scale * 2**(i /
scales_per_octave)``; for ratio r (= height / width) ``h_ratio = sqrt(r)``,
``w_ratio = 1 / h_ratio``; anchor width ``stride * w_ratio * scale``,
ratio-outer / scale-inner; centred on ``k * stride + center_offset * stride``.
Order: location-major (row-major over the feature map), then the A anchors of
each location -- the order of a NHWC head output reshaped to [B, H*W*A, ...].
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf


class AnchorGenerator:
    """Multi-level anchors in pixels, (ymin, xmin, ymax, xmax).

    Args:
        strides: one stride per pyramid level.
        ratios: height / width ratios.
        octave_base_scale: scale of the first octave step (RetinaNet: 4).
        scales_per_octave: scales per octave (RetinaNet: 3).
        scales: explicit scales instead of the octave ones.
        center_offset: anchor centre offset in units of the stride (mmdet: 0).
        base_sizes: per-level base sizes; default the strides.
    """

    def __init__(self, strides: Sequence[int], ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 octave_base_scale: Optional[float] = 4, scales_per_octave: int = 3,
                 scales: Optional[Sequence[float]] = None, center_offset: float = 0.0,
                 base_sizes: Optional[Sequence[float]] = None) -> None:
        if scales is None:
            if octave_base_scale is None:
                raise ValueError("anchor_config needs either scales or octave_base_scale")
            scales = [octave_base_scale * 2 ** (i / scales_per_octave) for i in range(scales_per_octave)]
        if base_sizes is not None and len(base_sizes) != len(strides):
            raise ValueError(f"anchor_config: {len(base_sizes)} base_sizes for {len(strides)} strides")
        if not 0.0 <= center_offset < 1.0:
            raise ValueError(f"anchor_config: center_offset must be in [0, 1), got {center_offset}")
        self.strides = [int(s) for s in strides]
        self.ratios = [float(r) for r in ratios]
        self.scales = [float(s) for s in scales]
        self.center_offset = float(center_offset)
        self.base_sizes = [float(b) for b in (base_sizes or strides)]

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.ratios) * len(self.scales)

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    def base_anchors(self, level: int) -> np.ndarray:
        """The A anchors of one location at the origin, [A, 4] (ratio-outer, scale-inner)."""
        h_ratios = np.sqrt(np.array(self.ratios))
        w_ratios = 1.0 / h_ratios
        scales = np.array(self.scales)
        base = self.base_sizes[level]
        widths = (base * w_ratios[:, None] * scales[None, :]).reshape(-1)
        heights = (base * h_ratios[:, None] * scales[None, :]).reshape(-1)
        centre = self.center_offset * base
        return np.stack([centre - 0.5 * heights, centre - 0.5 * widths,
                         centre + 0.5 * heights, centre + 0.5 * widths], axis=-1).astype(np.float32)

    def level_anchors(self, level: int, height, width) -> tf.Tensor:
        """Anchors of one level for a ``height`` x ``width`` feature map, [height * width * A, 4]."""
        stride = float(self.strides[level])
        ys = tf.range(tf.cast(height, tf.float32)) * stride
        xs = tf.range(tf.cast(width, tf.float32)) * stride
        grid_y, grid_x = tf.meshgrid(ys, xs, indexing="ij")
        shifts = tf.reshape(tf.stack([grid_y, grid_x, grid_y, grid_x], axis=-1), [-1, 1, 4])
        anchors = shifts + tf.constant(self.base_anchors(level))[None]
        return tf.reshape(anchors, [-1, 4])

    def __call__(self, feature_sizes: Sequence[Sequence]) -> List[tf.Tensor]:
        """Anchors of every level; ``feature_sizes`` holds one (height, width) per level."""
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"{len(feature_sizes)} feature maps but {self.num_levels} anchor strides "
                             f"{self.strides}; give one stride per neck output")
        return [self.level_anchors(i, h, w) for i, (h, w) in enumerate(feature_sizes)]

    def get_config(self) -> dict:
        return {"strides": self.strides, "ratios": self.ratios, "scales": self.scales,
                "center_offset": self.center_offset, "base_sizes": self.base_sizes}
