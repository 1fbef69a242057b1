"""Post-processing levers on the tree-crown fine-tunes: the same trained weights, other test settings.

    .venv/bin/python benchmarks/trees_postprocess.py            # after real_trees.py --runs pretrained --seeds 0,1,2

Restores each seed's last checkpoint of ``real_trees.py --runs pretrained`` (data/trees/runs/pretrained-seed*) and
scores the held-out scene with pycocotools under each setting of the head's ``test_cfg`` below and at larger inputs,
paired per seed (the weights are the same, so a difference is the setting's alone), and times detection of one
image (median of 7, after a warm-up). The settings are chosen on the held-out scene itself (9 tiles leave no
separate validation split), so a gain here says how much post-processing can move the figure, not that it will
move another scene's.
Writes benchmarks/results/real_trees_postprocess.json.
"""

import argparse
import os
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import numpy as np  # noqa: E402

import tfdet  # noqa: E402
from benchmarks.real_trees import held_out_figures, prepare, spread  # noqa: E402
from benchmarks.report import save  # noqa: E402
from tfdet.evaluation import collect_detections, eval_dataset  # noqa: E402
from tfdet.weights.detector import restore_detector  # noqa: E402

ENTRY = "retinanet_resnet50_fpn_cpu"
# each setting overrides the zoo entry's test_cfg; "zoo" is the entry as it ships
SETTINGS = {
    "zoo": {},
    "nms_pre 1000": {"nms_pre": 1000},
    "nms_pre 2000": {"nms_pre": 2000},
    "nms_pre 4000": {"nms_pre": 4000},
    "nms_pre 8000": {"nms_pre": 8000},
    "nms_pre 1000, box voting 0.7": {"nms_pre": 1000, "box_voting_iou": 0.7},
    "nms_pre 4000, box voting 0.7": {"nms_pre": 4000, "box_voting_iou": 0.7},
    "nms_pre 4000, no box voting": {"nms_pre": 4000, "box_voting_iou": None},
    "score_thr 0.01": {"score_thr": 0.01},
    # Gaussian Soft-NMS with the paper's sigma, the hard IoU cut off (1.0) so that only the decay acts
    "Soft-NMS sigma 0.5": {"nms": {"iou_threshold": 1.0, "soft_nms_sigma": 0.5}},
    "Soft-NMS sigma 0.5, no box voting": {"nms": {"iou_threshold": 1.0, "soft_nms_sigma": 0.5},
                                          "box_voting_iou": None},
    "Soft-NMS sigma 0.5, IoU cut 0.7": {"nms": {"iou_threshold": 0.7, "soft_nms_sigma": 0.5}},
}
METRICS = ("mAP@0.5", "mAP@0.4", "mAP@[.5:.95]")
# the zoo's settings at larger inputs than the 512x512 the weights trained at (crowns look bigger)
INPUT_SIZES = (576, 640, 768)


def seconds_per_image(model, image, overrides: dict, repeats: int = 7) -> float:
    """Median wall time of the detect function on one image."""
    detect = model.detect_function(**overrides)
    detect(image)  # traces
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detect(image)["num_detections"].numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def score(model, evaluation, label_map: dict, overrides: dict) -> tuple:
    """The held-out scene's figures of ``model`` (:func:`real_trees.held_out_figures`) and its seconds per image."""
    truth, found = collect_detections(model, evaluation, **overrides)
    figures = {k: v for k, v in held_out_figures(truth, found, label_map).items() if k in METRICS}
    return figures, seconds_per_image(model, next(iter(evaluation))["image"][:1], overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", default=os.path.join("data", "trees"))
    args = parser.parse_args()
    data = prepare(args.work)
    label_map, pattern = data["label_map"], f"{data['span']}/eval-*.tfrecord"
    names = list(SETTINGS) + [f"input {size}x{size}" for size in INPUT_SIZES]
    scores, timings = {name: [] for name in names}, {name: [] for name in names}
    for seed in (int(s) for s in args.seeds.split(",")):
        checkpoints = os.path.join(args.work, "runs", f"pretrained-seed{seed}", "checkpoints")
        if not os.path.isdir(checkpoints):
            raise SystemExit(f"{checkpoints} does not exist: train it first with "
                             f"`python benchmarks/real_trees.py --runs pretrained --seeds {seed}`")
        runs = [(name, {}, overrides) for name, overrides in SETTINGS.items()]
        runs += [(f"input {size}x{size}", {"backbone.input_size": (size, size)}, {}) for size in INPUT_SIZES]
        model, evaluation, built = None, None, None
        for name, model_overrides, overrides in runs:
            if built != model_overrides:  # the weights do not depend on the input size
                model = tfdet.create_model(ENTRY, num_classes=len(label_map), pretrained=False, **model_overrides)
                restore_detector(model, checkpoints)
                evaluation = eval_dataset(pattern, model.config.input_size, model.config.mean, model.config.std)
                built = model_overrides
            figures, seconds = score(model, evaluation, label_map, overrides)
            scores[name].append({"seed": seed, **figures})
            timings[name].append(seconds)
            print(seed, name, figures, f"{seconds:.3f} s/image", flush=True)
    summary = {}
    for name, figures in scores.items():
        summary[name] = {metric: spread([r[metric] for r in figures]) for metric in METRICS}
        summary[name]["gain_mAP@0.5_per_seed"] = [round(r["mAP@0.5"] - z["mAP@0.5"], 4)
                                                  for r, z in zip(figures, scores["zoo"])]
        summary[name]["seconds_per_image"] = round(float(np.median(timings[name])), 3)
    save("real_trees_postprocess.json", {"command": "python benchmarks/trees_postprocess.py --seeds " + args.seeds,
                                         "checkpoints": "real_trees.py --runs pretrained", "entry": ENTRY,
                                         "settings": SETTINGS, "input_sizes": INPUT_SIZES, "runs": scores,
                                         "summary": summary})


if __name__ == "__main__":
    main()
