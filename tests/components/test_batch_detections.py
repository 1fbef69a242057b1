import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_serving.apis import prediction_log_pb2

from components.batch_detections import write_batch_detections
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


def in_process() -> beam.Pipeline:
    return beam.Pipeline(options=PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"]))


def write_records(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
        for record in records:
            writer.write(record)


def collect(tmp_path, logs, images_in, blessed=True, ranges=64):
    """BatchDetections' collection on the DirectRunner: PredictionLogs in, the four files out."""
    if logs:
        write_records(tmp_path / "inference" / "prediction_logs-00000-of-00001.gz", [log.SerializeToString()
                                                                                    for log in logs])
    else:
        (tmp_path / "inference").mkdir()  # BulkInferrer returns before writing anything for an unblessed model
    write_records(tmp_path / "examples" / "Split-unlabelled" / "data-00000-of-00001.gz", [b"x"] * images_in)
    summary = write_batch_detections(str(tmp_path / "inference"), str(tmp_path / "examples"), str(tmp_path / "out"),
                                     blessed, 3, in_process(), class_names={0: "cat", 1: "dog", 2: "eel"},
                                     ranges=ranges)
    read = {name: json.loads((tmp_path / "out" / f"{name}.json").read_text())
            for name in ("detections", "images", "refused", "summary")}
    return summary, read


def test_prediction_logs_become_coco_results_in_pixels(tmp_path):
    summary, read = collect(tmp_path, LOGS, images_in=3)
    catalogue = read["images"]
    # ids follow source_id order; box (ymin, xmin, ymax, xmax) * (h, w, h, w) -> [x, y, w, h]
    assert [(image["id"], image["source_id"]) for image in catalogue["images"]] == [(0, "a"), (1, "b")]
    assert read["detections"] == [
        {"image_id": 0, "category_id": 0, "bbox": [0.0, 0.0, 200.0, 100.0], "score": 0.8},
        {"image_id": 0, "category_id": 1, "bbox": [100.0, 25.0, 200.0, 50.0], "score": 0.12346},
        {"image_id": 1, "category_id": 2, "bbox": [20.0, 20.0, 40.0, 80.0], "score": 0.9},
    ]
    assert read["refused"] == [{"id": 2, "source_id": "c", "file_name": "c.jpg", "height": 50, "width": 50,
                                "error": "image 0: not a JPEG or PNG image (the first bytes are not a known "
                                         "signature)"}]
    assert catalogue["categories"] == [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 2, "name": "eel"}]
    assert summary == read["summary"] == {"images_in": 3, "scored": 2, "refused": 1, "detections": 3,
                                          "blessed": True}
    assert sorted(os.listdir(tmp_path / "out")) == ["detections.json", "images.json", "refused.json",
                                                    "summary.json"]  # the shards were joined, then removed


def test_ids_follow_source_id_order_across_many_key_ranges(tmp_path):
    names = [f"img-{i:04d}" for i in range(300)]
    logs = [prediction_log(name, 10, 10, [[0.1, 0.1, 0.2, 0.2]], [0.5], [1]) for name in reversed(names)]
    summary, read = collect(tmp_path, logs, images_in=300, ranges=8)
    # the arrays list the rows in id order, whatever order the ranges were numbered in
    assert [(image["id"], image["source_id"]) for image in read["images"]["images"]] == list(enumerate(names))
    assert [row["image_id"] for row in read["detections"]] == list(range(300))
    assert summary["scored"] == 300 and summary["detections"] == 300


def test_every_image_is_accounted_for(tmp_path):
    summary, read = collect(tmp_path / "whole", LOGS, images_in=3)
    assert summary == {"images_in": 3, "scored": 2, "refused": 1, "detections": 3, "blessed": True}
    assert len(read["detections"]) == 3 and read["refused"][0]["source_id"] == "c"
    # a PredictionLog short: never reported as complete
    with pytest.raises(RuntimeError, match=r"BulkInferrer returned 3 PredictionLogs in .* for 4 unlabelled examples"):
        collect(tmp_path / "short", LOGS, images_in=4)


def test_an_unblessed_model_scores_nothing_and_says_why(tmp_path):
    summary, read = collect(tmp_path, [], images_in=5, blessed=False)
    assert summary["scored"] == 0 and summary["images_in"] == 5
    assert summary["skipped"] == "the candidate model was not blessed, so BulkInferrer scored nothing"
    assert read["detections"] == [] and read["refused"] == [] and read["images"]["images"] == []
