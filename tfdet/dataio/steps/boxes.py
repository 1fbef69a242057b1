"""Box bookkeeping shared by the geometric steps.

Boxes are [N, 4] (ymin, xmin, ymax, xmax) normalised to the current image;
``labels`` and ``mask`` always keep one entry per box.
"""

from __future__ import annotations

import tensorflow as tf

from tfdet.dataio.steps.base import Example

PER_BOX_KEYS = ("bboxes", "labels", "mask")


def keep_boxes(example: Example, keep: tf.Tensor) -> Example:
    """Keeps the boxes (and their labels and mask entries) where ``keep`` is true."""
    out = dict(example)
    for key in PER_BOX_KEYS:
        if key in out:
            out[key] = tf.boolean_mask(out[key], keep)
    return out


def crop_boxes(example: Example, window: tf.Tensor, min_visibility: float = 0.0) -> Example:
    """Re-expresses boxes in the coordinates of ``window`` and drops lost ones.

    Args:
        example: holds ``bboxes`` normalised to the current image.
        window: [4] (ymin, xmin, ymax, xmax) of the crop, normalised to the
            current image.
        min_visibility: a box is kept when the part inside the window is
            non-empty and at least this fraction of its area.
    """
    boxes = example["bboxes"]
    origin = tf.stack([window[0], window[1], window[0], window[1]])
    extent = tf.stack([window[2] - window[0], window[3] - window[1]] * 2)
    moved = (boxes - origin) / extent
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    clipped_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = clipped_area > 0.0
    if min_visibility > 0.0:
        keep &= clipped_area >= min_visibility * area
    out = dict(example)
    out["bboxes"] = clipped
    return keep_boxes(out, keep)


def scale_boxes(boxes: tf.Tensor, y_scale: tf.Tensor, x_scale: tf.Tensor) -> tf.Tensor:
    """Multiplies y coordinates by ``y_scale`` and x coordinates by ``x_scale``."""
    factors = tf.cast(tf.stack([y_scale, x_scale, y_scale, x_scale]), boxes.dtype)
    return boxes * factors
