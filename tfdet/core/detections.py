"""A detector's batched outputs cut into one entry per image, in that image's pixels: the one place this is done.

Every path that reads detections -- ``predict_images``, COCO evaluation, the SavedModel's evaluation, ``tfdet
predict``, BatchDetections, the TensorBoard images, the TFLite benchmark -- goes through :func:`split_detections`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf


def boxes_to_original(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Boxes [B, K, 4] normalised to the letterboxed input -> normalised to the original image.

    ``window`` [B, 4] is the region of the input that holds the image.
    """
    origin = tf.concat([window[:, :2], window[:, :2]], axis=-1)[:, None, :]
    extent = tf.concat([window[:, 2:] - window[:, :2]] * 2, axis=-1)[:, None, :]
    return tf.clip_by_value((boxes - origin) / extent, 0.0, 1.0)


def split_detections(outputs: Mapping[str, Any], image_sizes: Optional[Any] = None, windows: Optional[Any] = None,
                     image_ids: Optional[Sequence[int]] = None) -> List[Dict[str, Any]]:
    """One dict per image of batched detector outputs: ``boxes`` [K, 4] (ymin, xmin, ymax, xmax) in the image's
    pixels (float32), ``scores`` [K], ``classes`` [K] -- the rows up to the image's ``num_detections``.

    Args:
        outputs: ``detection_boxes`` [B, K, 4] (normalised), ``detection_scores`` [B, K], ``detection_classes``
            [B, K], ``num_detections`` [B] (tensors or arrays; a TFLite interpreter's float counts too).
        image_sizes: [B, 2] (height, width) in pixels; default ``outputs["image_size"]``, which the serving
            signatures return.
        windows: [B, 4] letterbox windows when the boxes are normalised to the model's input rather than to the
            image (the detector's own output); the boxes are mapped to the image first.
        image_ids: each image's ``image_id`` (added to its dict when given).
    """
    boxes = outputs["detection_boxes"]
    if windows is not None:
        boxes = boxes_to_original(tf.convert_to_tensor(np.asarray(boxes, np.float32)),
                                  tf.convert_to_tensor(np.asarray(windows, np.float32)))
    boxes = np.asarray(boxes, np.float32)
    scores, classes = np.asarray(outputs["detection_scores"]), np.asarray(outputs["detection_classes"])
    counts = np.asarray(outputs["num_detections"]).reshape(-1).astype(np.int64)
    sizes = np.asarray(outputs["image_size"] if image_sizes is None else image_sizes, np.float32).reshape(-1, 2)
    found = []
    for i, count in enumerate(counts):
        height, width = sizes[i]
        entry = {"boxes": boxes[i, :count] * np.array([height, width, height, width], np.float32),
                 "scores": scores[i, :count], "classes": classes[i, :count]}
        if image_ids is not None:
            entry = {"image_id": image_ids[i], **entry}
        found.append(entry)
    return found
