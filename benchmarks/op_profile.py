"""Which TensorFlow kernels a training step or a detection spends its time in, from TensorFlow's own profiler.

    .venv/bin/python benchmarks/op_profile.py [--model retinanet_resnet50_fpn] [--precision mixed_bfloat16]
        [--mode train|infer]

The peers protocol (random init, 512x512, 20 classes). train: a fixed batch of 2, Keras ``fit``, a warm-up
fit, then --steps steps under ``tf.profiler.experimental``; infer: the traced detect function (network, box
decoding, NMS) on one image, two warm-up calls, then --steps calls profiled. The trace's kernel events
(TensorFlow's compute threads) are summed by kernel type and by the part of the network their op belongs to
(from its name scope: backbone, neck, head; the rest is the loss, the targets and the optimizer, or the
decoding and NMS). Two kernels often run at once on the two cores, each on fewer threads, so the summed
kernel time exceeds the wall time; the shares compare kernels with each other. Complements
``train_step_profile.py`` (stages timed alone).

Writes benchmarks/results/op_profile_<model>_<precision>[_infer].json.
"""

import argparse
import collections
import glob
import os
import tempfile
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import tfdet  # noqa: E402
from benchmarks.peer_workers.protocol import BOXES, CLASSES  # noqa: E402
from benchmarks.report import save  # noqa: E402

PARTS = ("backbone", "neck", "head")


def part_of(op_name: str) -> str:
    """The network part an op belongs to, from its name scope (gradients carry the forward op's scope)."""
    for part in PARTS:
        if f"/{part}/" in op_name:
            return part
    return "rest (loss, targets, optimizer; or decoding, NMS)"


def kernel_times(trace_dir: str) -> tuple:
    """(seconds by (part, kernel type), wall seconds from the first to the last kernel) of one trace."""
    paths = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.xplane.pb"))
    if len(paths) != 1:
        raise RuntimeError(f"op_profile: expected one trace under {trace_dir}, found {paths}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as handle:
        space.ParseFromString(handle.read())
    times, first, last = collections.Counter(), float("inf"), 0.0
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # kernel events are "op_name:KernelType"; the executor's own ("ExecutorState::Process")
                # enclose them
                if ":" not in name or "::" in name:
                    continue
                op_name, kernel = name.rsplit(":", 1)
                times[(part_of(op_name), kernel)] += event.duration_ps * 1e-12
                start = line.timestamp_ns * 1e-9 + event.offset_ps * 1e-12
                first, last = min(first, start), max(last, start + event.duration_ps * 1e-12)
    return times, last - first


def kind_of(kernel: str) -> str:
    """Convolution forward / input gradient / filter gradient, or 'other'."""
    if "Conv2DBackpropFilter" in kernel:
        return "convolution filter gradient"
    if "Conv2DBackpropInput" in kernel:
        return "convolution input gradient"
    if "Conv2D" in kernel:
        return "convolution forward"
    return "other kernels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="retinanet_resnet50_fpn")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--mode", choices=("train", "infer"), default="train")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    import ast

    overrides = {k: ast.literal_eval(v) for k, _, v in (item.partition("=") for item in args.set)}
    model = tfdet.create_model(args.model, num_classes=20, pretrained=False, mixed_precision=args.precision,
                               **overrides)
    rng = np.random.RandomState(0)
    if args.mode == "train":
        model.compile(optimizer=tf_keras.optimizers.Adam(1e-4))
        batch = {"image": rng.normal(size=(2, 512, 512, 3)).astype("float32"),
                 "bboxes": np.array([BOXES] * 2, "float32"), "labels": np.array([CLASSES] * 2, "int32"),
                 "mask": np.ones((2, len(CLASSES)), bool)}
        batches = tf.data.Dataset.from_tensors(batch).repeat()
        model.fit(batches, steps_per_epoch=3, epochs=1, verbose=0)

        def run() -> None:
            model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0)
    else:
        image = tf.constant(rng.normal(size=(1, 512, 512, 3)).astype("float32"))
        detect = model.detect_function()
        for _ in range(2):
            detect(image)["num_detections"].numpy()

        def run() -> None:
            for _ in range(args.steps):
                detect(image)["num_detections"].numpy()
    with tempfile.TemporaryDirectory() as trace_dir:
        started = time.perf_counter()
        tf.profiler.experimental.start(trace_dir)
        run()
        tf.profiler.experimental.stop()
        profiled = time.perf_counter() - started
        times, kernel_span = kernel_times(trace_dir)
    per_step = {key: seconds / args.steps for key, seconds in times.items()}
    total = sum(per_step.values())
    by_kernel, by_part, by_kind = collections.Counter(), collections.Counter(), collections.Counter()
    for (part, kernel), seconds in per_step.items():
        by_kernel[kernel] += seconds
        by_part[part] += seconds
        by_kind[(part, kind_of(kernel))] += seconds
    ms = lambda seconds: round(seconds * 1000, 1)  # noqa: E731
    result = {
        "model": args.model, "precision": args.precision, "mode": args.mode, "overrides": overrides,
        "steps": args.steps,
        "wall_ms_per_step_first_to_last_kernel": ms(kernel_span / args.steps),
        "wall_ms_per_step_with_profiler_start_stop": ms(profiled / args.steps),
        "kernel_ms_per_step": ms(total),
        "by_part_ms": {part: ms(s) for part, s in by_part.most_common()},
        "by_part_and_kind_ms": {f"{part}: {kind}": ms(s) for (part, kind), s in sorted(by_kind.items())},
        "by_kernel_ms": {kernel: ms(s) for kernel, s in by_kernel.most_common(25)},
    }
    print(f"kernel time {ms(total)} ms per step; wall {result['wall_ms_per_step_first_to_last_kernel']} ms "
          f"(first to last kernel)")
    for (part, kind), seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"{part + ': ' + kind:55s} {seconds * 1000:8.1f} ms  {seconds / total:6.1%}")
    save(f"op_profile_{args.model}_{args.precision}{'_infer' if args.mode == 'infer' else ''}.json", result,
         show=False)


if __name__ == "__main__":
    main()
