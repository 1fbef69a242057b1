"""A change measured before and after under the peers protocol: this checkout against an earlier commit.

    .venv/bin/python benchmarks/checkout_ab.py --base COMMIT [--model retinanet_resnetv2_50_fpn_512] [--rounds 2]

The base commit is checked out into a temporary git worktree (run with this checkout's Python); then, for
each round, precision and mode, benchmarks/peer_workers/tfdet_worker.py runs once from the base and once from
this checkout, alternating, each in a fresh process (inference seconds per image, median of 7; training
images per second, fit on a fixed batch of 2, 4 steps after a warm-up). Each side runs its own copy of the
worker (it imports the tfdet beside it), so the base must have benchmarks/peer_workers/tfdet_worker.py.
Writes benchmarks/results/checkout_ab_<model><tag>.json: every run, the medians over rounds and the speed-up
(after against before; > 1 is faster).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.peers import run_worker  # noqa: E402
from benchmarks.report import save  # noqa: E402


def worker_result(library_root: str, model: str, precision: str, mode: str) -> Dict:
    """One measurement by ``library_root``'s tfdet_worker (which imports that checkout's tfdet)."""
    worker = os.path.join(library_root, "benchmarks", "peer_workers", "tfdet_worker.py")
    return run_worker([sys.executable, worker, "--model", model, "--precision", precision, "--mode", mode,
                       "--repeats", "7" if mode == "infer" else "4"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--model", default="retinanet_resnetv2_50_fpn_512")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["mixed_bfloat16", "float32"])
    parser.add_argument("--modes", nargs="+", default=["train", "infer"])
    parser.add_argument("--tag", default="", help="suffix of the result file (keeps earlier comparisons)")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    base_dir = tempfile.mkdtemp(prefix="tfdet-base-")
    subprocess.run(["git", "worktree", "add", "--detach", base_dir, args.base], cwd=ROOT, check=True,
                   capture_output=True)
    sides = {"before": base_dir, "after": ROOT}
    runs: List[Dict] = []
    try:
        for round_index in range(args.rounds):
            for precision in args.precisions:
                for mode in args.modes:
                    for side, library_root in sides.items():
                        result = worker_result(library_root, args.model, precision, mode)
                        value = result.get("seconds_per_image", result.get("images_per_second"))
                        runs.append({"round": round_index, "precision": precision, "mode": mode, "side": side,
                                     "value": value, "error": result.get("error")})
                        print(f"round {round_index} {precision:15s} {mode:5s} {side:6s} {value}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", base_dir], cwd=ROOT, capture_output=True)
        shutil.rmtree(base_dir, ignore_errors=True)
    summary = {}
    for precision in args.precisions:
        for mode in args.modes:
            medians = {}
            for side in sides:
                values = [r["value"] for r in runs if (r["precision"], r["mode"], r["side"]) == (precision, mode, side)
                          and r["value"] is not None]
                medians[side] = round(statistics.median(values), 4) if values else None
            speedup = None
            if medians["before"] and medians["after"]:
                ratio = medians["after"] / medians["before"]
                speedup = round(1 / ratio if mode == "infer" else ratio, 3)
            summary[f"{precision} {mode}"] = dict(medians, speedup=speedup)
    out = {"command": " ".join(["benchmarks/checkout_ab.py"] + sys.argv[1:]), "before": args.base, "after": head,
           "model": args.model, "units": {"infer": "seconds per image", "train": "images per second"},
           "cores": os.cpu_count(), "summary": summary, "runs": runs}
    save(f"checkout_ab_{args.model}{args.tag}.json", out)


if __name__ == "__main__":
    main()
