"""GroupNorm in the seed's detector: tfdet's inference path against tf_keras's, in one run.

    .venv/bin/python benchmarks/groupnorm_speed.py [--latency-runs 10]

The seed config's SavedModel latency (benchmarks/seed_speed.py's measure: ``serving_images``, batch 1,
a 512x512 JPEG, median of N calls) in float32 and mixed_bfloat16, once with
tfdet.models.layers.GroupNormalization as shipped and once with its call replaced by tf_keras's.
Writes benchmarks/results/groupnorm_speed.json.
"""

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore", message=".*non-supported Python version.*")

from benchmarks.groupnorm_ab import use_tf_keras_groupnorm  # noqa: E402
from benchmarks.report import save  # noqa: E402
from benchmarks.seed_speed import latency  # noqa: E402
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel  # noqa: E402
from tfdet.zoo import get_entry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-runs", type=int, default=10)
    args = parser.parse_args()
    base = get_entry("retinanet_resnetv2_50_fpn_512").MODEL
    results = {}
    for precision in ("float32", "mixed_bfloat16"):
        for name, tf_keras_path in (("tf_keras GroupNorm", True), ("tfdet GroupNorm", False)):
            restore = use_tf_keras_groupnorm() if tf_keras_path else (lambda: None)
            changes = {"mixed_precision": precision} if precision != "float32" else {}
            model = OneStageModel(ConfigOneStage(**base, **changes)).build_model()
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
