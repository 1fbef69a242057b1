"""tfdet/export/tflite.py: choices of the head's test_cfg travel into the .tflite file.

(Each quantization of a trained model against its SavedModel, box, score and class, is
``tests/tfdet/cli/test_models.py``.)
"""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

import tfdet
from tfdet.export.tflite import export_tflite, letterbox, run_tflite


def spread_model(**test_cfg):
    """The tiny detector with class scores spread over anchors and classes (not all at the prior)."""
    model = tfdet.create_model("tiny", num_classes=2, pretrained=False, **{"head.test_cfg": test_cfg})
    for variable in model.trainable_variables:
        if "retina_cls/kernel" in variable.name:
            variable.assign(tf.random.stateless_normal(variable.shape, (0, 1), stddev=0.02))
    return model


def test_detect_tflite_gives_boxes_in_the_original_images_pixels_without_runtime_noise(tmp_path):
    path = export_tflite(spread_model(score_thr=0.0, nms_pre=100, max_per_img=20), str(tmp_path / "m.tflite"))
    image = np.asarray(tf.random.stateless_uniform([90, 160, 3], (0, 3), maxval=256, dtype=tf.int32), np.uint8)
    np.save(tmp_path / "image.npy", image)
    script = ("import sys, numpy as np; from tfdet.export.tflite import detect_tflite; "
              "found = detect_tflite(sys.argv[1], np.load(sys.argv[2])); np.savez(sys.argv[3], **found)")
    done = subprocess.run([sys.executable, "-c", script, path, str(tmp_path / "image.npy"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    for noise in ("use_inter_op_parallelism", "Created TensorFlow Lite delegate", "TfLiteFlexDelegate"):
        assert noise not in done.stderr, done.stderr[-3000:]
    found = np.load(tmp_path / "out.npz")
    # by hand: the model's boxes are fractions of its letterboxed input; the image fills the window's part of it
    inputs, window = letterbox(image, 128, 128)
    raw = run_tflite(path, inputs)
    count = int(raw["num_detections"][0])
    top, left, bottom, right = window
    extent = [bottom - top, right - left] * 2
    fractions = (raw["detection_boxes"][0, :count] - [top, left, top, left]) / extent
    expected = np.clip(fractions, 0, 1) * [90, 160, 90, 160]
    assert count == 20 and found["boxes"].shape == (20, 4) and found["classes"].dtype == np.int64
    np.testing.assert_allclose(found["boxes"], expected, atol=1e-3)
    np.testing.assert_array_equal(found["classes"], raw["detection_classes"][0, :count].astype(int))
    assert window[2] < 1 and window[3] == 1  # a wide image: padded below, so the mapping is not the identity


def test_soft_nms_in_a_tflite_export_gives_the_models_own_detections(tmp_path):
    model = spread_model(nms={"iou_threshold": 0.5, "soft_nms_sigma": 0.5}, score_thr=0.0, nms_pre=100, max_per_img=20)
    image = tf.random.stateless_uniform([1, *model.config.input_size, 3], (0, 2), maxval=256, dtype=tf.int32)
    image = tf.cast(image, tf.uint8)
    inputs = (tf.cast(image, tf.float32) / 255.0 - tf.constant(model.config.mean)) / tf.constant(model.config.std)
    soft = {key: value.numpy()[0] for key, value in model.detect_function()(inputs).items()}
    greedy = model.detect_function(soft_nms_sigma=0.0)(inputs)["detection_scores"].numpy()[0]
    assert not np.allclose(soft["detection_scores"], greedy)  # this image tells the two apart

    lite = run_tflite(export_tflite(model, str(tmp_path / "soft_nms.tflite")), image.numpy())
    assert int(lite["num_detections"][0]) == int(soft["num_detections"]) == 20
    np.testing.assert_allclose(lite["detection_scores"][0], soft["detection_scores"], atol=1e-6)
    np.testing.assert_allclose(lite["detection_boxes"][0], soft["detection_boxes"], atol=1e-5)
    np.testing.assert_array_equal(lite["detection_classes"][0], soft["detection_classes"])
