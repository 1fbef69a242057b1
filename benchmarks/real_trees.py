"""Real data: tree crowns in NEON aerial photos, trained from ImageNet weights and from scratch.

    .venv/bin/python benchmarks/real_trees.py            # make bench-trees: tfdet and KerasHub, 3 seeds each
    .venv/bin/python benchmarks/real_trees.py --runs pretrained --seeds 0 --steps 300

Downloads the data (DeepForest's wheel, sha256-pinned; see benchmarks/trees_data.py) and the
ImageNet ResNet-50 (``keras:resnet50_imagenet``), tiles and converts the photos with tfdet's VOC
importer, trains each run once per seed with tfdet's training driver (the one ``tfdet train`` and the
pipeline run) on the training tiles and evaluates it on the held-out scene with pycocotools: mAP@0.5,
mAP at IoU 0.4 (the convention of tree-crown papers), COCO mAP@[.5:.95] and recall; the summary gives
each figure's mean and spread over the seeds. Writes benchmarks/results/real_trees.json and
real_trees.png (held-out tiles of the first seed's run: true boxes green, detections scoring >= 0.3 red).

Runs:
  pretrained        retinanet_resnet50_fpn_cpu: ImageNet ResNet-50, its zoo recipe
  pretrained_atss   atss_resnet50_fpn_cpu: the same backbone with the ATSS head
  scratch           the same detector without pretrained weights (BatchNorm trained, nothing frozen)
  scratch_cpu_small cpu_small, the project's from-scratch CPU detector (GroupNorm everywhere)
  kerashub          the peer: KerasHub 0.32's RetinaNet R50-FPN from the same ImageNet weights, its own recipe,
                    as many images (peer_workers/kerashub_finetune.py, in its own environment, see peers.py)
"""

import argparse
import json
import os
import shutil
import sys

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import RESULTS, save  # noqa: E402
from benchmarks.trees_data import fetch_wheel_data, make_voc_tiles  # noqa: E402
from tfdet.dataio.converter import convert_dataset_to_tfrecord  # noqa: E402
from tfdet.dataio.importers import load_voc_records  # noqa: E402
from tfdet.dataio.label_map import read_label_map  # noqa: E402
from tfdet.evaluation import average_precision, coco_metrics, collect_detections, eval_dataset  # noqa: E402
from tfdet.training.train import train_detector  # noqa: E402

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
    label_map = read_label_map(span)
    with open(os.path.join(work, "counts.json")) as handle:
        counts = json.load(handle)
    return {"span": span, "label_map": label_map, "counts": counts}


def held_out_figures(ground_truth: list, detections: list, label_map: dict) -> dict:
    """The held-out scene's figures by pycocotools: mAP@0.5, mAP at IoU 0.4, mAP@[.5:.95], recall and the classes
    that had ground truth."""
    coco = coco_metrics(ground_truth, detections, len(label_map), label_map)
    at_04 = average_precision(ground_truth, detections, len(label_map), 0.4, label_map)
    return {"mAP@0.5": round(coco["AP50"], 4), "mAP@0.4": round(at_04["AP"], 4), "mAP@[.5:.95]": round(coco["AP"], 4),
            "recall@0.4": round(at_04["recall"], 4), "AR100": round(coco["AR100"], 4),
            "classes_evaluated": sorted(coco["per_class_AP"])}


