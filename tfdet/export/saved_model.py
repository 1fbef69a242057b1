"""SavedModel export with two serving signatures.

``serving_default`` takes ``examples`` ([None] serialized tf.Examples with
``image/encoded``) -- the form TFX's Evaluator (TFMA) and BulkInferrer feed;
``serving_images`` takes ``images`` ([None] encoded JPEG/PNG bytes);
``bulk_inference`` is ``serving_default`` with ``error`` shaped [B, 1], the
form TFX's BulkInferrer can split per example. All
decode, letterbox and normalise inside the graph and return, for K =
``max_per_img`` rows per image:

* ``detection_boxes`` [B, K, 4] (ymin, xmin, ymax, xmax) normalised to the
  original image, clipped and ordered; ``detection_scores`` [B, K];
  ``detection_classes`` int32 [B, K]; ``num_detections`` int32 [B];
* ``xmin``, ``ymin``, ``xmax``, ``ymax``, ``classes``, ``scores`` float32
  [B, K]: the columns TFMA's COCO metrics stack (``predictions_to_stack``);
* ``image_size`` int32 [B, 2]: each image's (height, width) in pixels, upright
  (after its EXIF orientation), what the normalised boxes scale by (0, 0 for an
  image that was not valid);
* ``valid`` bool [B] and ``error`` string [B]: an image that is not a JPEG or
  PNG, is cut short or declares more than ``max_pixels`` pixels (checked from
  its header, before decoding), or an ``examples`` row that is not a
  serialized tf.Example, gets ``valid`` False, zero detections and the
  reason in ``error`` ("image 3: ..."); the other images are served as usual.

Rows past ``num_detections`` are zeros. An empty request gets empty outputs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf

from tfdet.core.detections import boxes_to_original
from tfdet.dataio import features
from tfdet.dataio.image_format import DEFAULT_MAX_PIXELS
from tfdet.dataio.label_map import write_label_map

# the signature TFX's BulkInferrer runs (pipeline/pipeline.py)
BULK_SIGNATURE = "bulk_inference"


class _DetectorModule(tf.Module):
    def __init__(self, model, overrides: Dict, max_pixels: int) -> None:
        super().__init__(name="detector")
        self.model = model
        self.overrides = overrides
        self.max_pixels = int(max_pixels)

    def _detect_checked(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
        prepared = self.model.preprocessor.decode_batch(encoded, self.max_pixels)
        found = self.model.detect(prepared["images"], **self.overrides)
        valid = prepared["valid"]
        count = tf.where(valid, found["num_detections"], 0)
        boxes = boxes_to_original(found["detection_boxes"], prepared["windows"])
        rows = tf.sequence_mask(count, tf.shape(boxes)[1])
        boxes = tf.where(rows[..., None], boxes, 0.0)
        scores = tf.where(rows, found["detection_scores"], 0.0)
        classes = tf.where(rows, found["detection_classes"], 0)
        ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)
        index = tf.strings.as_string(tf.range(tf.shape(encoded)[0]))
        error = tf.where(valid, "", tf.strings.join(["image ", index, ": ", prepared["error"]]))
        return {
            "image_size": tf.where(valid[:, None], prepared["sizes"], 0),
            "detection_boxes": boxes,
            "detection_scores": scores,
            "detection_classes": classes,
            "num_detections": count,
            "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
            "classes": tf.cast(classes, tf.float32),
            "scores": scores,
            "valid": valid,
            "error": error,
        }

    def _empty(self) -> Dict[str, tf.Tensor]:
        rows = int(self.overrides.get("max_per_img", self.model.head.test_cfg["max_per_img"]))
        columns = {key: tf.zeros([0, rows]) for key in ("xmin", "ymin", "xmax", "ymax", "classes", "scores")}
        return {"image_size": tf.zeros([0, 2], tf.int32), "detection_boxes": tf.zeros([0, rows, 4]),
                "detection_scores": tf.zeros([0, rows]),
                "detection_classes": tf.zeros([0, rows], tf.int32), "num_detections": tf.zeros([0], tf.int32),
                **columns, "valid": tf.zeros([0], tf.bool), "error": tf.zeros([0], tf.string)}

    def _detect_encoded(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
        # an empty request answers with empty outputs (the network cannot run on a batch of 0)
        return tf.cond(tf.size(encoded) > 0, lambda: self._detect_checked(encoded), self._empty)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        # a serialized tf.Example starts with its 'features' field (tag byte 0x0A); anything else is not
        # parsed (it would fail the whole batch), it is reported in `error`
        looks_like_example = tf.logical_or(tf.equal(tf.strings.substr(examples, 0, 1), b"\n"),
                                           tf.equal(tf.strings.length(examples), 0))
        safe = tf.where(looks_like_example, examples, b"")
        parsed = tf.io.parse_example(
            safe, {features.ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=b"")})
        outputs = self._detect_encoded(parsed[features.ENCODED])
        index = tf.strings.as_string(tf.range(tf.shape(examples)[0]))
        not_example = tf.strings.join(["example ", index, ": not a serialized tf.Example (send "
                                       "tf.train.Example.SerializeToString() bytes, or use serving_images for "
                                       "image bytes)"])
        outputs["error"] = tf.where(looks_like_example, outputs["error"], not_example)
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve_images(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._detect_encoded(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_bulk(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        # serving_default with `error` as [B, 1]: tfx_bsl's RunInference (TFX BulkInferrer) splits every output
        # per example and cannot split a [B] string tensor (it expects numpy values with a dtype)
        outputs = dict(self.serve_examples(examples))
        outputs["error"] = outputs["error"][:, None]
        return outputs


MODEL_CARD = "tfdet_model.json"


def read_model_card(export_dir: str) -> Optional[Dict[str, Any]]:
    """The ``tfdet_model.json`` of a SavedModel tfdet exported (model config, test_cfg), None without one."""
    path = os.path.join(export_dir, MODEL_CARD)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def without_keras_traces():
    """A context in which SavedModels leave out Keras' per-layer call traces (``model.save(save_traces=False)``).

    The serving signatures are all a server (or the TFLite converter) needs; tracing every layer's call for
    Keras' own reloading more than doubles the export time of a detector and is never used.
    """
    from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

    return keras_option_scope(save_traces=False)


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
                       max_per_img: Optional[int] = None, fold_weight_standardization: bool = True,
                       max_pixels: int = DEFAULT_MAX_PIXELS, class_names: Optional[Mapping[int, str]] = None) -> str:
    """Writes ``model`` as a SavedModel with ``serving_default``, ``serving_images`` and ``bulk_inference``.

    Args:
        model: a built :class:`~tfdet.models.architectures.one_stage.OneStageModel`.
        export_dir: the SavedModel directory (e.g. ``.../serving/1``).
        score_thr, max_per_img: override the head's test_cfg for serving.
        fold_weight_standardization: export a copy whose weight-standardised
            kernels are precomputed (the in-memory model is not changed).
        max_pixels: images declaring more pixels (height x width, read from the
            header before decoding) are refused per image (``valid`` False).
        class_names: id -> name, saved as ``label_map.json`` in ``export_dir``
            (``tfdet predict`` labels its drawings with it).

    Beside the SavedModel, ``tfdet_model.json`` records the model config and the test settings it was exported
    with, so that the exported model can be rebuilt (``tfdet export SAVED_MODEL --format tflite``, fine-tuning with
    ``load_from``) and ``tfdet predict`` knows the lowest score it can show.

    Returns:
        ``export_dir``.

    Reload with ``tf.saved_model.load(export_dir).signatures["serving_images"](images=...)``.
    """
    if not model.built:
        model.build_model()
    if fold_weight_standardization:
        model = inference_copy(model)
    overrides = {k: v for k, v in {"score_thr": score_thr, "max_per_img": max_per_img}.items() if v is not None}
    module = _DetectorModule(model, overrides, max_pixels)
    signatures = {"serving_default": module.serve_examples.get_concrete_function(),
                  "serving_images": module.serve_images.get_concrete_function(),
                  BULK_SIGNATURE: module.serve_bulk.get_concrete_function()}
    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    with without_keras_traces():
        tf.saved_model.save(module, export_dir, signatures=signatures)
    if class_names:
        write_label_map(export_dir, class_names)
    from tfdet.files import write_json

    write_json(os.path.join(export_dir, MODEL_CARD), {
        "model": model.config.to_dict(), "test_cfg": {**model.head.test_cfg, **overrides}, "max_pixels": max_pixels})
    return export_dir
