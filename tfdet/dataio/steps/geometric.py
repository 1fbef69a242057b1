"""Geometric augmentations; boxes, labels and mask follow every one of them."""

from __future__ import annotations

import random
from typing import Optional, Sequence

import tensorflow as tf

from tfdet.dataio.steps.base import Example, MapStep
from tfdet.dataio.steps.boxes import crop_boxes, scale_boxes
from tfdet.registry import PIPELINE_STEPS

_METHODS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")


def _check_size(step: str, height: int, width: int) -> None:
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"{step}: height and width must be positive, got {height}x{width}")


def _check_method(step: str, method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"{step}: method must be one of {', '.join(_METHODS)}, got {method!r}")


def crop_and_resize(example: Example, offset: tf.Tensor, size: tf.Tensor, height: int, width: int,
                    method: str = "bilinear", min_visibility: float = 0.0) -> Example:
    """Crops ``size`` pixels at ``offset`` (both [y, x]) and resizes to height x width.

    Boxes are moved into the crop, clipped to it, and dropped (with their
    labels and mask entries) when nothing or less than ``min_visibility`` of
    them remains.
    """
    image = example["image"]
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    offset_f, size_f = tf.cast(offset, tf.float32), tf.cast(size, tf.float32)
    window = tf.concat([offset_f / shape, (offset_f + size_f) / shape], axis=0)
    out = crop_boxes(example, window, min_visibility)
    crop = tf.slice(image, tf.concat([offset, [0]], 0), tf.concat([size, [-1]], 0))
    out["image"] = tf.image.resize(crop, (height, width), method=method)
    return out


@PIPELINE_STEPS.register("RandomResized")
class RandomResized(MapStep):
    """Random crop of random area and aspect ratio, resized to height x width.

    torchvision's RandomResizedCrop, sampled by
    ``tf.image.sample_distorted_bounding_box`` (10 attempts, then the whole
    image): the crop covers a fraction of the image area drawn from
    ``scale`` and has a width/height ratio drawn from ``ratio``.

    Args:
        height, width: output size in pixels.
        scale: (min, max) fraction of the image area the crop covers.
        ratio: (min, max) crop width / height.
        min_visibility: boxes keeping less than this fraction of their area
            inside the crop are dropped (boxes left with none always are).
        method: tf.image.resize method.
        p: probability of cropping; otherwise the whole image is resized.
        seed: optional op seed; without one, a seed is drawn from Python's ``random`` when the step is made (so
            a run seeded by :func:`tfdet.training.reproducibility.seed_everything` repeats its crops).
    """

    def __init__(self, height: int, width: int, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), min_visibility: float = 0.0,
                 method: str = "bilinear", p: float = 1.0, seed: Optional[int] = None) -> None:
        super().__init__(p=1.0)  # p picks between crop and whole image, see transform
        self._remember(height=height, width=width, scale=tuple(scale), ratio=tuple(ratio),
                       min_visibility=min_visibility, method=method, p=p, seed=seed)
        _check_size("RandomResized", height, width)
        _check_method("RandomResized", method)
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"RandomResized: scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResized: ratio must satisfy 0 < min <= max, got {tuple(ratio)}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomResized: p must be in [0, 1], got {p}")
        self.height, self.width = int(height), int(width)
        self.scale, self.ratio = tuple(float(v) for v in scale), tuple(float(v) for v in ratio)
        self.min_visibility, self.method, self.crop_p, self.seed = min_visibility, method, float(p), seed
        # deterministic kernels refuse this op's seed 0 (TensorFlow's "pick one at random")
        self.op_seed = seed if seed else random.randint(1, 2 ** 31 - 1)

    def transform(self, example: Example) -> Example:
        shape = tf.shape(example["image"])
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            shape,
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            min_object_covered=0.0,
            aspect_ratio_range=self.ratio,
            area_range=self.scale,
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
            seed=self.op_seed,
        )
        offset, size = begin[:2], size[:2]
        if self.crop_p < 1.0:
            use_crop = tf.random.uniform([]) < self.crop_p
            offset = tf.where(use_crop, offset, tf.zeros_like(offset))
            size = tf.where(use_crop, size, shape[:2])
        return crop_and_resize(example, offset, size, self.height, self.width, self.method, self.min_visibility)


@PIPELINE_STEPS.register("Resize")
class Resize(MapStep):
    """Resizes to height x width, by default keeping the aspect ratio and padding.

    With ``keep_ratio`` the image is scaled by min(height / h, width / w) and
    padded at the bottom and right with ``pad_value``, so boxes keep their
    pixel geometry; the key ``image_window`` records the normalised region
    of the output that holds the image. Without it the image is stretched.

    Args:
        height, width: output size in pixels.
        keep_ratio: keep the aspect ratio.
        pad: pad to exactly height x width (only with keep_ratio; without it
            the output is at most height x width).
        pad_value: value of the padding, in the image's current units.
        method: tf.image.resize method.
    """

    def __init__(self, height: int, width: int, keep_ratio: bool = True, pad: bool = True,
                 pad_value: float = 0.0, method: str = "bilinear") -> None:
        super().__init__(p=1.0)
        self._remember(height=height, width=width, keep_ratio=keep_ratio, pad=pad, pad_value=pad_value, method=method)
        _check_size("Resize", height, width)
        _check_method("Resize", method)
        self.height, self.width = int(height), int(width)
        self.keep_ratio, self.pad, self.pad_value, self.method = keep_ratio, pad, float(pad_value), method

    def transform(self, example: Example) -> Example:
        out = dict(example)
        image = example["image"]
        if not self.keep_ratio:
            out["image"] = tf.image.resize(image, (self.height, self.width), method=self.method)
            out["image_window"] = tf.constant([0.0, 0.0, 1.0, 1.0])
            return out
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.minimum(self.height / shape[0], self.width / shape[1])
        new_h = tf.clip_by_value(tf.cast(tf.round(shape[0] * scale), tf.int32), 1, self.height)
        new_w = tf.clip_by_value(tf.cast(tf.round(shape[1] * scale), tf.int32), 1, self.width)
        image = tf.image.resize(image, tf.stack([new_h, new_w]), method=self.method)
        if not self.pad:
            out["image"] = image
            out["image_window"] = tf.constant([0.0, 0.0, 1.0, 1.0])
            return out
        paddings = [[0, self.height - new_h], [0, self.width - new_w], [0, 0]]
        out["image"] = tf.ensure_shape(tf.pad(image, paddings, constant_values=self.pad_value),
                                       [self.height, self.width, None])
        y_extent = tf.cast(new_h, tf.float32) / self.height
        x_extent = tf.cast(new_w, tf.float32) / self.width
        out["bboxes"] = scale_boxes(example["bboxes"], y_extent, x_extent)
        out["image_window"] = tf.stack([0.0, 0.0, y_extent, x_extent])
        return out