def run(name: str, data: dict, work: str, seed: int, steps: int = None, extra: dict = None,
        recipe_changes: dict = None, tag: str = "") -> dict:
    """One seeded fine-tune of ``name`` through tfdet's training driver, evaluated on the held-out scene."""
    entry_name, overrides = RUNS[name]
    overrides = {**overrides, **(extra or {})}
    pretrained = overrides.pop("pretrained", None)
    work_dir = os.path.join(work, "runs", f"{name}{tag}-seed{seed}")
    shutil.rmtree(work_dir, ignore_errors=True)  # a fresh run, not a resumed one
    result = train_detector(entry_name, f"{data['span']}/train-*.tfrecord", work_dir, class_names=data["label_map"],
                            steps=steps, pretrained=pretrained, overrides=overrides, recipe=recipe_changes,
                            seed=seed, export=False, verbose=2)
    model = result.pop("model")
    evaluation = eval_dataset(f"{data['span']}/eval-*.tfrecord", model.config.input_size, model.config.mean,
                              model.config.std)
    label_map = data["label_map"]
    ground_truth, detections = collect_detections(model, evaluation)
    return {
        "model": entry_name, "overrides": overrides, "seed": seed, "initialisation": result["initialisation"],
        "steps": result["steps"], "batch_size": result["batch_size"], "train_seconds": result["seconds"],
        "train_images_per_second": round(result["steps"] * result["batch_size"] / result["seconds"], 2),
        **held_out_figures(ground_truth, detections, label_map),
        "loss_per_epoch": [round(v, 4) for v in result["history"]["loss"]],
        "params": model.count_params(), "_predictions": (ground_truth, detections),
    }


def peer_data(data: dict, work: str) -> str:
    """What KerasHub's worker reads: the converted train and eval records as PNG files with pixel boxes (eval in the
    order of tfdet's evaluation), and the backbone weights tfdet loads, as plain arrays."""
    import tensorflow as tf
    from safetensors.numpy import load_file

    from tfdet.dataio.record_files import read_records
    from tfdet.evaluation.saved_model import ground_truth
    from tfdet.weights import fetch_named

    folder = os.path.join(work, "peer_data")
    os.makedirs(folder, exist_ok=True)
    splits = {}
    for split in ("train", "eval"):
        records = read_records(f"{data['span']}/{split}-*.tfrecord")
        images = []
        for truth, raw in zip(ground_truth(records), records):
            path = os.path.join(folder, f"{split}-{truth['image_id']:04d}.png")
            encoded = tf.train.Example.FromString(raw).features.feature["image/encoded"].bytes_list.value[0]
            tf.io.write_file(path, tf.io.encode_png(tf.io.decode_image(encoded, channels=3)))
            images.append({"path": path, "height": truth["height"], "width": truth["width"],
                           "boxes": [[float(v) for v in box] for box in truth["boxes"]],
                           "labels": [int(v) for v in truth["labels"]]})
        splits[split] = images
    with open(os.path.join(folder, "data.json"), "w") as handle:
        json.dump({**splits, "num_classes": len(data["label_map"])}, handle)
    np.savez(os.path.join(folder, "resnet50.npz"), **load_file(fetch_named("resnet50_imagenet")))
    return folder


def backbone_agreement(features_file: str) -> float:
    """Largest relative difference between KerasHub's loaded backbone and tfdet's (C2-C5 on the worker's input)."""
    import tensorflow as tf


    model = tfdet.create_model("retinanet_resnet50_fpn_cpu", num_classes=1, mixed_precision=None,
                               **{"backbone.input_size": (256, 256)})
    probe = np.random.RandomState(0).uniform(0, 255, (1, 256, 256, 3)).astype("float32")
    mean, std = np.array(model.config.mean, "float32"), np.array(model.config.std, "float32")
    ours = model.backbone(tf.constant((probe / 255.0 - mean) / std), return_features=True)
    with np.load(features_file, allow_pickle=False) as theirs:
        return max(float(np.abs(np.asarray(a, np.float32) - theirs[f"C{level}"]).max()
                         / np.abs(theirs[f"C{level}"]).max()) for a, level in zip(ours, (2, 3, 4, 5)))


