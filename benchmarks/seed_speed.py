"""Speed of the seed's detector (BiT ResNetV2-50 + FPN + RetinaNet head, 20 classes, 512x512) on this CPU.

    .venv/bin/python benchmarks/seed_speed.py [--train-steps 5] [--latency-runs 10]

For float32 and mixed_bfloat16 (each also with the network forward under XLA), measured in one run:
* SavedModel inference latency per image: the exported ``serving_images`` signature reloaded with
  tf.saved_model.load, batch 1, a 512x512 JPEG (decode + letterbox + network + NMS), median of N runs;
* training throughput: OneStageModel.fit on the seed's Step 02 pipeline, batch 4, images/s over N steps
  after two warm-up steps.
Writes benchmarks/results/seed_speed.json.
"""

import argparse
import io
import os
import statistics
import tempfile
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from PIL import Image  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import save  # noqa: E402
from tfdet.dataio.pipeline import pipeline, training_batches  # noqa: E402
from tfdet.dataio.synthetic import generate_default_dataset  # noqa: E402
from tfdet.export import export_saved_model  # noqa: E402
from tfdet.zoo import get_entry  # noqa: E402


def jpeg_512() -> bytes:
    rng = np.random.RandomState(0)
    buffer = io.BytesIO()
    Image.fromarray((rng.rand(512, 512, 3) * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def latency(model, runs: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        export_saved_model(model, os.path.join(directory, "1"))
        serve = tf.saved_model.load(os.path.join(directory, "1")).signatures["serving_images"]
        images = tf.constant([jpeg_512()])
        for _ in range(3):
            serve(images=images)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            serve(images=images)["num_detections"].numpy()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def train_rate(model, span: str, steps: int) -> float:
    entry = get_entry("retinanet_resnetv2_50_fpn_512")
    batches = iter(training_batches(pipeline(entry.train_steps(f"{span}/train-*.tfrecord")), 4).repeat())
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-4))
    for _ in range(2):
        model.train_on_batch(next(batches))
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(next(batches))
    return steps * 4 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data")
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=10)
    args = parser.parse_args()
    span = generate_default_dataset(args.data)[1]
    results = {}
    for name, changes in (("float32", {}), ("mixed_bfloat16", {"mixed_precision": "mixed_bfloat16"}),
                          ("float32 + XLA forward", {"jit_compile": True}),
                          ("mixed_bfloat16 + XLA forward", {"mixed_precision": "mixed_bfloat16", "jit_compile": True})):
        model = tfdet.create_model("retinanet_resnetv2_50_fpn_512", **changes)
        seconds = latency(model, args.latency_runs)
        rate = train_rate(model, span, args.train_steps) if "XLA" not in name else None
        results[name] = {"savedmodel_seconds_per_image": round(seconds, 3),
                         "train_images_per_second": round(rate, 3) if rate else None}
        trained = f"{rate:.3f} img/s" if rate else "(not measured)"
        print(f"{name:24s} inference {seconds:.3f} s/image   training {trained}", flush=True)
    out = {"model": "retinanet_resnetv2_50_fpn_512 (seed config)", "params": model.count_params(),
           "cores": os.cpu_count(), "results": results,
           "bf16_speedup_inference": round(results["float32"]["savedmodel_seconds_per_image"]
                                           / results["mixed_bfloat16"]["savedmodel_seconds_per_image"], 2),
           "bf16_speedup_training": round(results["mixed_bfloat16"]["train_images_per_second"]
                                          / results["float32"]["train_images_per_second"], 2)}
    save("seed_speed.json", out)


if __name__ == "__main__":
    main()
