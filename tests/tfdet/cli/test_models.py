"""tfdet train / predict / evaluate / export, driven as a user drives them: subprocesses on real files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from card_checks import cells
from learnable_data import write_span
from PIL import Image

from tfdet.dataio.tfrecord_files import read_records
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
def test_train_resume_predict_evaluate_export(tmp_path):
    """On data the tiny model learns within its 60 steps, so that the comparisons below compare real detections."""
    write_span(str(tmp_path / "data"), 1)
    default_data = str(tmp_path / "data" / "span-1")
    work = str(tmp_path / "run")
    common = ["tiny", "--data", f"{default_data}/train-*.tfrecord", "--eval-data", f"{default_data}/eval-*.tfrecord",
              "--work-dir", work, "--batch-size", "4", "--eval-every", "5", "--seed", "0"]
    first = tfdet("train", *common, "--epochs", "4")
    assert "resumed from" not in first.stdout and "COCO on" in first.stdout
    second = tfdet("train", *common, "--epochs", "5")  # as after an interruption: continues at epoch 5
    assert "resumed from" in second.stdout
    history = json.load(open(os.path.join(work, "history.json")))
    assert len(history["history"]["loss"]) == 1 and "val_AP" in history["history"]  # only epoch 5 ran
    assert history["resumed_from"].endswith("ckpt-4")
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
    assert label_map == {"0": "square", "1": "disc"}

    # predict: drawn PNGs whose box outlines sit where detections.json says
    images = sorted(os.path.join(default_data, "..", "images", "span-1", f)
                    for f in os.listdir(os.path.join(default_data, "..", "images", "span-1")) if "eval" in f)[:3]
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

    # evaluate: the numbers pycocotools itself gives for predict's detections against the records' boxes
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    records = read_records(f"{default_data}/eval-*.tfrecord")
    eval_images, gt_images, annotations = [], [], []
    for index, raw in enumerate(records):  # the exact bytes the records carry, so both commands see one input
        example = tf.train.Example.FromString(raw).features.feature
        path = str(tmp_path / f"eval-{index:03d}.jpg")
        with open(path, "wb") as handle:
            handle.write(example["image/encoded"].bytes_list.value[0])
        eval_images.append(path)
        height, width = example["image/height"].int64_list.value[0], example["image/width"].int64_list.value[0]
        gt_images.append({"id": index, "height": height, "width": width})
        columns = [example[f"image/object/bbox/{k}"].float_list.value for k in ("ymin", "xmin", "ymax", "xmax")]
        for ymin, xmin, ymax, xmax, label in zip(*columns, example["image/object/class/label"].int64_list.value,
                                                 strict=True):
            box = [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height]
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": int(label),
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    gt = COCO()
    gt.dataset = {"images": gt_images, "annotations": annotations,
                  "categories": [{"id": i, "name": str(i)} for i in range(2)]}
    gt.createIndex()
    predicted = str(tmp_path / "all_detections")
    tfdet("predict", work, *eval_images, "--out", predicted, "--score-thr", "0.05")  # everything the model keeps
    reference = COCOeval(gt, gt.loadRes(os.path.join(predicted, "detections.json")), iouType="bbox")
    reference.evaluate()
    reference.accumulate()
    reference.summarize()
    metrics_file = str(tmp_path / "metrics.json")
    tfdet("evaluate", work, "--data", f"{default_data}/eval-*.tfrecord", "--json", metrics_file)
    metrics = json.load(open(metrics_file))
    # predict's JSON rounds boxes to 0.01 px and scores to 1e-5, hence the small tolerance
    for name, value in zip(("AP", "AP50", "AP75"), reference.stats[:3], strict=True):
        assert metrics[name] == pytest.approx(value, abs=2e-3), name
    assert metrics["AP50"] > 0.3 and metrics["num_images"] == len(records)

    # report: the card shows evaluate's numbers and the work dir's training, every picture embedded
    card = str(tmp_path / "card.html")
    printed = tfdet("report", work, "--data", f"{default_data}/eval-*.tfrecord", "--out", card).stdout
    assert printed.strip() == f"model card -> {card}"
    page = open(card).read()
    assert cells(page, "data-figure") == {name: f"{metrics[name]:.4f}" for name in ("AP50", "AP", "AR100")}
    assert '<th class="name">seed</th><td class="name">0</td>' in page
    assert '<th class="name">steps</th><td class="name">' in page and 'alt="training losses"' in page
    assert page.count('src="data:image/png;base64,') >= 4 and 'Trained outside the pipeline' in page

    # export: each TFLite variant (NMS inside) agrees with the SavedModel both ways: every confident detection of
    # either side has a partner of its own on the other (same class, score and box within the variant's tolerance),
    # and the counts of confident detections agree but for those whose score sits within the tolerance of the bar
    served = tf.saved_model.load(os.path.join(work, "saved_model")).signatures["serving_images"]
    tolerance = {None: (2e-3, 0.98), "float16": (5e-3, 0.95), "dynamic_int8": (0.05, 0.75)}  # score, box IoU
    confident_seen = 0
    for quantization, (score_tol, min_iou) in tolerance.items():
        tflite = str(tmp_path / f"model-{quantization}.tflite")
        tfdet("export", work, "--format", "tflite", "--out", tflite,
              *(["--quantization", quantization] if quantization else []))
        for path in eval_images[:3]:
            inputs, _ = letterbox(np.asarray(Image.open(path).convert("RGB")), 128, 128)
            lite = rows(run_tflite(tflite, inputs))
            reference = rows(served(images=tf.constant([tf.io.encode_png(inputs[0]).numpy()])))
            assert len(reference) > 0 and len(lite) > 0
            for found, other in ((lite, reference), (reference, lite)):
                sure = [row for row in found if row[1] >= CONFIDENT]
                pool = [row for row in other if row[1] >= CONFIDENT - score_tol]
                assert one_to_one(sure, pool, score_tol, min_iou), (quantization, path, sure, pool)
                confident_seen += len(sure)
            borderline = sum(abs(row[1] - CONFIDENT) <= score_tol for row in reference + lite)
            counts = [sum(row[1] >= CONFIDENT for row in side) for side in (lite, reference)]
            assert abs(counts[0] - counts[1]) <= borderline, (quantization, path, counts)
    assert confident_seen >= 6  # the comparison is not vacuous


CONFIDENT = 0.3


def rows(outputs) -> list:
    """A detector's first image as (box, score, class) rows, up to its num_detections."""
    count = int(np.asarray(outputs["num_detections"])[0])
    boxes, scores, classes = (np.asarray(outputs[key])[0, :count] for key in
                              ("detection_boxes", "detection_scores", "detection_classes"))
    return [(box, float(score), int(label)) for box, score, label in zip(boxes, scores, classes, strict=True)]


def one_to_one(found: list, pool: list, score_tol: float, min_iou: float) -> bool:
    """Whether each row of ``found`` has a partner of its own in ``pool`` (same class, score within ``score_tol``, IoU
    at least ``min_iou``), taken greedily, the most overlapping free partner first."""
    free = list(range(len(pool)))
    for box, score, label in sorted(found, key=lambda row: -row[1]):
        partners = [i for i in free if pool[i][2] == label and abs(pool[i][1] - score) <= score_tol]
        overlaps = [iou(np.stack([pool[i][0]]), box)[0] for i in partners]
        if not partners or max(overlaps) < min_iou:
            return False
        free.remove(partners[int(np.argmax(overlaps))])
    return True


def iou(boxes, box):
    """IoU of each (ymin, xmin, ymax, xmax) row of ``boxes`` with ``box``."""
    top, left = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    bottom, right = np.minimum(boxes[:, 2], box[2]), np.minimum(boxes[:, 3], box[3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + (box[2] - box[0]) * (box[3] - box[1]) - inter + 1e-12)
