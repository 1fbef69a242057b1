"""GroupNorm in the seed's detector: tfdet's inference path against tf_keras's, in one run.

    .venv/bin/python benchmarks/groupnorm_speed.py [--latency-runs 10]

The seed config's SavedModel latency (benchmarks/seed_speed.py's measure: ``serving_images``, batch 1,
a 512x512 JPEG, median of N calls) in float32 and mixed_bfloat16, once with
tfdet.models.layers.GroupNormalization as shipped and once with its call replaced by tf_keras's.
Writes benchmarks/results/groupnorm_speed.json.
"""

import argparse
import os

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

import tfdet  # noqa: E402
from benchmarks.groupnorm_ab import use_tf_keras_groupnorm  # noqa: E402
from benchmarks.report import save  # noqa: E402
from benchmarks.seed_speed import latency  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-runs", type=int, default=10)
    args = parser.parse_args()
    results = {}
    for precision in ("float32", "mixed_bfloat16"):
        for name, tf_keras_path in (("tf_keras GroupNorm", True), ("tfdet GroupNorm", False)):
            restore = use_tf_keras_groupnorm() if tf_keras_path else (lambda: None)
            changes = {"mixed_precision": precision} if precision != "float32" else {}
            model = tfdet.create_model("retinanet_resnetv2_50_fpn_512", **changes)
            results[f"{precision}, {name}"] = round(latency(model, args.latency_runs), 3)
            restore()
            print(f"{precision:15s} {name:19s} {results[f'{precision}, {name}']:.3f} s/image", flush=True)
    out = {"model": "retinanet_resnetv2_50_fpn_512 (seed config)", "measure": "SavedModel serving_images, "
           "batch 1, 512x512 JPEG, median seconds per image", "cores": os.cpu_count(), "results": results,
           "speedup": {p: round(results[f"{p}, tf_keras GroupNorm"] / results[f"{p}, tfdet GroupNorm"], 2)
                       for p in ("float32", "mixed_bfloat16")}}
    save("groupnorm_speed.json", out)


if __name__ == "__main__":
    main()
