"""TensorBoard images: evaluation images with the model's detections and the true boxes.

Scalars need no code of their own: ``tf_keras.callbacks.TensorBoard`` writes every value in the epoch
logs (``loss``, ``loss_cls``, ``loss_bbox``, the learning rate, and the ``val_AP*`` that
:class:`~tfdet.training.callbacks.CocoEvaluation` adds when it runs before it).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np
import tensorflow as tf
import tf_keras
from PIL import Image

from tfdet.core.detections import split_detections
from tfdet.visualization import draw_detections


class DetectionImages(tf_keras.callbacks.Callback):
    """Writes ``max_images`` evaluation images with boxes drawn to TensorBoard every ``every_n_epochs`` epochs.

    Detections are drawn in class colours with their names and scores, true boxes in green.

    Args:
        log_dir: the TensorBoard folder (images go to ``log_dir/eval_images``).
        dataset: a batched evaluation dataset (``tfdet.evaluation.eval_dataset``).
        label_map: id -> class name.
        every_n_epochs, max_images: how often and how many.
        score_thr: detections drawn from this score on.
    """

    def __init__(self, log_dir: str, dataset: tf.data.Dataset, label_map: Optional[Mapping[int, str]] = None,
                 every_n_epochs: int = 1, max_images: int = 4, score_thr: float = 0.3) -> None:
        super().__init__()
        self.log_dir, self.label_map = log_dir, dict(label_map or {})
        self.every_n_epochs, self.max_images, self.score_thr = every_n_epochs, max_images, score_thr
        self.batch = next(iter(dataset.unbatch().batch(max_images)))
        self.writer = tf.summary.create_file_writer(f"{log_dir}/eval_images")

    def drawn(self) -> np.ndarray:
        """The images with boxes, uint8 [N, H, W, 3] (also what a test can look at)."""
        config = self.model.config
        found = self.model.detect_function(score_thr=self.score_thr)(self.batch["image"])
        pixels = self.batch["image"].numpy() * np.asarray(config.std) + np.asarray(config.mean)
        height, width = pixels.shape[1:3]
        scale = np.array([height, width, height, width], np.float32)
        out = []
        # the model's input as it is drawn: boxes in its pixels, no letterbox to undo
        detected = split_detections(found, [(height, width)] * len(pixels))
        for i, (image, mine) in enumerate(zip(pixels, detected)):
            truth = self.batch["bboxes"][i].numpy()[self.batch["mask"][i].numpy()] * scale
            picture = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
            out.append(np.asarray(draw_detections(picture, mine["boxes"], mine["scores"], mine["classes"],
                                                  self.label_map, truth=truth)))
        return np.stack(out)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if (epoch + 1) % self.every_n_epochs:
            return
        with self.writer.as_default():
            tf.summary.image("detections (green: truth)", self.drawn(), step=epoch + 1, max_outputs=self.max_images)
        self.writer.flush()