@PIPELINE_STEPS.register("RandomZoomOut")
class RandomZoomOut(MapStep):
    """Shrinks the image by a random factor and places it at a random spot of a height x width canvas (mmdetection's
    ``Expand``, SSD's zoom-out): objects come out smaller than in the data, as they are in a wider view.

    Args:
        height, width: output size in pixels.
        scale: (min, max) factor the image's sides are shrunk by (1: as it is).
        pad_value: the canvas around the image, in the image's current units.
        method: tf.image.resize method.
        p: probability of zooming out; otherwise the image is resized to fill the canvas.
        seed: optional op seed (as :class:`RandomResized`).
    """

    def __init__(self, height: int, width: int, scale: Sequence[float] = (0.5, 1.0), pad_value: float = 0.0,
                 method: str = "bilinear", p: float = 0.5, seed: Optional[int] = None) -> None:
        super().__init__(p=1.0)  # p picks between zooming out and a plain resize, see transform
        self._remember(height=height, width=width, scale=tuple(scale), pad_value=pad_value, method=method, p=p,
                       seed=seed)
        _check_size("RandomZoomOut", height, width)
        _check_method("RandomZoomOut", method)
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"RandomZoomOut: scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomZoomOut: p must be in [0, 1], got {p}")
        self.height, self.width = int(height), int(width)
        self.scale, self.pad_value, self.method, self.zoom_p = tuple(float(v) for v in scale), float(pad_value), \
            method, float(p)
        self.op_seed = seed if seed else random.randint(1, 2 ** 31 - 1)

    def transform(self, example: Example) -> Example:
        out = dict(example)
        draws = tf.random.uniform([4], seed=self.op_seed)  # the factor, zoom or not, top, left
        factor = self.scale[0] + (self.scale[1] - self.scale[0]) * draws[0]
        factor = tf.where(draws[1] < self.zoom_p, factor, 1.0)
        new_h = tf.maximum(tf.cast(tf.round(self.height * factor), tf.int32), 1)
        new_w = tf.maximum(tf.cast(tf.round(self.width * factor), tf.int32), 1)
        top = tf.cast(tf.floor(draws[2] * tf.cast(self.height - new_h + 1, tf.float32)), tf.int32)
        left = tf.cast(tf.floor(draws[3] * tf.cast(self.width - new_w + 1, tf.float32)), tf.int32)
        image = tf.image.resize(example["image"], tf.stack([new_h, new_w]), method=self.method)
        paddings = [[top, self.height - new_h - top], [left, self.width - new_w - left], [0, 0]]
        out["image"] = tf.ensure_shape(tf.pad(image, paddings, constant_values=self.pad_value),
                                       [self.height, self.width, None])
        y_extent, x_extent = tf.cast(new_h, tf.float32) / self.height, tf.cast(new_w, tf.float32) / self.width
        y_origin, x_origin = tf.cast(top, tf.float32) / self.height, tf.cast(left, tf.float32) / self.width
        origin = tf.cast(tf.stack([y_origin, x_origin, y_origin, x_origin]), example["bboxes"].dtype)
        out["bboxes"] = scale_boxes(example["bboxes"], y_extent, x_extent) + origin
        if "image_window" in example:
            window = tf.cast(example["image_window"], tf.float32)
            out["image_window"] = scale_boxes(window, y_extent, x_extent) + tf.stack(
                [y_origin, x_origin, y_origin, x_origin])
        return out


@PIPELINE_STEPS.register("RandomFlip")
class RandomFlip(MapStep):
    """Flips the image and its boxes.

    Args:
        direction: ``"horizontal"`` (left-right) or ``"vertical"`` (up-down).
        p: probability of flipping.
    """

    def __init__(self, direction: str = "horizontal", p: float = 0.5) -> None:
        super().__init__(p=p)
        self._remember(direction=direction, p=p)
        if direction not in ("horizontal", "vertical"):
            raise ValueError(f"RandomFlip: direction must be 'horizontal' or 'vertical', got {direction!r}")
        self.direction = direction

    def transform(self, example: Example) -> Example:
        out = dict(example)
        ymin, xmin, ymax, xmax = tf.unstack(example["bboxes"], 4, axis=-1)
        if self.direction == "horizontal":
            out["image"] = tf.reverse(example["image"], axis=[1])
            out["bboxes"] = tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)
        else:
            out["image"] = tf.reverse(example["image"], axis=[0])
            out["bboxes"] = tf.stack([1.0 - ymax, xmin, 1.0 - ymin, xmax], axis=-1)
        return out