def run_kerashub(data: dict, work: str, seed: int, steps: int = None) -> dict:
    """KerasHub's RetinaNet fine-tuned in its own environment (peer_workers/kerashub_finetune.py) for as many images
    as tfdet's recipe sees, evaluated here by the same pycocotools code."""
    import subprocess

    from benchmarks.peers import KERASHUB, peer_environment, peer_python
    from tfdet.dataio.record_files import read_records
    from tfdet.evaluation.saved_model import ground_truth
    from tfdet.zoo import train_recipe

    recipe = train_recipe(RUNS["pretrained"][0])
    steps, batch = steps or int(recipe["steps"]), int(recipe["batch_size"])
    out = os.path.join(work, "runs", f"kerashub-seed{seed}")
    shutil.rmtree(out, ignore_errors=True)
    command = [peer_python(KERASHUB), os.path.join(os.path.dirname(__file__), "peer_workers", "kerashub_finetune.py"),
               "--data", peer_data(data, work), "--out", out, "--steps", str(steps), "--batch-size", str(batch),
               "--seed", str(seed)]
    completed = subprocess.run(command, capture_output=True, text=True, env=peer_environment())
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": completed.stderr[-2000:]}
    if "error" in result:
        raise RuntimeError(f"the KerasHub worker failed: {result['error']}\n{result.get('traceback', '')}")
    with open(os.path.join(out, "detections.json")) as handle:
        detections = json.load(handle)
    truth = ground_truth(read_records(f"{data['span']}/eval-*.tfrecord"))
    label_map = data["label_map"]
    return {
        "model": result["system"], "seed": seed, "initialisation": "keras:resnet50_imagenet (the same arrays)",
        "backbone_max_relative_difference_to_tfdet": round(backbone_agreement(os.path.join(out, "features.npz")), 7),
        "steps": steps, "batch_size": batch, "train_seconds": result["train_seconds"],
        "train_images_per_second": round(steps * batch / result["train_seconds"], 2),
        **held_out_figures(truth, detections, label_map), "loss_per_epoch": result["loss_per_epoch"],
        "params": result["params"], "versions": result["versions"], "head_init": result.get("head_init"),
        "_predictions": (truth, detections),
    }


def spread(values) -> dict:
    """Mean and sample standard deviation of the seeds' values."""
    values = np.asarray(values, np.float64)
    return {"mean": round(float(values.mean()), 4),
            "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0, "values": values.tolist()}


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
    parser.add_argument("--runs", default="pretrained,kerashub", help=f"of {sorted(RUNS) + ['kerashub']}")
    parser.add_argument("--seeds", default="0,1,2", help="one training run per seed; figures are mean and spread")
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
    seeds = [int(seed) for seed in args.seeds.split(",")]
    data = prepare(args.work)
    results = {"command": "python benchmarks/real_trees.py " + " ".join(sys.argv[1:]),
               "data": {"source": "deepforest==2.1.0 wheel (PyPI), deepforest/data", **data["counts"],
                        "classes": data["label_map"]}, "runs": {}, "summary": {}}
    for name in args.runs.split(","):
        runs = []
        for seed in seeds:
            result = (run_kerashub(data, args.work, seed, args.steps) if name == "kerashub"
                      else run(name, data, args.work, seed, args.steps, extra, recipe_changes, args.tag))
            ground_truth, detections = result.pop("_predictions")
            runs.append(result)
            if name == "pretrained" and seed == seeds[0]:
                draw(ground_truth, detections, data["label_map"], os.path.join(args.work, "voc"),
                     os.path.join(RESULTS, f"real_trees{args.tag}.png"))
            print(json.dumps({name: {k: v for k, v in result.items() if k != "loss_per_epoch"}}), flush=True)
        results["runs"][name] = runs
        results["summary"][name] = {metric: spread([r[metric] for r in runs])
                                    for metric in ("mAP@0.5", "mAP@0.4", "mAP@[.5:.95]", "train_seconds")}
    default = args.runs == parser.get_default("runs") and not (extra or recipe_changes or args.steps or args.tag)
    save(f"real_trees{'' if default else '_' + args.runs.replace(',', '_') + args.tag}.json", results)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
