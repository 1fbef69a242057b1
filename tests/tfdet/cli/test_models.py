"""tfdet train / predict / evaluate / export, driven as a user drives them: subprocesses on real files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfdet.dataio.record_files import read_records
from tfdet.evaluation.saved_model import evaluate_saved_model
from tfdet.export.tflite import letterbox, run_tflite
from tfdet.visualization import class_colour


def tfdet(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "tfdet.cli", *args], capture_output=True, text=True,
                            timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.long(3)
@pytest.mark.timeout(900)
def test_train_resume_predict_evaluate_export(default_data, tmp_path):
    work = str(tmp_path / "run")
    train = [f"{default_data}/train-*.tfrecord"]
    common = ["tiny", "--data", train[0], "--eval-data", f"{default_data}/eval-*.tfrecord", "--work-dir", work,
              "--batch-size", "8", "--set", "head.feat_channels=16",
              # 12 steps barely move the classifier off its prior: 0.2 (not 0.01) keeps scores above the
              # SavedModel's score_thr (0.05), so that predict and the TFLite comparison have detections
              "--set", "head.prior_prob=0.2"]
    first = tfdet("train", *common, "--epochs", "1")
    assert "resumed from" not in first.stdout and "COCO on" in first.stdout
    second = tfdet("train", *common, "--epochs", "2")  # as after an interruption: continues at epoch 2
    assert "resumed from" in second.stdout
    history = json.load(open(os.path.join(work, "history.json")))
    assert len(history["history"]["loss"]) == 1 and "val_AP" in history["history"]  # only epoch 2 ran
    assert history["resumed_from"].endswith("ckpt-1")
    assert sorted(os.listdir(work)) == ["checkpoints", "config.json", "history.json", "label_map.json", "logs",
                                        "saved_model"]
    events = [f for root, _, files in os.walk(os.path.join(work, "logs")) for f in files if "tfevents" in f]
    assert events, "no TensorBoard events"
    tags = set()
    for root, _, files in os.walk(os.path.join(work, "logs")):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                tags |= {value.tag for value in event.summary.value}
    # val_* values go to the validation writer without the prefix
    assert {"epoch_loss", "epoch_learning_rate", "epoch_AP50", "detections (green: truth)"} <= tags, tags
    label_map = json.load(open(os.path.join(work, "saved_model", "label_map.json")))
    assert label_map["0"] == "rectangle"

    # predict: drawn PNGs whose box outlines sit where detections.json says
    images = sorted(os.path.join(default_data, "..", "images", "span-1", "eval", f)
                    for f in os.listdir(os.path.join(default_data, "..", "images", "span-1", "eval")))[:3]
    out = str(tmp_path / "predictions")
    below = tfdet("predict", work, *images, "--out", out, "--score-thr", "0.01", check=False)
    assert below.returncode == 2 and below.stderr.strip().splitlines()[-1] == (
        f"tfdet predict: error: --score-thr 0.01 is below 0.05, the score the model was exported to keep detections "
        f"from: lower scores are not in its output. Export it again with that threshold (tfdet export {work} "
        f"--score-thr 0.01 --out DIR) and predict with DIR")
    printed = tfdet("predict", work, *images, "--out", out, "--score-thr", "0.05").stdout
    assert "3 images" in printed
    detections = json.load(open(os.path.join(out, "detections.json")))
    assert detections and {d["image_id"] for d in detections} <= {0, 1, 2}
    image_id = detections[0]["image_id"]
    last_box = [d for d in detections if d["image_id"] == image_id][-1]  # drawn last: on top of the others
    drawn_path = os.path.join(out, os.path.splitext(os.path.basename(images[image_id]))[0] + ".png")
    drawn = np.asarray(Image.open(drawn_path)).astype(int)
    x, y, w, h = last_box["bbox"]
    column = min(max(int(round(x)), 0), drawn.shape[1] - 1)
    edge = drawn[int(y):int(np.ceil(y + h)) + 1, max(column - 1, 0):column + 2].reshape(-1, 3)  # its left side
    colour = np.array(class_colour(last_box["category_id"]))
    assert (np.abs(edge - colour).max(axis=1) <= 1).any()  # the outline sits where the JSON says

    # evaluate: pycocotools' numbers, the same as the library's
    printed = tfdet("evaluate", work, "--data", f"{default_data}/eval-*.tfrecord").stdout
    expected = evaluate_saved_model(os.path.join(work, "saved_model"),
                                    read_records(f"{default_data}/eval-*.tfrecord"), 5)
    assert f"AP50   {expected['AP50']:.4f}" in printed and "per class" in printed

    # export: TFLite with NMS inside agrees with the SavedModel
    tflite = str(tmp_path / "model.tflite")
    tfdet("export", work, "--format", "tflite", "--out", tflite)
    picture = np.asarray(Image.open(images[0]).convert("RGB").resize((128, 128)))
    inputs, _ = letterbox(picture, 128, 128)
    lite = run_tflite(tflite, inputs)
    served = tf.saved_model.load(os.path.join(work, "saved_model")).signatures["serving_images"](
        images=tf.constant([tf.io.encode_png(inputs[0]).numpy()]))
    count = int(served["num_detections"][0])
    assert count > 0 and int(lite["num_detections"][0]) == count
    # near-equal scores may swap places between the two runtimes: every one of TFLite's top 20 detections
    # must be among the SavedModel's, with the same box and score within 2e-3
    served_boxes = served["detection_boxes"][0, :count].numpy()
    served_scores = served["detection_scores"][0, :count].numpy()
    for box, score in zip(lite["detection_boxes"][0, :min(count, 20)], lite["detection_scores"][0, :min(count, 20)]):
        same = (np.abs(served_boxes - box).max(axis=1) <= 2e-3) & (np.abs(served_scores - score) <= 2e-3)
        assert same.any(), (box, score)
