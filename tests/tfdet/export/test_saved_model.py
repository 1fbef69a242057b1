import numpy as np
import tensorflow as tf
from conftest import tiny_model_config

from tfdet.dataio.converter import convert_dataset_to_tfrecord
from tfdet.export import export_saved_model
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel


def test_reloaded_savedmodel_detects_like_the_model(tmp_path, image_factory):
    model = OneStageModel(ConfigOneStage(**tiny_model_config(size=64))).build_model()
    paths = [image_factory("a.png", 40, 90, rectangles=[(5, 10, 30, 60, (250, 20, 20))]),
             image_factory("b.jpg", 70, 50, image_format="JPEG")]
    export_dir = export_saved_model(model, str(tmp_path / "serving" / "1"), score_thr=0.0, max_per_img=20)
    loaded = tf.saved_model.load(export_dir)
    assert set(loaded.signatures) == {"serving_default", "serving_images", "bulk_inference"}

    encoded = tf.constant([open(p, "rb").read() for p in paths])
    served = loaded.signatures["serving_images"](images=encoded)
    convert_dataset_to_tfrecord([{"image_path": p, "bboxes": [], "labels": []} for p in paths], 1,
                                str(tmp_path / "records"))
    examples = tf.constant(list(tf.data.TFRecordDataset(str(tmp_path / "records" / "data-00000-of-00001.tfrecord"))
                                .as_numpy_iterator()))
    from_examples = loaded.signatures["serving_default"](examples=examples)
    expected = model.predict_images(paths, score_thr=0.0, max_per_img=20)
    bulk = loaded.signatures["bulk_inference"](examples=examples)
    assert set(bulk) == set(from_examples) and bulk["error"].shape == (2, 1)  # [B, 1]: BulkInferrer splits it
    for key in from_examples:
        np.testing.assert_array_equal(tf.reshape(bulk[key], from_examples[key].shape).numpy(),
                                      from_examples[key].numpy())

    assert served["num_detections"].dtype == tf.int32 and served["detection_boxes"].shape == (2, 20, 4)
    for key in ("detection_boxes", "detection_scores", "num_detections", "xmin", "classes"):
        np.testing.assert_allclose(served[key].numpy(), from_examples[key].numpy(), atol=1e-6)
    for i, mine in enumerate(expected):
        height, width = (40, 90) if i == 0 else (70, 50)
        count = int(served["num_detections"][i])
        assert count == len(mine["scores"]) == 20
        np.testing.assert_allclose(served["detection_boxes"][i, :count].numpy() * [height, width, height, width],
                                   mine["boxes"], atol=1e-3)
        np.testing.assert_allclose(served["detection_scores"][i, :count].numpy(), mine["scores"], atol=1e-6)
        np.testing.assert_array_equal(served["detection_classes"][i, :count].numpy(), mine["classes"])
        boxes = served["detection_boxes"][i].numpy()
        assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])  # TFMA needs ordered boxes
        np.testing.assert_array_equal(served["xmin"][i].numpy(), boxes[:, 1])
        np.testing.assert_array_equal(served["ymax"][i].numpy(), boxes[:, 2])


def test_serving_refuses_bad_images_one_by_one_and_names_them(tmp_path, image_factory):
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(
        "image_format_tests", os.path.join(os.path.dirname(__file__), "..", "dataio", "test_image_format.py"))
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    model = OneStageModel(ConfigOneStage(**tiny_model_config(size=64))).build_model()
    export_dir = export_saved_model(model, str(tmp_path / "serving" / "1"), score_thr=0.0, max_per_img=20,
                                    max_pixels=1_000_000)
    serve = tf.saved_model.load(export_dir).signatures
    good = open(image_factory("a.png", 40, 90, rectangles=[(5, 10, 30, 60, (250, 20, 20))]), "rb").read()
    bomb = helpers.bomb_png(12000, 12000)
    out = serve["serving_images"](images=tf.constant([good, bomb, b"GIF89a...", good[:-30], good]))
    np.testing.assert_array_equal(out["valid"].numpy(), [True, False, False, False, True])
    assert [e.decode() for e in out["error"].numpy()] == [
        "",
        "image 1: the image declares 12000x12000 pixels (height x width), more than the limit of 1000000; "
        "send a smaller image",
        "image 2: not a JPEG or PNG image; convert it to JPEG or PNG",
        "image 3: the image is cut short (no end marker); send the whole file",
        ""]
    np.testing.assert_array_equal(out["num_detections"].numpy(), [20, 0, 0, 0, 20])
    assert not np.any(out["detection_boxes"].numpy()[1:4])
    np.testing.assert_allclose(out["detection_scores"].numpy()[0], out["detection_scores"].numpy()[4], atol=1e-6)
    alone = serve["serving_images"](images=tf.constant([good]))  # the bad neighbours changed nothing
    np.testing.assert_allclose(alone["detection_boxes"].numpy()[0], out["detection_boxes"].numpy()[0], atol=1e-6)

    empty = serve["serving_images"](images=tf.zeros([0], tf.string))
    assert empty["detection_boxes"].shape == (0, 20, 4) and empty["num_detections"].shape == (0,)
    from_examples = serve["serving_default"](examples=tf.constant([good, b""]))
    assert [e.decode() for e in from_examples["error"].numpy()] == [
        "example 0: not a serialized tf.Example (send tf.train.Example.SerializeToString() bytes, or use "
        "serving_images for image bytes)",
        "image 1: empty image bytes"]
    np.testing.assert_array_equal(from_examples["valid"].numpy(), [False, False])
