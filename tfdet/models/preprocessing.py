"""Inference preprocessing shared by predict_images and the SavedModel signatures.

The same letterbox (`Resize`, keep ratio, pad bottom/right) and `Normalize`
steps as the evaluation pipeline, so a model sees the same pixels in Python,
in evaluation and when served.
"""

from __future__ import annotations

import base64
from typing import Dict, Sequence, Tuple

import tensorflow as tf

from tfdet.dataio.image_format import DEFAULT_MAX_PIXELS, decode_image, inspect_image
from tfdet.dataio.steps import Normalize, Resize

# a 1x1 black PNG: decoded in place of a refused image, whose detections are then dropped
_BLANK_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC")


class Preprocessor:
    """Letterbox to height x width and normalise; maps boxes back to the original image.

    Args:
        height, width: the network input size.
        mean, std: Normalize's per-channel values (in [0, 1] units).
    """

    def __init__(self, height: int, width: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.height, self.width = int(height), int(width)
        self.resize = Resize(self.height, self.width, keep_ratio=True, pad=True)
        self.normalize = Normalize(mean=mean, std=std)

    def __call__(self, image: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One image [H, W, 3] (uint8 0-255 or float 0-1) -> (input, window [4], original size [2])."""
        if image.dtype == tf.uint8:
            image = tf.image.convert_image_dtype(image, tf.float32)
        image = tf.cast(image, tf.float32)
        example = {"image": image, "bboxes": tf.zeros([0, 4]), "labels": tf.zeros([0], tf.int32),
                   "mask": tf.zeros([0], tf.bool)}
        example = self.normalize(self.resize(example))
        return example["image"], example["image_window"], tf.shape(image)[:2]

    def decode(self, encoded: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Encoded JPEG/PNG bytes (scalar), turned upright by their EXIF orientation -> as :meth:`__call__`."""
        return self(decode_image(encoded))

    def decode_batch(self, encoded: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS) -> Dict[str, tf.Tensor]:
        """A [B] string tensor of encoded images -> batched inputs, each image checked before it is decoded.

        An image that is not a JPEG or PNG, is cut short, or declares more than ``max_pixels`` pixels is
        not decoded: a blank image stands in for it, ``valid`` is False and ``error`` says why (see
        :func:`tfdet.dataio.image_format.inspect_image`), so one bad image does not fail the batch.

        Returns:
            ``images`` [B, H, W, 3], ``windows`` [B, 4], ``sizes`` [B, 2] (upright, original pixels),
            ``valid`` bool [B], ``error`` string [B] (empty for valid images).
        """
        signature = {"image": tf.TensorSpec([self.height, self.width, 3], tf.float32),
                     "window": tf.TensorSpec([4], tf.float32), "size": tf.TensorSpec([2], tf.int32),
                     "valid": tf.TensorSpec([], tf.bool), "error": tf.TensorSpec([], tf.string)}

        def one(data: tf.Tensor) -> Dict[str, tf.Tensor]:
            found = inspect_image(data, max_pixels)
            safe = tf.where(found["ok"], data, tf.constant(_BLANK_PNG))
            image, window, size = self(decode_image(safe, tf.where(found["ok"], found["orientation"], 1)))
            return {"image": image, "window": window, "size": size, "valid": found["ok"], "error": found["error"]}

        out = tf.map_fn(one, encoded, fn_output_signature=signature)
        return {"images": out["image"], "windows": out["window"], "sizes": out["size"], "valid": out["valid"],
                "error": out["error"]}
