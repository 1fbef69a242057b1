import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components.batch_detections import coco_detections, write_batch_detections
from tfdet.dataio import features


def prediction_log(source_id, height, width, boxes, scores, classes, valid=True, error="", rows=3):
    """A PredictionLog as tfx_bsl's RunInference writes it for the bulk_inference signature."""
    example = tf.train.Example(features=tf.train.Features(feature={
        features.SOURCE_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[source_id.encode()])),
        features.FILENAME: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{source_id}.jpg".encode()])),
        features.HEIGHT: tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
        features.WIDTH: tf.train.Feature(int64_list=tf.train.Int64List(value=[width])),
    }))
    count = len(scores)
    padded_boxes = np.zeros([1, rows, 4], np.float32)
    padded_boxes[0, :count] = boxes
    outputs = {
        "detection_boxes": padded_boxes,
        "detection_scores": np.pad(np.asarray([scores], np.float32), [[0, 0], [0, rows - count]]),
        "detection_classes": np.pad(np.asarray([classes], np.int32), [[0, 0], [0, rows - count]]),
        "num_detections": np.asarray([count], np.int32),
        "valid": np.asarray([valid]),
        "error": np.asarray([[error.encode()]], object),
    }
    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request.inputs["examples"]
    request.dtype = tf.string.as_datatype_enum
    request.string_val.append(example.SerializeToString())
    for key, value in outputs.items():
        log.predict_log.response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return log


LOGS = [  # in the order Beam happened to write them
    prediction_log("b", 200, 100, [[0.1, 0.2, 0.5, 0.6]], [0.9], [2]),
    prediction_log("c", 50, 50, np.zeros([0, 4]), [], [], valid=False,
                   error="image 0: not a JPEG or PNG image (the first bytes are not a known signature)"),
    prediction_log("a", 100, 400, [[0.0, 0.0, 1.0, 0.5], [0.25, 0.25, 0.75, 0.75]], [0.8, 0.123456789], [0, 1]),
]


def test_prediction_logs_become_coco_results_in_pixels():
    results, catalogue, refused = coco_detections(LOGS, {0: "cat", 1: "dog", 2: "eel"})
    # ids follow source_id order; box (ymin, xmin, ymax, xmax) * (h, w, h, w) -> [x, y, w, h]
    assert [(image["id"], image["source_id"]) for image in catalogue["images"]] == [(0, "a"), (1, "b")]
    assert results == [
        {"image_id": 0, "category_id": 0, "bbox": [0.0, 0.0, 200.0, 100.0], "score": 0.8},
        {"image_id": 0, "category_id": 1, "bbox": [100.0, 25.0, 200.0, 50.0], "score": 0.12346},
        {"image_id": 1, "category_id": 2, "bbox": [20.0, 20.0, 40.0, 80.0], "score": 0.9},
    ]
    assert refused == [{"id": 2, "source_id": "c", "file_name": "c.jpg", "height": 50, "width": 50,
                        "error": "image 0: not a JPEG or PNG image (the first bytes are not a known signature)"}]
    assert catalogue["categories"] == [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 2, "name": "eel"}]


def write_logs(directory, logs):
    directory.mkdir()
    with tf.io.TFRecordWriter(str(directory / "prediction_logs-00000-of-00001.gz"), "GZIP") as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return str(directory)


def test_every_image_is_accounted_for(tmp_path):
    inference = write_logs(tmp_path / "inference", LOGS)
    summary = write_batch_detections(inference, str(tmp_path / "out"), True, 3, images_in=3)
    assert summary == {"images_in": 3, "scored": 2, "refused": 1, "detections": 3, "blessed": True}
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    assert len(json.loads((tmp_path / "out" / "detections.json").read_text())) == 3
    assert json.loads((tmp_path / "out" / "refused.json").read_text())[0]["source_id"] == "c"
    # a PredictionLog short: never reported as complete
    with pytest.raises(RuntimeError, match=r"BulkInferrer returned 3 PredictionLogs in .* for 4 unlabelled examples"):
        write_batch_detections(inference, str(tmp_path / "again"), True, 3, images_in=4)


def test_an_unblessed_model_scores_nothing_and_says_why(tmp_path):
    empty = tmp_path / "inference"
    empty.mkdir()  # BulkInferrer returns before writing anything for an unblessed model
    summary = write_batch_detections(str(empty), str(tmp_path / "out"), False, 3, images_in=5)
    assert summary["scored"] == 0 and summary["images_in"] == 5
    assert summary["skipped"] == "the candidate model was not blessed, so BulkInferrer scored nothing"
    assert json.loads((tmp_path / "out" / "detections.json").read_text()) == []
