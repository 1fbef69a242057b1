"""Inference preprocessing shared by predict_images and the SavedModel signatures.

The same letterbox (`Resize`, keep ratio, pad bottom/right) and `Normalize`
steps as the evaluation pipeline, so a model sees the same pixels in Python,
in evaluation and when served.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

from tfdet.dataio.steps import Normalize, Resize


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
        """Encoded JPEG/PNG bytes (scalar) -> as :meth:`__call__`."""
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return self(image)

    def decode_batch(self, encoded: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """A [B] string tensor of encoded images -> batched inputs, windows and sizes."""
        signature = (tf.TensorSpec([self.height, self.width, 3], tf.float32), tf.TensorSpec([4], tf.float32),
                     tf.TensorSpec([2], tf.int32))
        return tf.map_fn(self.decode, encoded, fn_output_signature=signature)


def boxes_to_original(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Boxes [B, K, 4] normalised to the letterboxed input -> normalised to the original image.

    ``window`` [B, 4] is the region of the input that holds the image.
    """
    origin = tf.concat([window[:, :2], window[:, :2]], axis=-1)[:, None, :]
    extent = tf.concat([window[:, 2:] - window[:, :2]] * 2, axis=-1)[:, None, :]
    return tf.clip_by_value((boxes - origin) / extent, 0.0, 1.0)
