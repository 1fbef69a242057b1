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
    assert set(loaded.signatures) == {"serving_default", "serving_images"}

    encoded = tf.constant([open(p, "rb").read() for p in paths])
    served = loaded.signatures["serving_images"](images=encoded)
    convert_dataset_to_tfrecord([{"image_path": p, "bboxes": [], "labels": []} for p in paths], 1,
                                str(tmp_path / "records"))
    examples = tf.constant(list(tf.data.TFRecordDataset(str(tmp_path / "records" / "data-00000-of-00001.tfrecord"))
                                .as_numpy_iterator()))
    from_examples = loaded.signatures["serving_default"](examples=examples)
    expected = model.predict_images(paths, score_thr=0.0, max_per_img=20)

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
