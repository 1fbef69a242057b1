"""Where a training step's time goes: backbone, FPN, head, loss/targets, optimizer; forward and backward.

    .venv/bin/python benchmarks/train_step_profile.py [--model retinanet_resnet50_fpn] [--precision mixed_bfloat16]

Random init, 512x512, 20 classes, batch 2 (the peers protocol). Each stage -- backbone, FPN, head, loss and
targets (anchor assignment and losses) -- runs alone as a traced tf.function on the previous stage's
precomputed output (median of --repeats after a warm-up): its forward, and its forward + backward (the
gradient of a fixed random projection of its outputs to its weights and inputs); backward = the
difference. Then the optimizer's ``apply_gradients`` and the whole ``train_step``, which the parts should
add up to about.

Writes benchmarks/results/train_step_profile_<model>_<precision>.json.
"""

import argparse
import os
import statistics
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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


def with_backward(forward, sources, cotangents):
    """A tf.function of ``forward`` and the gradient of its outputs (projected on ``cotangents``) to ``sources``."""
    watched = [x for x in sources if not isinstance(x, tf.Variable) and not hasattr(x, "_variable")]

    @tf.function
    def both():
        with tf.GradientTape() as tape:
            tape.watch(watched)
            result = forward()
        return tape.gradient(result, sources, output_gradients=cotangents,
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="retinanet_resnet50_fpn")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
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

    def total_loss(losses):
        return tf.add_n([losses[name] for name in model.head.loss_names])

    # each stage on the previous stage's (precomputed) output, alone: forward, and forward + backward (the
    # gradient of a fixed random projection of its outputs, to its weights and its inputs)
    features = model.backbone(images, training=True, return_features=True)
    pyramid = model.neck(features)
    outputs = model.head(pyramid)
    stages = {
        "backbone": (lambda: model.backbone(images, training=True, return_features=True), [], model.backbone),
        "FPN": (lambda: model.neck(features), features, model.neck),
        "head": (lambda: model.head(pyramid), pyramid, model.head),
        "loss and targets": (lambda: total_loss(model.head.loss(outputs, batch)), outputs, None),
    }
    t = {}
    for name, (forward, inputs, layer) in stages.items():
        weights = layer.trainable_variables if layer is not None else []
        sources = weights + [x for x in tf.nest.flatten(inputs) if x.dtype.is_floating]
        first = forward()
        cotangents = tf.nest.map_structure(
            lambda x: tf.cast(tf.random.stateless_normal(tf.shape(x), [1, 2]), x.dtype) if x.dtype.is_floating
            else None, first)

        t[f"{name} forward"] = timed(tf.function(forward), args.repeats)
        t[f"{name} forward+backward"] = timed(with_backward(forward, sources, cotangents), args.repeats)
    zeros = [tf.zeros_like(v) for v in model.trainable_variables]
    t["optimizer"] = timed(tf.function(lambda: model.optimizer.apply_gradients(zip(zeros, model.trainable_variables))),
                           args.repeats)
    t["train_step"] = timed(tf.function(lambda: model.train_step(batch)), args.repeats)
    parts = {}
    for name in stages:
        parts[f"forward: {name}"] = t[f"{name} forward"]
        parts[f"backward: {name}"] = t[f"{name} forward+backward"] - t[f"{name} forward"]
    parts["optimizer"] = t["optimizer"]
    total = t["train_step"]
    result = {"model": args.model, "precision": args.precision, "size": args.size, "batch": args.batch,
              "overrides": overrides, "seconds": {k: round(v, 4) for k, v in t.items()},
              "parts_seconds": {k: round(v, 4) for k, v in parts.items()},
              "parts_share_of_step": {k: round(v / total, 3) for k, v in parts.items()},
              "sum_of_parts_seconds": round(sum(parts.values()), 4),
              "images_per_second": round(args.batch / total, 3)}
    for name, seconds in parts.items():
        print(f"{name:28s} {seconds * 1000:8.1f} ms  {seconds / total:6.1%}")
    print(f"{'sum of the parts':28s} {sum(parts.values()) * 1000:8.1f} ms")
    print(f"{'train_step':28s} {total * 1000:8.1f} ms  ({args.batch / total:.2f} img/s)")
    save(f"train_step_profile_{args.model}_{args.precision}.json", result, show=False)


if __name__ == "__main__":
    main()
