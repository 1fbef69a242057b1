"""TFLite export of a trained detector: file size, latency and whether each variant keeps the detections.

    .venv/bin/python benchmarks/tflite.py [--config cpu_small] [--weights data/cpu_small_weights/ckpt]

Takes the weights that benchmarks/train.py saved for the config (train it first), exports
float32, float16 and dynamic-range int8 ``.tflite`` files (decoding and NMS inside), and runs each in
``tf.lite.Interpreter`` (2 threads) on the default eval split, letterboxed to uint8 as an app would.
Reports, beside the in-memory TensorFlow model on the same inputs: file size, latency per image (median
after a warm-up) and COCO mAP@0.5 / mAP with pycocotools. Writes benchmarks/results/tflite_<config>.json.
"""

import argparse
import os
import statistics
import tempfile
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import save  # noqa: E402
from tfdet.core.detections import boxes_to_original, split_detections  # noqa: E402
from tfdet.dataio.synthetic import generate_default_dataset  # noqa: E402
from tfdet.evaluation import coco_metrics, eval_dataset  # noqa: E402
from tfdet.export.tflite import QUANTIZATIONS, export_tflite  # noqa: E402


def eval_inputs(model, span: str):
    """(uint8 letterboxed input [1, H, W, 3], window [1, 4], ground truth dict) per eval image."""
    mean, std = np.array(model.config.mean, np.float32), np.array(model.config.std, np.float32)
    items = []
    for batch in eval_dataset(f"{span}/eval-*.tfrecord", model.config.input_size, model.config.mean,
                              model.config.std, batch_size=1):
        pixels = np.clip(np.round((batch["image"].numpy() * std + mean) * 255.0), 0, 255).astype(np.uint8)
        height, width = (int(v) for v in batch["original_size"][0])
        scale = np.array([height, width, height, width], np.float32)
        mask = batch["mask"][0].numpy()
        boxes = boxes_to_original(tf.cast(batch["bboxes"], tf.float32), batch["image_window"])[0].numpy()
        truth = {"image_id": len(items), "height": height, "width": width, "boxes": boxes[mask] * scale,
                 "labels": batch["labels"][0].numpy()[mask]}
        items.append((pixels, batch["image_window"], truth, scale))
    return items


def detections_of(run, items):
    """Runs ``run(uint8 input) -> outputs`` on every item; returns (detections, seconds per image)."""
    found, seconds = [], []
    for index, (pixels, window, _, scale) in enumerate(items):
        started = time.perf_counter()
        out = run(pixels)
        seconds.append(time.perf_counter() - started)
        (detected,) = split_detections(out, [scale[:2]], window, [index])
        found.append({**detected, "classes": detected["classes"].astype(np.int64)})  # TFLite's classes are float
    return found, statistics.median(seconds[2:] if len(seconds) > 4 else seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu_small")
    parser.add_argument("--weights", default=None, help="TF checkpoint (default data/<config>_weights/ckpt)")
    parser.add_argument("--data", default="data")
    parser.add_argument("--images", type=int, default=40, help="eval images used")
    args = parser.parse_args()
    weights = args.weights or os.path.join(args.data, f"{args.config}_weights", "ckpt")
    if not tf.io.gfile.exists(weights + ".index"):
        raise SystemExit(f"no trained weights at {weights}; run benchmarks/train.py --config {args.config}")
    span = generate_default_dataset(args.data)[1]
    model = tfdet.create_model(args.config, pretrained=False)
    model.load_weights(weights).expect_partial()
    items = eval_inputs(model, span)[:args.images]
    truth = [item[2] for item in items]
    mean, std = tf.constant(model.config.mean), tf.constant(model.config.std)
    detect = model.detect_function()

    def tensorflow_run(pixels):
        return detect((tf.cast(pixels, tf.float32) / 255.0 - mean) / std)

    rows = {}
    found, latency = detections_of(tensorflow_run, items)
    metrics = coco_metrics(truth, found, model.num_classes)
    rows["TensorFlow (in memory, float32)"] = {"size_mb": None, "seconds_per_image": round(latency, 4),
                                               "mAP@0.5": round(metrics["AP50"], 4), "mAP": round(metrics["AP"], 4)}
    with tempfile.TemporaryDirectory() as folder:
        for quantization in QUANTIZATIONS:
            path = export_tflite(model, os.path.join(folder, f"{quantization or 'float32'}.tflite"), quantization)
            interpreter = tf.lite.Interpreter(model_path=path, num_threads=os.cpu_count())
            runner = interpreter.get_signature_runner()
            found, latency = detections_of(lambda pixels, run=runner: run(image=pixels), items)
            metrics = coco_metrics(truth, found, model.num_classes)
            rows[f"TFLite {quantization or 'float32'}"] = {
                "size_mb": round(os.path.getsize(path) / 2 ** 20, 2), "seconds_per_image": round(latency, 4),
                "mAP@0.5": round(metrics["AP50"], 4), "mAP": round(metrics["AP"], 4)}
            print(quantization or "float32", rows[f"TFLite {quantization or 'float32'}"], flush=True)
    result = {"config": args.config, "weights": weights, "images": len(items),
              "input_size": list(model.config.input_size), "threads": os.cpu_count(), "rows": rows}
    save(f"tflite_{args.config}.json", result)


if __name__ == "__main__":
    main()
