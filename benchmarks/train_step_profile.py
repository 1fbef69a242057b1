"""Where a training step's time goes: backbone, FPN, head, loss/targets, optimizer; forward and backward.

    .venv/bin/python benchmarks/train_step_profile.py [--model retinanet_resnet50_fpn] [--precision mixed_bfloat16]

Random init, 512x512, 20 classes, batch 2 (the peers protocol). Each part is a traced tf.function timed
alone (median of --repeats after a warm-up), and the step is split by subtraction:

* forward: backbone; + FPN; + head (the network); + loss and targets (assignment, losses);
* backward: the gradient of the loss through the network (``tape.gradient``) minus the forward;
* optimizer: ``apply_gradients`` of precomputed gradients;
* the whole ``train_step`` for comparison (the parts should add up to about it).

Writes benchmarks/results/train_step_profile_<model>_<precision>.json.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore", message=".*non-supported Python version.*")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

import tfdet  # noqa: E402
from benchmarks.report import save  # noqa: E402


def timed(function, repeats: int) -> float:
    for _ in range(2):
        tf.nest.map_structure(lambda t: t.numpy(), function())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), function())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="retinanet_resnet50_fpn")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    import ast

    overrides = {k: ast.literal_eval(v) for k, _, v in (item.partition("=") for item in args.set)}
    model = tfdet.create_model(args.model, num_classes=20, pretrained=False, mixed_precision=args.precision,
                               **overrides)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-4))
    rng = np.random.RandomState(0)
    images = tf.constant(rng.normal(size=(args.batch, args.size, args.size, 3)).astype("float32"))
    boxes = tf.constant([[[40, 40, 200, 220], [250, 100, 400, 300], [10, 300, 120, 500]]] * args.batch, tf.float32)
    batch = {"image": images, "bboxes": boxes, "labels": tf.constant([[1, 5, 7]] * args.batch),
             "mask": tf.ones([args.batch, 3], tf.bool)}

    backbone = tf.function(lambda: model.backbone(images, training=True, return_features=True))
    with_neck = tf.function(lambda: model.neck(model.backbone(images, training=True, return_features=True)))
    network = tf.function(lambda: model(images, training=True))
    losses = tf.function(lambda: model.compute_losses(batch, training=True)["loss"])

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            loss = model.compute_losses(batch, training=True)["loss"]
        return tape.gradient(loss, model.trainable_variables)

    zeros = [tf.zeros_like(v) for v in model.trainable_variables]
    apply = tf.function(lambda: model.optimizer.apply_gradients(zip(zeros, model.trainable_variables)))
    step = tf.function(lambda: model.train_step(batch))

    t = {name: timed(function, args.repeats) for name, function in (
        ("backbone", backbone), ("backbone+fpn", with_neck), ("network", network), ("network+loss", losses),
        ("forward+backward", gradients), ("optimizer", apply), ("train_step", step))}
    parts = {
        "forward: backbone": t["backbone"],
        "forward: FPN": t["backbone+fpn"] - t["backbone"],
        "forward: head": t["network"] - t["backbone+fpn"],
        "forward: loss and targets": t["network+loss"] - t["network"],
        "backward (all)": t["forward+backward"] - t["network+loss"],
        "optimizer": t["optimizer"],
    }
    total = t["train_step"]
    result = {"model": args.model, "precision": args.precision, "size": args.size, "batch": args.batch,
              "overrides": overrides, "seconds": {k: round(v, 4) for k, v in t.items()},
              "parts_seconds": {k: round(v, 4) for k, v in parts.items()},
              "parts_share_of_step": {k: round(v / total, 3) for k, v in parts.items()},
              "images_per_second": round(args.batch / total, 3)}
    for name, seconds in parts.items():
        print(f"{name:28s} {seconds * 1000:8.1f} ms  {seconds / total:6.1%}")
    print(f"{'train_step':28s} {total * 1000:8.1f} ms  ({args.batch / total:.2f} img/s)")
    save(f"train_step_profile_{args.model}_{args.precision}.json", result, show=False)


if __name__ == "__main__":
    main()
