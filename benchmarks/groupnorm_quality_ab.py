"""Seeded, paired A/B of GroupNorm's training gradient on detection quality.

    .venv/bin/python benchmarks/groupnorm_quality_ab.py [--seeds 1 2 3] [--config cpu_small] [--epochs 6]

For each seed, trains ``--config`` twice with benchmarks/train_default.py (same seed: same initial
weights, data order and augmentation draws, deterministic kernels), once with tfdet's written-out GroupNorm gradient and
once through tf_keras's GroupNormalization in training, alternating which side goes first. Writes
benchmarks/results/groupnorm_gradient_quality_ab_seeded.json after every pair: each run's mAP@0.5,
mAP@[.5:.95] and training time, the per-seed differences (tfdet - tf_keras), their mean, standard
deviation and a 95% interval of the mean difference (Student's t).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

import scipy.stats  # noqa: E402

from benchmarks.report import save  # noqa: E402


def train(config: str, epochs: int, precision: str, side: str, seed: int) -> Dict[str, float]:
    """One training run in its own process; returns its mAPs and time."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "result.json")
        subprocess.run([sys.executable, os.path.join(HERE, "train_default.py"), "--config", config, "--epochs",
                        str(epochs), "--mixed-precision", precision, "--groupnorm-training", side, "--seed", str(seed),
                        "--result", path], check=True, stdout=subprocess.DEVNULL)
        with open(path) as handle:
            result = json.load(handle)
    return {"seed": seed, "mAP@0.5": result["mAP@0.5"], "mAP@[.5:.95]": result["mAP@[.5:.95]"],
            "train_seconds": result["train_seconds"]}


def paired(runs: Dict[str, List[dict]], key: str) -> Dict[str, object]:
    """Per-seed differences tfdet - tf_keras of ``key`` with their mean, spread and 95% interval."""
    differences = [round(a[key] - b[key], 4) for a, b in zip(runs["tfdet"], runs["tf_keras"])]
    summary: Dict[str, object] = {"differences": differences, "mean_difference": round(statistics.mean(differences), 4)}
    if len(differences) > 1:
        spread = statistics.stdev(differences)
        half = scipy.stats.t.ppf(0.975, len(differences) - 1) * spread / len(differences) ** 0.5
        summary.update(stdev=round(spread, 4), interval95=[round(summary["mean_difference"] - half, 4),
                                                            round(summary["mean_difference"] + half, 4)])
    for side in runs:
        summary[f"mean_{side}"] = round(statistics.mean(r[key] for r in runs[side]), 4)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--config", default="cpu_small")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--mixed-precision", default="mixed_bfloat16")
    args = parser.parse_args()
    runs: Dict[str, List[dict]] = {"tfdet": [], "tf_keras": []}
    for index, seed in enumerate(args.seeds):
        order = ("tfdet", "tf_keras") if index % 2 == 0 else ("tf_keras", "tfdet")
        for side in order:
            runs[side].append(train(args.config, args.epochs, args.mixed_precision, side, seed))
            print(side, runs[side][-1], flush=True)
        result = {
            "command": f"benchmarks/groupnorm_quality_ab.py --seeds {' '.join(map(str, args.seeds))} "
                       f"--config {args.config} --epochs {args.epochs} --mixed-precision {args.mixed_precision}",
            "sides": {"tfdet": "tfdet's written-out GroupNorm gradient (shipped)",
                      "tf_keras": "tf_keras's GroupNormalization in training (the code before it)"},
            "runs": runs,
            "mAP@0.5": paired(runs, "mAP@0.5"),
            "mAP@[.5:.95]": paired(runs, "mAP@[.5:.95]"),
            "train_seconds": paired(runs, "train_seconds"),
        }
        save("groupnorm_gradient_quality_ab_seeded.json", result, show=False)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
