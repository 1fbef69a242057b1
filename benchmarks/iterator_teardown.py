"""How long ``fit`` takes to return after its last step, with tf.data's autotuning on and off.

    .venv/bin/python benchmarks/iterator_teardown.py [--config retinanet_resnet50_fpn] [--steps 3 5 8 12]

Trains ``--config`` (random init) on the default data's training pipeline, repeated as
``tfdet train`` and the TFX Trainer feed it, with ``fit(steps_per_epoch=N)`` for each N, once with
``pipeline(..., autotune=True)`` and once with tfdet's default (off), alternating. For each fit: the
wall time of the call, the time of its steps (first step's start to ``on_train_end``) and what is left:
``fit``'s set-up and tear-down, where TensorFlow 2.16 deletes the half-consumed iterator. Writes
benchmarks/results/iterator_teardown.json.
"""

import argparse
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import tf_keras  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.peer_workers.timed_fit import step_clock  # noqa: E402
from benchmarks.report import save  # noqa: E402
from tfdet.dataio.pipeline import pipeline, training_batches  # noqa: E402
from tfdet.dataio.synthetic import generate_default_dataset  # noqa: E402
from tfdet.zoo import get_entry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="retinanet_resnet50_fpn")
    parser.add_argument("--data", default="data")
    parser.add_argument("--steps", type=int, nargs="+", default=[3, 5, 8, 12])
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()
    entry = get_entry(args.config)
    span = generate_default_dataset(args.data)[1]
    model = tfdet.create_model(args.config, pretrained=False)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-4))

    def batches(autotune: bool):
        examples = pipeline(entry.train_steps(f"{span}/train-*.tfrecord"), autotune=autotune).repeat()
        return training_batches(examples, args.batch_size)

    model.fit(batches(False), steps_per_epoch=2, epochs=1, verbose=0)  # tracing
    clock_class = step_clock(tf_keras.callbacks.Callback)
    rows = []
    for steps in args.steps:
        for autotune in (True, False):
            clock = clock_class()
            started = time.perf_counter()
            model.fit(batches(autotune), steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
            returned = time.perf_counter()
            rows.append({"steps": steps, "autotune": autotune, "fit_seconds": round(returned - started, 2),
                         "steps_seconds": round(clock.ended - clock.started, 2),
                         "after_last_step_seconds": round(returned - clock.ended, 2)})
            print(rows[-1], flush=True)
    totals = {str(on): round(sum(r["fit_seconds"] - r["steps_seconds"] for r in rows if r["autotune"] is on), 2)
              for on in (True, False)}
    save("iterator_teardown.json", {
        "command": f"benchmarks/iterator_teardown.py --config {args.config} --steps "
                   f"{' '.join(map(str, args.steps))} --batch-size {args.batch_size}",
        "config": args.config, "batch_size": args.batch_size, "runs": rows,
        "seconds_outside_steps_total": {"autotune on": totals["True"], "autotune off (tfdet default)": totals["False"]},
    })


if __name__ == "__main__":
    main()
