"""FCOS and ATSS heads: losses in closed form, and the same detector contract as RetinaNet's."""

import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_config

from tfdet.export import export_saved_model
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.registry import HEADS
from tfdet.weights.detector import restore_detector

LN2 = math.log(2.0)


def test_fcos_loss_in_closed_form():
    """One 4x4 level of stride 8, one box (0, 0, 16, 16): centre sampling (radius 1.5 strides, clipped to the
    box) makes the 4 points (4|12, 4|12) positive, each with centerness sqrt(4/12 * 4/12) = 1/3."""
    head = HEADS.build(dict(name="FCOSHead", num_classes=2, strides=[8], regress_ranges=[(-1, 64)]))
    points = np.array([(y, x) for y in (4, 12, 20, 28) for x in (4, 12, 20, 28)], np.float32)
    box = np.array([0, 0, 16, 16], np.float32)
    exact = np.stack([points[:, 0] - box[0], points[:, 1] - box[1], box[2] - points[:, 0], box[3] - points[:, 1]],
                     -1) / 8.0  # the true distances, in strides
    outputs = ([tf.zeros([1, 4, 4, 2])], [tf.constant(exact.reshape(1, 4, 4, 4))], [tf.zeros([1, 4, 4, 1])])
    batch = {"bboxes": tf.constant([[box]]), "labels": tf.constant([[1]]), "mask": tf.ones([1, 1], tf.bool)}
    losses = {k: float(v) for k, v in head.loss(outputs, batch).items()}
    # logits 0 -> p = 0.5: positives 0.25 * 0.25 * ln2 each (4 of them), negatives 0.75 * 0.25 * ln2 (28), / 4
    assert losses["loss_cls"] == pytest.approx((4 * 0.0625 + 28 * 0.1875) * LN2 / 4, rel=1e-5)
    assert losses["loss_bbox"] == pytest.approx(0.0, abs=1e-5)  # predicted distances are the true ones
    assert losses["loss_centerness"] == pytest.approx(LN2, rel=1e-5)  # BCE at logit 0 is ln2 whatever the target
    shifted = ([tf.zeros([1, 4, 4, 2])], [tf.constant(exact.reshape(1, 4, 4, 4) + 0.5)], [tf.zeros([1, 4, 4, 1])])
    assert float(head.loss(shifted, batch)["loss_bbox"]) > 0.1


def test_atss_loss_follows_its_assignment():
    """A 4x4 level of stride 8 with one 16-pixel anchor per location; the box (0, 0, 16, 16) coincides with the
    anchor centred at (8, 8), which ATSS makes the only positive; zero deltas decode to the anchors."""
    head = HEADS.build(dict(name="ATSSHead", num_classes=2, anchor_config=dict(
        octave_base_scale=2, scales_per_octave=1, ratios=[1.0], strides=[8])))
    box = np.array([0, 0, 16, 16], np.float32)
    outputs = ([tf.zeros([1, 4, 4, 2])], [tf.zeros([1, 4, 4, 4])], [tf.zeros([1, 4, 4, 1])])
    batch = {"bboxes": tf.constant([[box]]), "labels": tf.constant([[0]]), "mask": tf.ones([1, 1], tf.bool)}
    losses = {k: float(v) for k, v in head.loss(outputs, batch).items()}
    assert losses["loss_cls"] == pytest.approx((1 * 0.0625 + 31 * 0.1875) * LN2 / 1, rel=1e-5)
    assert losses["loss_bbox"] == pytest.approx(0.0, abs=1e-5)  # the positive anchor is the box
    assert losses["loss_centerness"] == pytest.approx(LN2, rel=1e-5)


def heads():
    common = dict(num_classes=5, stacked_convs=1, feat_channels=32, norm_cfg=dict(name="GN", groups=8))
    return {
        "FCOSHead": dict(name="FCOSHead", strides=[8, 16, 32, 64],
                         regress_ranges=[(-1, 32), (32, 64), (64, 128), (128, 1e8)], **common),
        "ATSSHead": dict(name="ATSSHead", anchor_config=dict(octave_base_scale=4, scales_per_octave=1, ratios=[1.0],
                                                             strides=[8, 16, 32, 64]), **common),
    }


@pytest.mark.parametrize("name", ["FCOSHead", "ATSSHead"])
def test_new_heads_train_export_and_restore_like_retinanet(name, tmp_path):
    config = tiny_model_config()
    config["head"] = heads()[name]
    model = OneStageModel(ConfigOneStage(**config)).build_model()
    assert [m.name for m in model.metrics] == ["loss", "loss_cls", "loss_bbox", "loss_centerness"]
    import tf_keras

    model.compile(optimizer=tf_keras.optimizers.Adam(2e-3))
    images = tf.random.uniform([2, 128, 128, 3], seed=1)
    batch = {"image": images, "bboxes": tf.constant([[[10, 10, 50, 60], [60, 60, 120, 100]]] * 2, tf.float32),
             "labels": tf.constant([[1, 3]] * 2), "mask": tf.ones([2, 2], tf.bool)}
    losses = [model.train_on_batch(batch, return_dict=True)["loss"] for _ in range(4)]
    assert losses[-1] < losses[0] and np.isfinite(losses).all()

    again = OneStageModel.from_config(model.get_config()).build_model()
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.detect(images)["detection_scores"].numpy(),
                               model.detect(images)["detection_scores"].numpy(), atol=1e-5)
    export = export_saved_model(model, str(tmp_path / "1"), score_thr=0.0)
    served = tf.saved_model.load(export).signatures["serving_images"](
        images=tf.constant([tf.io.encode_png(tf.cast(images[0] * 255, tf.uint8)).numpy()]))
    assert set(served) == {"detection_boxes", "detection_scores", "detection_classes", "num_detections", "xmin",
                           "ymin", "xmax", "ymax", "classes", "scores", "valid", "error", "image_size"}  # every head
    config["head"] = dict(heads()[name], num_classes=7)
    bigger = OneStageModel(ConfigOneStage(**config)).build_model()
    assert restore_detector(bigger, export).reinitialised == [bigger.head.class_dependent_layers[0]]
