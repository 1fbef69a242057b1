"""Photometric steps: they change pixels, never boxes."""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from tfdet.dataio.steps.base import Example, MapStep
from tfdet.registry import PIPELINE_STEPS


@PIPELINE_STEPS.register("ColorJitter")
class ColorJitter(MapStep):
    """Random brightness, contrast, saturation and hue, as torchvision's ColorJitter.

    Each factor is drawn uniformly from [1 - v, 1 + v] (hue: a shift in
    [-hue, hue] of the hue circle); 0 disables it. Expects images in [0, 1]
    (before Normalize); the result is clipped to [0, 1].

    Args:
        brightness, contrast, saturation: jitter strengths (>= 0).
        hue: maximal hue shift, in [0, 0.5].
        p: probability of jittering an image.
        seed: optional op seed.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 hue: float = 0.0, p: float = 1.0, seed: Optional[int] = None) -> None:
        super().__init__(p=p)
        self._remember(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue, p=p, seed=seed)
        if min(brightness, contrast, saturation) < 0 or not 0.0 <= hue <= 0.5:
            raise ValueError("ColorJitter: brightness, contrast and saturation must be >= 0 and hue in [0, 0.5]")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.seed = seed

    def transform(self, example: Example) -> Example:
        image = example["image"]
        if self.brightness:
            image = image * tf.random.uniform([], 1 - self.brightness, 1 + self.brightness, seed=self.seed)
        if self.contrast:
            image = tf.image.random_contrast(image, 1 - self.contrast, 1 + self.contrast, seed=self.seed)
        if self.saturation:
            image = tf.image.random_saturation(image, max(0.0, 1 - self.saturation), 1 + self.saturation,
                                               seed=self.seed)
        if self.hue:
            image = tf.image.random_hue(image, self.hue, seed=self.seed)
        out = dict(example)
        out["image"] = tf.clip_by_value(image, 0.0, 1.0)
        return out


@PIPELINE_STEPS.register("Normalize")
class Normalize(MapStep):
    """Per-channel ``(image - mean) / std`` for images in [0, 1].

    Args:
        mean, std: per-channel values in [0, 1] units (ImageNet:
            (0.485, 0.456, 0.406) and (0.229, 0.224, 0.225)).
        p: probability of normalising (keep 1.0 for training).
    """

    def __init__(self, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), p: float = 1.0) -> None:
        super().__init__(p=p)
        self._remember(mean=tuple(mean), std=tuple(std), p=p)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"Normalize: mean and std need 3 values (RGB), got {tuple(mean)} and {tuple(std)}")
        if max(mean) > 1.0 or max(std) > 1.0:
            raise ValueError(
                f"Normalize: mean {tuple(mean)} / std {tuple(std)} look like 0-255 values, but images are in "
                f"[0, 1]; divide them by 255"
            )
        if min(std) <= 0.0:
            raise ValueError(f"Normalize: std must be positive, got {tuple(std)}")
        self.mean = tf.constant(mean, tf.float32)
        self.std = tf.constant(std, tf.float32)

    def transform(self, example: Example) -> Example:
        out = dict(example)
        out["image"] = (example["image"] - self.mean) / self.std
        return out
