"""The pipeline's Beam steps on the DirectRunner and on a Flink cluster of 1 and 2 TaskManagers, same data, same run.

    .venv/bin/python benchmarks/beam_engines.py [--rounds 1] [--engines direct flink-1 flink-2]   # make bench-beam

Each round runs the whole pipeline (``python -m pipeline.local_runner``) on the default data (960 train, 120 eval,
40 unlabelled images) into a fresh output root, for each engine in turn, with the same short training (20 steps,
seed 0), and reads the console's per-component times. The Beam steps are both ExampleGens, StatisticsGen,
Transform, the Evaluator and BulkInferrer. A Flink cluster is started (``pipeline.engines.cluster``) before its runs and
stopped after. Writes benchmarks/results/beam_engines.json.

What 2 cores can show: the fixed cost of a distributed engine (job submission through Beam's job server, SDK
worker start-up, shuffles written between stages) against the DirectRunner, and whether a second TaskManager
helps when both share the same two cores. It cannot show scaling across machines.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

from benchmarks.report import save  # noqa: E402
from pipeline.engines import cluster  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEAM_STEPS = ("ImportExampleGen", "UnlabelledExampleGen", "StatisticsGen", "Transform", "Evaluator", "BulkInferrer")
LINE = re.compile(r"^\d\d:\d\d:\d\d\s+(\w+)\s+(COMPLETE|CACHED|FAILED)\s+([\d.]+) s$")


def run_pipeline(engine: str, output_root: str) -> dict:
    """One run of the pipeline; the seconds of each component and of the whole run."""
    beam = ["--beam", "flink"] if engine.startswith("flink") else ["--beam", engine]
    command = [sys.executable, "-m", "pipeline.local_runner", "--output-root", output_root, "--train-steps", "20",
               "--min-map50", "0", "--seed", "0", *beam]
    started = time.perf_counter()
    ran = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if ran.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{ran.stdout[-2000:]}\n{ran.stderr[-2000:]}")
    steps = {m.group(1): float(m.group(3)) for m in map(LINE.match, ran.stdout.splitlines()) if m}
    return {"components": steps, "beam_steps_seconds": round(sum(steps[name] for name in BEAM_STEPS), 1),
            "run_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--engines", nargs="+", default=["direct", "flink-1", "flink-2"])
    args = parser.parse_args()
    runs = {engine: [] for engine in args.engines}
    for _ in range(args.rounds):
        for engine in args.engines:
            if engine.startswith("flink"):
                cluster.up("flink", workers=int(engine.split("-")[1]))
            try:
                with tempfile.TemporaryDirectory() as output_root:
                    runs[engine].append(run_pipeline(engine, output_root))
            finally:
                if engine.startswith("flink"):
                    cluster.down("flink")
            print(engine, runs[engine][-1]["beam_steps_seconds"], "s of Beam steps", flush=True)
    summary = {engine: {"beam_steps_seconds": [r["beam_steps_seconds"] for r in found],
                        "run_seconds": [r["run_seconds"] for r in found]} for engine, found in runs.items()}
    base = min(summary["direct"]["beam_steps_seconds"]) if "direct" in summary else None
    for row in summary.values():
        if base:
            row["beam_steps_vs_direct"] = round(min(row["beam_steps_seconds"]) / base, 2)
    save("beam_engines.json", {"command": "make bench-beam", "data": "default (960 train, 120 eval, 40 unlabelled)",
                               "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
