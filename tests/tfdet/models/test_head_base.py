"""The dense heads' shared parts (tfdet/models/heads/base.py): how test_cfg and overrides choose the NMS."""

import numpy as np
import tensorflow as tf

from tfdet.models.heads.base import nms_settings


def test_nms_settings_merge_key_by_key_and_top_level_keys_win():
    configured = {"nms": {"iou_threshold": 0.6}, "score_thr": 0.05}
    assert nms_settings(configured, {}) == {"iou_threshold": 0.6}
    # a nested override keeps what it does not name
    assert nms_settings(configured, {"nms": {"soft_nms_sigma": 0.5}}) == {"iou_threshold": 0.6, "soft_nms_sigma": 0.5}
    # a top-level override wins over a nested one, and over the configuration
    assert nms_settings(configured, {"nms": {"iou_threshold": 0.4}, "iou_threshold": 0.3}) == {"iou_threshold": 0.3}
    assert nms_settings({"nms": {"iou_threshold": 0.6}, "iou_threshold": 0.7}, {}) == {"iou_threshold": 0.7}
    assert nms_settings({"nms": {"iou_threshold": 0.6}, "iou_threshold": 0.7},
                        {"nms": {"iou_threshold": 0.2}}) == {"iou_threshold": 0.2}


def test_soft_nms_is_chosen_by_the_heads_test_cfg():
    import tfdet

    model = tfdet.create_model("cpu_small", num_classes=2, pretrained=False,
                               **{"head.test_cfg": {"nms": {"iou_threshold": 1.0, "soft_nms_sigma": 0.5},
                                                    "score_thr": 0.0, "nms_pre": 50, "max_per_img": 500}})
    image = tf.random.stateless_uniform([1, *model.config.input_size, 3], seed=(0, 1))
    found = model.detect_function()(image)
    # an untrained head scores every anchor about the prior 0.01; greedy NMS at IoU 1.0 keeps each of the
    # candidates once, Soft-NMS the same boxes with decayed scores: lower, never higher
    greedy = model.detect_function(soft_nms_sigma=0.0)(image)
    assert int(found["num_detections"][0]) == int(greedy["num_detections"][0])
    assert float(tf.reduce_sum(found["detection_scores"])) < float(tf.reduce_sum(greedy["detection_scores"]))
    # the same choice as a nested override at detection time; its traced function is cached like any other
    nested = {"nms": {"iou_threshold": 1.0, "soft_nms_sigma": 0.5}}
    assert model.detect_function(**nested) is model.detect_function(**nested)
    np.testing.assert_allclose(model.detect_function(**nested)(image)["detection_scores"].numpy(),
                               found["detection_scores"].numpy(), rtol=1e-6)
