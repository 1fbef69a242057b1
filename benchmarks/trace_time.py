"""Time to a detector's first training step and to its SavedModel: the cost of tracing, not of computing.

    python benchmarks/trace_time.py [--models tiny cpu_small retinanet_resnet50_fpn] [--out FILE]

Each model is measured in a fresh process (no graph shared between them): random init at the zoo's input
size, a fixed in-memory batch of 2. ``first_fit`` is the wall time of ``fit`` for one step right after
``compile`` (it traces the train function, then runs one step); ``step`` is the median of 3 further one-step
``fit`` calls (the traced function reused), so ``first_fit - step`` is what tracing costs before training
starts. ``export`` is ``tfdet.export.export_saved_model`` (an inference copy with folded kernels, three
serving signatures traced and written). Run it on two checkouts to measure a change before and after.
Writes benchmarks/results/trace_time.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(name: str) -> dict:
    """One model's timings, in this process."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    import tfdet
    from tfdet.export import export_saved_model

    started = time.perf_counter()
    model = tfdet.create_model(name, pretrained=False)
    built = time.perf_counter() - started
    size = int(model.config.input_size[0])
    rng = np.random.RandomState(0)
    boxes = np.array([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.8, 0.6]]] * 2, "float32") * size
    batch = {"image": rng.normal(size=(2, size, size, 3)).astype("float32"), "bboxes": boxes,
             "labels": np.array([[0, 1]] * 2, "int32"), "mask": np.ones((2, 2), bool)}
    batches = tf.data.Dataset.from_tensors(batch).repeat()
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-4))
    started = time.perf_counter()
    model.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)
    first_fit = time.perf_counter() - started
    steps = []
    for _ in range(3):
        started = time.perf_counter()
        model.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)
        steps.append(time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        export_saved_model(model, os.path.join(directory, "saved_model"))
        export = time.perf_counter() - started
    step = statistics.median(steps)
    return {"model": name, "input_size": size, "build_s": round(built, 2), "first_fit_s": round(first_fit, 2),
            "step_s": round(step, 3), "tracing_before_first_step_s": round(first_fit - step, 2),
            "export_s": round(export, 2), "tensorflow": tf.__version__}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "cpu_small", "retinanet_resnet50_fpn"])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "trace_time.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(measure(args.worker)), flush=True)
        return 0
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    rows = []
    for name in args.models:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name], env=env,
                              capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            raise SystemExit(f"{name}: the worker failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][len("RESULT "):]))
        row = rows[-1]
        print(f"{name:28s} build {row['build_s']:6.2f} s  first fit {row['first_fit_s']:6.2f} s  "
              f"step {row['step_s']:6.3f} s  tracing {row['tracing_before_first_step_s']:6.2f} s  "
              f"export {row['export_s']:6.2f} s", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"commit": commit, "cores": os.cpu_count(), "rows": rows}, handle, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
