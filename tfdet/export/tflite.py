"""TFLite export with the whole detector inside: normalisation, network, box decoding and NMS.

The TFLite model takes ``image``: uint8 [1, H, W, 3] at the network's input size (letterbox or resize
it first; :func:`letterbox` does it as the SavedModel does) and returns ``detection_boxes`` [1, K, 4]
(ymin, xmin, ymax, xmax, normalised to that input), ``detection_scores`` [1, K],
``detection_classes`` [1, K] and ``num_detections`` [1], classes and count as floats. :func:`detect_tflite` does
the letterbox, runs the model and returns boxes in the original image's pixels. Class-wise NMS
(``CombinedNonMaxSuppression``) has no TFLite builtin, so it runs as a TF Select op: the interpreter
of the ``tensorflow`` pip package runs it; a mobile app links the Flex delegate.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator, Optional, Tuple

import numpy as np
import tensorflow as tf

QUANTIZATIONS = (None, "float16", "dynamic_int8")
# what the interpreter's native code prints on every load of a model with a TF Select op: the Flex delegate's
# notice, and TensorFlow's complaint about an attribute the converter adds to CombinedNonMaxSuppression
RUNTIME_NOISE = re.compile(r"Created TensorFlow Lite delegate for select TF ops|TfLiteFlexDelegate delegate: "
                           r"|NodeDef mentions attribute use_inter_op_parallelism|^\s*$")


@contextlib.contextmanager
def quiet_runtime() -> Iterator[None]:
    """Drops :data:`RUNTIME_NOISE` from what native code writes to stderr meanwhile; every other line is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if not RUNTIME_NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def export_tflite(model, path: str, quantization: Optional[str] = None, score_thr: Optional[float] = None,
                  max_per_img: Optional[int] = None) -> str:
    """Writes ``model`` as a ``.tflite`` file; returns ``path``.

    Args:
        model: a built :class:`~tfdet.models.architectures.one_stage.OneStageModel`.
        path: the ``.tflite`` file.
        quantization: None (float32), ``"float16"`` (weights stored in float16) or ``"dynamic_int8"``
            (weights in int8, dequantised on the fly).
        score_thr, max_per_img: override the head's test_cfg.
    """
    from tfdet.export.saved_model import inference_copy, without_keras_traces
    from tfdet.models.layers import GroupNormalization

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    model = inference_copy(model)
    for layer in model.submodules:
        if isinstance(layer, GroupNormalization):
            layer.fused = False  # the fused kernel's training mode (its statistics) is no TFLite builtin
    height, width = model.config.input_size
    mean = tf.constant(model.config.mean, tf.float32)
    std = tf.constant(model.config.std, tf.float32)
    overrides = {k: v for k, v in {"score_thr": score_thr, "max_per_img": max_per_img}.items() if v is not None}

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.uint8, name="image")])
    def detect(image):
        inputs = (tf.cast(image, tf.float32) / 255.0 - mean) / std
        found = model.detect(inputs, **overrides)
        return {"detection_boxes": found["detection_boxes"], "detection_scores": found["detection_scores"],
                "detection_classes": tf.cast(found["detection_classes"], tf.float32),
                "num_detections": tf.cast(found["num_detections"], tf.float32)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([detect.get_concrete_function()], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with without_keras_traces():  # the converter saves ``model`` as a SavedModel first
        converted = converter.convert()
    with open(path, "wb") as handle:
        handle.write(converted)
    return path


def letterbox(image: np.ndarray, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """An image [H, W, 3] uint8 scaled to fit height x width (bilinear) and padded bottom/right with zeros, as
    the SavedModel's preprocessing does; returns (uint8 [1, height, width, 3], window [4] normalised)."""
    from tfdet.dataio.steps import Resize

    example = {"image": tf.image.convert_image_dtype(tf.convert_to_tensor(image), tf.float32),
               "bboxes": tf.zeros([0, 4]), "labels": tf.zeros([0], tf.int32), "mask": tf.zeros([0], tf.bool)}
    out = Resize(height, width, keep_ratio=True, pad=True)(example)
    pixels = tf.cast(tf.round(tf.clip_by_value(out["image"], 0.0, 1.0) * 255.0), tf.uint8)
    return pixels.numpy()[None], out["image_window"].numpy()


def run_tflite(path: str, image: np.ndarray) -> dict:
    """Runs a ``.tflite`` detector on one uint8 [1, H, W, 3] input at its input size; returns its outputs by name
    (boxes normalised to that input)."""
    with quiet_runtime():
        runner = tf.lite.Interpreter(model_path=path).get_signature_runner()
        return {key: np.asarray(value) for key, value in runner(image=image).items()}


def detect_tflite(path: str, image: np.ndarray) -> dict:
    """Detects objects in one image of any size (uint8 [H, W, 3], RGB) with a ``.tflite`` detector: letterboxed
    to the model's input as the SavedModel does, run, and mapped back. Returns ``boxes`` [K, 4] (ymin, xmin, ymax,
    xmax) in the image's pixels, ``scores`` [K] and ``classes`` [K] (int), the K detections the model kept."""
    from tfdet.core.detections import split_detections

    with quiet_runtime():
        runner = tf.lite.Interpreter(model_path=path).get_signature_runner()
        height, width = (int(v) for v in runner.get_input_details()["image"]["shape"][1:3])
        inputs, window = letterbox(image, height, width)
        outputs = {key: np.asarray(value) for key, value in runner(image=inputs).items()}
    (found,) = split_detections(outputs, [image.shape[:2]], windows=window[None])
    return {"boxes": found["boxes"], "scores": found["scores"], "classes": found["classes"].astype(np.int64)}
