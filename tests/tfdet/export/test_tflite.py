"""tfdet/export/tflite.py: choices of the head's test_cfg travel into the .tflite file.

(Each quantization of a trained model against its SavedModel, box, score and class, is
``tests/tfdet/cli/test_models.py``.)
"""

import numpy as np
import tensorflow as tf

import tfdet
from tfdet.export.tflite import export_tflite, run_tflite


def test_soft_nms_in_a_tflite_export_gives_the_models_own_detections(tmp_path):
    model = tfdet.create_model("tiny", num_classes=2, pretrained=False,
                               **{"head.test_cfg": {"nms": {"iou_threshold": 0.5, "soft_nms_sigma": 0.5},
                                                    "score_thr": 0.0, "nms_pre": 100, "max_per_img": 20}})
    for variable in model.trainable_variables:  # scores spread over anchors and classes, not all the prior
        if "retina_cls/kernel" in variable.name:
            variable.assign(tf.random.stateless_normal(variable.shape, (0, 1), stddev=0.02))
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
