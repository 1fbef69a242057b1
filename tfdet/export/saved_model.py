"""SavedModel export with two serving signatures.

``serving_default`` takes ``examples`` ([None] serialized tf.Examples with
``image/encoded``) -- the form TFX's Evaluator (TFMA) and BulkInferrer feed;
``serving_images`` takes ``images`` ([None] encoded JPEG/PNG bytes). Both
decode, letterbox and normalise inside the graph and return, for K =
``max_per_img`` rows per image:

* ``detection_boxes`` [B, K, 4] (ymin, xmin, ymax, xmax) normalised to the
  original image, clipped and ordered; ``detection_scores`` [B, K];
  ``detection_classes`` int32 [B, K]; ``num_detections`` int32 [B];
* ``xmin``, ``ymin``, ``xmax``, ``ymax``, ``classes``, ``scores`` float32
  [B, K]: the columns TFMA's COCO metrics stack (``predictions_to_stack``).

Rows past ``num_detections`` are zeros.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import tensorflow as tf

from tfdet.dataio import features
from tfdet.models.preprocessing import boxes_to_original


class _DetectorModule(tf.Module):
    def __init__(self, model, overrides: Dict) -> None:
        super().__init__(name="detector")
        self.model = model
        self.overrides = overrides

    def _detect_encoded(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
        images, windows, _ = self.model.preprocessor.decode_batch(encoded)
        found = self.model.detect(images, **self.overrides)
        boxes = boxes_to_original(found["detection_boxes"], windows)
        valid = tf.sequence_mask(found["num_detections"], tf.shape(boxes)[1])
        boxes = tf.where(valid[..., None], boxes, 0.0)
        ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)
        classes = tf.where(valid, tf.cast(found["detection_classes"], tf.float32), 0.0)
        return {
            "detection_boxes": boxes,
            "detection_scores": found["detection_scores"],
            "detection_classes": found["detection_classes"],
            "num_detections": found["num_detections"],
            "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
            "classes": classes,
            "scores": found["detection_scores"],
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(examples, {features.ENCODED: tf.io.FixedLenFeature([], tf.string)})
        return self._detect_encoded(parsed[features.ENCODED])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_images(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._detect_encoded(images)


def inference_copy(model):
    """A copy of ``model`` with weight standardisation folded into the kernels (same outputs, less work)."""
    from tfdet.models.architectures.one_stage import OneStageModel
    from tfdet.models.layers import StdConv2D

    copy = OneStageModel.from_config(model.get_config()).build_model()
    copy.set_weights(model.get_weights())
    for layer in copy.submodules:
        if isinstance(layer, StdConv2D):
            layer.fold()
    return copy


def export_saved_model(model, export_dir: str, score_thr: Optional[float] = None,
                       max_per_img: Optional[int] = None, fold_weight_standardization: bool = True) -> str:
    """Writes ``model`` as a SavedModel with ``serving_default`` and ``serving_images``.

    Args:
        model: a built :class:`~tfdet.models.architectures.one_stage.OneStageModel`.
        export_dir: the SavedModel directory (e.g. ``.../serving/1``).
        score_thr, max_per_img: override the head's test_cfg for serving.
        fold_weight_standardization: export a copy whose weight-standardised
            kernels are precomputed (the in-memory model is not changed).

    Returns:
        ``export_dir``.

    Reload with ``tf.saved_model.load(export_dir).signatures["serving_images"](images=...)``.
    """
    if not model.built:
        model.build_model()
    if fold_weight_standardization:
        model = inference_copy(model)
    overrides = {k: v for k, v in {"score_thr": score_thr, "max_per_img": max_per_img}.items() if v is not None}
    module = _DetectorModule(model, overrides)
    signatures = {"serving_default": module.serve_examples.get_concrete_function(),
                  "serving_images": module.serve_images.get_concrete_function()}
    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
