"""The pipeline's data steps as the data grows: 1k, 10k and 100k examples, on the DirectRunner and on Flink.

    .venv/bin/python benchmarks/scale.py [--sizes 1000 10000 100000] [--engines direct flink]   # make bench-scale

The corpus comes from the default generator at small image sizes (64-96 px, so that 100k examples fit on disk):
pool shards of 1,000 examples (900 train, 100 eval) are drawn once into ``$TFDET_HOME/scale_corpus``, and the data
root of N examples links the first N / 1,000 of them. Each run is a fresh TFX pipeline of the data half of the DAG --
ImportExampleGen -> StatisticsGen -> ExampleValidator -> BoxGate -> Transform (pipeline.pipeline.data_components)
-- in a process of its own (``_run``), on:

* ``direct``: Beam's DirectRunner, one worker per core (the pipeline's default);
* ``flink``: a Flink cluster of 2 TaskManagers on this machine (``pipeline.engines.cluster up``, parallelism 2), and
  once more at parallelism 1 (``--efficiency-size`` examples) for the parallel efficiency.

Batch inference is measured alike on ``--bulk`` unlabelled images: UnlabelledExampleGen -> BulkInferrer (an untrained
``tiny`` detector exported by tfdet) -> BatchDetections.

Per component it records the seconds (the console's lines) and the peak resident memory of the orchestrator (the
runner's process), of any one Beam worker (DirectRunner worker processes, Flink's SDK workers) and of any one
TaskManager JVM, sampled every 0.5 s. The summary gives each component's fixed cost and seconds per 10k examples
(least squares over the sizes), the incremental cost per 10k at each step of the ladder, the memory ratios, Flink
against the DirectRunner, and a projection to 10M examples on 8 and 32 TaskManagers. Writes
benchmarks/results/scale.json and scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import Pool
from typing import Dict, List

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

from benchmarks.report import RESULTS, STARTED, save  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARD = 1000  # examples per pool shard pair: 900 train, 100 eval
IMAGE_SIZES = (64, 97)
DATA_STEPS = ("ImportExampleGen", "StatisticsGen", "BoxGate", "Transform")
BULK_STEPS = ("UnlabelledExampleGen", "BulkInferrer", "BatchDetections")


# ---- the corpus -------------------------------------------------------------------------------------------------

def _write_shard(job) -> None:
    """One pool shard: ``count`` examples of the default generator at small sizes (boxes left out when unlabelled)."""
    import io

    import numpy as np
    import tensorflow as tf

    from tfdet.dataio import features
    from tfdet.dataio.synthetic import CLASSES, synthesize_image

    path, count, seed, unlabelled = job
    rng = np.random.RandomState(seed)
    partial = path + ".partial"
    with tf.io.TFRecordWriter(partial) as writer:
        for index in range(count):
            image, boxes, labels = synthesize_image(rng, IMAGE_SIZES)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            height, width = image.height, image.width
            if unlabelled:
                boxes, labels = [], []
            normalised = [[b[0] / height, b[1] / width, b[2] / height, b[3] / width] for b in boxes]
            writer.write(features.make_example(
                encoded=buffer.getvalue(), image_format="jpeg", height=height, width=width,
                filename=f"{seed}-{index}.jpg", source_id=f"{seed}-{index}", boxes=normalised, label_ids=labels,
                label_names=[CLASSES[label] for label in labels]).SerializeToString())
    os.replace(partial, path)


def corpus(root: str, examples: int, unlabelled: int) -> Dict[str, str]:
    """The pool (drawn where missing) and a data root per ladder size: ``{size: data root}`` and ``"bulk"``."""
    pool = os.path.join(root, "pool")
    os.makedirs(pool, exist_ok=True)
    jobs = []
    for shard in range(examples // SHARD):
        for split, count, offset in (("train", SHARD * 9 // 10, 0), ("eval", SHARD // 10, 1)):
            jobs.append((os.path.join(pool, f"{split}-{shard:05d}.tfrecord"), count, 2 * shard + offset, False))
    for shard in range(unlabelled // SHARD):
        jobs.append((os.path.join(pool, f"unlabelled-{shard:05d}.tfrecord"), SHARD, 10**6 + shard, True))
    missing = [job for job in jobs if not os.path.exists(job[0])]
    if missing:
        print(f"drawing {len(missing)} pool shards of the corpus into {pool}", flush=True)
        with Pool(os.cpu_count()) as workers:
            workers.map(_write_shard, missing, chunksize=1)
    return pool


def data_root(root: str, pool: str, size: int, split_names=("train", "eval")) -> str:
    """``root/corpus-<size>/span-1/`` linking the first ``size`` / 1,000 pool shards of each split."""
    span = os.path.join(root, f"corpus-{size}", "span-1")
    os.makedirs(span, exist_ok=True)
    shards = max(1, size // SHARD)
    for split in split_names:
        for shard in range(shards):
            link = os.path.join(span, f"{split}-{shard:05d}-of-{shards:05d}.tfrecord")
            if not os.path.lexists(link):
                os.symlink(os.path.join(pool, f"{split}-{shard:05d}.tfrecord"), link)
    return os.path.dirname(span)


# ---- one run, in a process of its own ----------------------------------------------------------------------------

class Memory(threading.Thread):
    """Samples the resident memory of this process, its descendants and the cluster's processes every 0.5 s, and
    keeps the peaks per component (the console's current one)."""

    def __init__(self, progress) -> None:
        super().__init__(daemon=True)
        self.progress = progress
        self.peaks: Dict[str, Dict[str, float]] = {}
        self.stopped = threading.Event()

    def _cluster(self):
        import psutil

        from pipeline.engines import cluster

        state = cluster.read_state("flink") or {}
        found = []
        for name, entry in state.get("processes", {}).items():
            try:
                process = psutil.Process(entry["pid"])
                found.append(("taskmanager" if name.startswith("taskmanager") else name, process))
                found += [("worker", child) for child in process.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stopped.wait(0.5):
            component = self.progress.current
            if not component:
                continue
            kinds = [("orchestrator", me)]
            for child in me.children(recursive=True):
                kinds.append(("job_server" if "java" in child.name() else "worker", child))
            kinds += self._cluster()
            peaks = self.peaks.setdefault(component, {})
            for kind, process in kinds:
                try:
                    rss = process.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                if kind in ("jobmanager", "worker-pool"):
                    continue
                peaks[kind] = round(max(peaks.get(kind, 0.0), rss), 1)


def run_once(args: argparse.Namespace) -> None:
    """``_run``: one pipeline (the data steps, or batch inference with ``--bulk-model``); prints its JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from pipeline.operations.console import quiet_console

    progress = quiet_console(verbose=False)
    from tfx import v1 as tfx

    from pipeline import configs
    from pipeline.engines import beam
    from pipeline.pipeline import batch_inference, data_components

    config = configs.PipelineConfig(data_root=args.data_root, beam=args.engine, num_classes=5,
                                    **configs.output_layout(args.output_root), beam_args=list(args.beam_arg))
    config.beam_args += beam.runtime_args(config.beam, config.beam_pipeline_args())
    sys.path.insert(0, REPO)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    if args.bulk_model:
        model = tfx.dsl.Importer(source_uri=args.bulk_model, artifact_type=tfx.types.standard_artifacts.Model
                                 ).with_id("ModelImporter")
        blessing = tfx.dsl.Importer(source_uri=os.path.join(args.output_root, "blessing"),
                                    artifact_type=tfx.types.standard_artifacts.ModelBlessing,
                                    custom_properties={"blessed": 1}).with_id("BlessingImporter")
        components = [model, blessing, *batch_inference(config, model.outputs["result"],
                                                        blessing.outputs["result"])]
    else:
        components = list(data_components(config).values())
    pipeline = tfx.dsl.Pipeline(pipeline_name="scale", pipeline_root=config.pipeline_root, components=components,
                                enable_cache=False, beam_pipeline_args=config.beam_pipeline_args(),
                                metadata_connection_config=tfx.orchestration.metadata
                                .sqlite_metadata_connection_config(config.metadata_path))
    memory = Memory(progress)
    memory.start()
    started = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    memory.stopped.set()
    seconds = {}
    for line in progress.lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "COMPLETE":
            seconds[parts[1]] = float(parts[3])
    print("SCALE-RESULT " + json.dumps({"seconds": seconds, "peak_rss_mb": memory.peaks,
                                        "wall": round(time.perf_counter() - started, 1)}), flush=True)


RUNS_FILE = "scale_runs.json"  # each finished run, so that ``--resume`` goes on where a stopped ladder ended
RUN_TIMEOUT = 4 * 3600  # one run of the ladder; a hung engine fails instead of waiting for ever


def finished_runs() -> Dict[str, dict]:
    path = os.path.join(RESULTS, RUNS_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        runs = json.load(handle)
    runs.pop("measured", None)  # save()'s stamp of the file, not a run
    return runs


def measure(engine: str, root: str, output_root: str, extra: List[str] = (), bulk_model: str = "",
            key: str = "", resume: bool = False) -> dict:
    """One run of the data steps in a process of its own; with ``resume``, the result ``key`` recorded earlier."""
    done = finished_runs()
    if resume and key in done:
        print(f"{key}: the run recorded at {done[key]['commit']}", flush=True)
        return done[key]["result"]
    command = [sys.executable, os.path.abspath(__file__), "_run", "--engine", engine, "--data-root", root,
               "--output-root", output_root, *[f"--beam-arg={arg}" for arg in extra]]
    if bulk_model:
        command += ["--bulk-model", bulk_model]
    ran = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    found = [line for line in ran.stdout.splitlines() if line.startswith("SCALE-RESULT ")]
    if ran.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(command)} failed:\n{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}")
    result = json.loads(found[0][len("SCALE-RESULT "):])
    if key:
        done = finished_runs()
        done[key] = {"commit": STARTED["commit"], "uncommitted_changes": STARTED["uncommitted_changes"],
                     "result": result}
        save(RUNS_FILE, done, show=False)
    return result


def bulk_model(directory: str) -> str:
    """An untrained ``tiny`` detector exported by tfdet (what BulkInferrer runs; its cost, not its answers)."""
    import tfdet
    from tfdet.export.saved_model import export_saved_model

    path = os.path.join(directory, "model", "Format-Serving")
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        export_saved_model(tfdet.create_model("tiny", num_classes=5), path)
    return os.path.dirname(path)


# ---- the summary --------------------------------------------------------------------------------------------------

def fit(points: Dict[int, float]) -> Dict[str, float]:
    """Least squares of seconds = fixed + per_10k * examples / 10k over the sizes."""
    import numpy as np

    sizes = np.array(sorted(points), np.float64)
    seconds = np.array([points[size] for size in sorted(points)])
    slope, fixed = np.polyfit(sizes / 10_000, seconds, 1)
    return {"fixed_seconds": round(float(fixed), 1), "seconds_per_10k": round(float(slope), 1)}


def summarise(runs: Dict[str, Dict[int, dict]], sizes: List[int], steps=DATA_STEPS) -> dict:
    out = {}
    for engine, by_size in runs.items():
        rows = {}
        for step in steps:
            points = {size: by_size[size]["seconds"][step] for size in sizes if size in by_size}
            row = fit(points) if len(points) > 1 else {}
            ladder = sorted(points)
            increments = {f"{a}->{b}": round((points[b] - points[a]) / ((b - a) / 10_000), 1)
                          for a, b in zip(ladder, ladder[1:])}
            if len(increments) >= 2:
                first, last = list(increments.values())[0], list(increments.values())[-1]
                row["per_10k_last_over_first_step"] = round(last / first, 2) if first > 0 else None
            row["incremental_seconds_per_10k"] = increments
            row["seconds"] = {str(size): points[size] for size in ladder}
            memory = {str(size): by_size[size]["peak_rss_mb"].get(step, {}) for size in ladder}
            row["peak_rss_mb"] = memory
            if len(ladder) >= 2:
                small, large = memory[str(ladder[-2])], memory[str(ladder[-1])]
                row["rss_ratio_last_sizes"] = {kind: round(large[kind] / small[kind], 2)
                                               for kind in large if small.get(kind)}
            rows[step] = row
        out[engine] = rows
    return out


def project(summary: dict, efficiency: float, examples: int = 10_000_000) -> dict:
    """Wall time of the data steps on ``examples`` with 8 and 32 TaskManagers (one slot, one core each), from Flink's
    fixed cost and its per-10k cost at parallelism 2 here, scaled by the measured parallel efficiency."""
    flink = summary.get("flink", {})
    out = {}
    unmeasured = sorted(step for step, row in flink.items() if row.get("seconds_per_10k", 0) <= 0)
    if unmeasured:  # the fixed cost hid the per-example cost at these sizes: a projection would be noise
        out["not_projected"] = {"steps": unmeasured, "why": "no positive per-10k cost on Flink at the sizes run"}
    for workers in (8, 32):
        steps = {}
        for step, row in flink.items():
            if row.get("seconds_per_10k", 0) <= 0:
                continue
            serial = row["seconds_per_10k"] * 2 * efficiency  # one slot's seconds per 10k
            steps[step] = round(row["fixed_seconds"] + serial * examples / 10_000 / (workers * efficiency), 0)
        out[f"{workers}_taskmanagers"] = {"seconds": steps, "bound_by": max(steps, key=steps.get) if steps else None,
                                          "total_hours": round(sum(steps.values()) / 3600, 2)}
    return out


def plot(runs: Dict[str, Dict[int, dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine, style in (("direct", "-o"), ("flink", "--s")):
        for step in DATA_STEPS:
            points = sorted((size, run["seconds"][step]) for size, run in runs.get(engine, {}).items())
            if points:
                axes[0].plot(*zip(*points), style, label=f"{step} ({engine})")
                axes[1].plot([p[0] for p in points],
                             [runs[engine][p[0]]["peak_rss_mb"].get(step, {}).get("worker", 0) for p in points],
                             style, label=f"{step} ({engine})")
    for axis, label in zip(axes, ("seconds", "peak RSS of one Beam worker (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("examples")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle("tfdet's data steps as the data grows (2 cores; DirectRunner vs Flink, 2 TaskManagers)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--engines", nargs="+", default=["direct", "flink"])
    parser.add_argument("--flink-sizes", type=int, nargs="+", default=None,
                        help="Flink's own ladder, when it should stop short of --sizes (default: --sizes)")
    parser.add_argument("--bulk", type=int, default=10_000, help="unlabelled images for batch inference (0: none)")
    parser.add_argument("--efficiency-size", type=int, default=10_000,
                        help="the size Flink also runs at parallelism 1 (0: not measured)")
    parser.add_argument("--work", default="", help="where the corpus and the runs go (default: $TFDET_HOME)")
    parser.add_argument("--resume", action="store_true",
                        help=f"reuse the runs benchmarks/results/{RUNS_FILE} recorded (a ladder stopped part way)")
    args = parser.parse_args()
    from pipeline.engines import cluster
    from tfdet.files import cache_dir

    work = args.work or cache_dir("scale_corpus")
    ladders = {engine: (args.flink_sizes or args.sizes) if engine == "flink" else args.sizes
               for engine in args.engines}
    every_size = sorted({size for ladder in ladders.values() for size in ladder})
    pool = corpus(work, max(every_size), args.bulk)
    roots = {size: data_root(work, pool, size) for size in every_size}
    runs: Dict[str, Dict[int, dict]] = {}
    bulk: Dict[str, dict] = {}
    efficiency_runs = {}
    model = bulk_model(work) if args.bulk else ""
    for engine in args.engines:
        if engine == "flink":
            cluster.up("flink", workers=2)
        try:
            for size in ladders[engine]:
                with tempfile.TemporaryDirectory(dir=work) as out:
                    runs.setdefault(engine, {})[size] = measure(engine, roots[size], out, key=f"{engine}:{size}",
                                                                resume=args.resume)
                print(engine, size, runs[engine][size]["seconds"], flush=True)
            if engine == "flink" and args.efficiency_size:
                with tempfile.TemporaryDirectory(dir=work) as out:
                    efficiency_runs = measure(engine, roots[args.efficiency_size], out, ["--parallelism=1"],
                                              key=f"{engine}:{args.efficiency_size}:parallelism-1", resume=args.resume)
                print("flink parallelism 1", efficiency_runs["seconds"], flush=True)
            if args.bulk:
                unlabelled = data_root(work, pool, args.bulk, ("unlabelled",))
                with tempfile.TemporaryDirectory(dir=work) as out:
                    bulk[engine] = measure(engine, unlabelled, out, bulk_model=model, key=f"{engine}:bulk",
                                           resume=args.resume)
                print(engine, "bulk", bulk[engine]["seconds"], flush=True)
        finally:
            if engine == "flink":
                cluster.down("flink")
    summary = summarise(runs, every_size)
    result = {"command": "make bench-scale", "sizes": ladders, "image_sizes_px": list(IMAGE_SIZES),
              "summary": summary, "runs": {e: {str(k): v for k, v in r.items()} for e, r in runs.items()},
              "bulk_inference": {"images": args.bulk, "runs": bulk},
              "run_commits": {key: run["commit"] for key, run in finished_runs().items()}}
    if "direct" in runs and "flink" in runs:
        largest = max(set(runs["direct"]) & set(runs["flink"]))
        total = {engine: sum(runs[engine][largest]["seconds"][step] for step in DATA_STEPS) for engine in runs}
        result["flink_over_direct"] = {"examples": largest, "ratio": round(total["flink"] / total["direct"], 2),
                                       "per_step": {step: round(runs["flink"][largest]["seconds"][step] /
                                                                runs["direct"][largest]["seconds"][step], 2)
                                                    for step in DATA_STEPS}}
    if efficiency_runs:
        size = args.efficiency_size
        one = sum(efficiency_runs["seconds"][step] for step in DATA_STEPS)
        two = sum(runs["flink"][size]["seconds"][step] for step in DATA_STEPS)
        efficiency = round(one / (2 * two), 2)
        result["parallel_efficiency"] = {"size": size, "parallelism_1_seconds": round(one, 1),
                                         "parallelism_2_seconds": round(two, 1), "efficiency": efficiency,
                                         "per_step": {step: round(efficiency_runs["seconds"][step] /
                                                                  (2 * runs["flink"][size]["seconds"][step]), 2)
                                                      for step in DATA_STEPS}}
        result["projection_10M"] = project(summary, efficiency)
    plot(runs, os.path.join(RESULTS, "scale.png"))
    save("scale.json", result)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_run"]:
        once = argparse.ArgumentParser()
        once.add_argument("_run")
        once.add_argument("--engine", required=True)
        once.add_argument("--data-root", required=True)
        once.add_argument("--output-root", required=True)
        once.add_argument("--beam-arg", action="append", default=[])
        once.add_argument("--bulk-model", default="")
        run_once(once.parse_args())
    else:
        main()
