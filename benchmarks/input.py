"""Input pipeline throughput: the seed's Step 02 steps at 512x512 on the default data.

    .venv/bin/python benchmarks/input_pipeline.py [--seconds 20] [--batch-size 4]

Reports images/s after a warm-up, for the seed's steps (read + decode,
RandomResized 512x512, Normalize) and for the same plus RandomFlip and
ColorJitter, with tfdet's pipelines as shipped (tf.data autotuning off) and with
``autotune=True``, and writes benchmarks/results/input_pipeline.json.
"""

import argparse
import os
import platform
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import tensorflow as tf  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import save  # noqa: E402
from tfdet.dataio.pipeline import pipeline  # noqa: E402
from tfdet.dataio.synthetic import generate_default_dataset  # noqa: E402


def measure(steps, batch_size: int, seconds: float, autotune: bool = False) -> float:
    keep = ("image", "bboxes", "labels", "mask")
    dataset = (pipeline(steps, autotune=autotune).map(lambda e: {k: e[k] for k in keep})
               .padded_batch(batch_size, drop_remainder=True))
    iterator = iter(dataset.prefetch(2))
    for _ in range(10):  # warm-up: thread pools, autotuning
        next(iterator)
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = next(iterator)
        images += int(batch["image"].shape[0])
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    span_dir = generate_default_dataset(args.data)[1]
    source = dict(name="InputReadRecordFiles", pattern_file=f"{span_dir}/train-*.tfrecord", shuffle=True, repeat=True)
    crop = dict(name="RandomResized", height=512, width=512, scale=(0.8, 1.0), ratio=(0.75, 1.3333333333333333))
    normalize = dict(name="Normalize", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), p=1.0)
    configs = {
        "seed steps (read, RandomResized 512, Normalize)": [source, crop, normalize],
        "seed steps + RandomFlip + ColorJitter": [source, crop, dict(name="RandomFlip"),
                                                  dict(name="ColorJitter", hue=0.02), normalize],
        "read + decode only": [source],
    }
    results = {name: round(measure(steps, args.batch_size, args.seconds), 1) for name, steps in configs.items()}
    # tf.data's autotuning, off in tfdet's pipelines (see tfdet.dataio.pipeline), for comparison
    tuned = {name: round(measure(steps, args.batch_size, args.seconds, autotune=True), 1)
             for name, steps in configs.items()}
    out = {"images_per_second": results, "images_per_second_with_tf_data_autotune": tuned,
           "batch_size": args.batch_size, "cores": os.cpu_count(),
           "tensorflow": tf.__version__, "machine": platform.processor() or platform.machine(),
           "images": "default dataset span 1 train (320 JPEGs, 224-384 px)"}
    for name, value in results.items():
        print(f"{value:8.1f} img/s ({tuned[name]:.1f} with autotuning)  {name}")
    save("input_pipeline.json", out, show=False)


if __name__ == "__main__":
    main()
