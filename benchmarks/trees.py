"""Tree crowns in NEON aerial photos, under a protocol that keeps the test scene out of every choice.

    .venv/bin/python benchmarks/trees.py                    # make bench-trees: every stage, resumable
    .venv/bin/python benchmarks/trees.py --stages levers    # one stage

The photos (DeepForest's wheel, sha256-pinned) are tiled into folds (benchmarks/trees_data.py): a test scene, a
validation region of the largest other scene, the rest for training. Every choice is made on validation:

1. ``levers`` (the main fold): tfdet's entry (``retinanet_resnet50_fpn_cpu``, ImageNet ResNet-50) trained as it
   ships and with each lever not yet tried -- zoom-out (multi-scale) training, anchors fitted to the crowns' sizes
   at the training resolution, a longer schedule within the 20-minute budget -- one seed each, each scored on
   validation under every test-time setting of :data:`TEST_SETTINGS`; the best (recipe, setting) on validation
   wins.
2. ``final``: the winning recipe with seeds 0, 1, 2; the test-time setting chosen again on validation (mean of the
   seeds); then the test scene, scored once.
3. ``kerashub``: the peer, KerasHub 0.32's RetinaNet R50-FPN from the same ImageNet arrays with its own recipe and
   as many images (peer_workers/kerashub_finetune.py, in its own environment), 3 seeds on the main fold, its NMS IoU
   chosen on validation alike, the test scene scored once.
4. ``folds``: the leave-one-scene-out rotation (the other Yellowstone crop, OSBS_029 as test scenes), the winning
   recipe, 3 seeds each, each fold's setting chosen on its own validation: mean and spread over folds x seeds.

Figures by pycocotools: mAP@0.5 (what is chosen on), mAP at IoU 0.4 (tree-crown papers' convention), mAP@[.5:.95],
recall. State goes to benchmarks/results/real_trees_protocol.json after every run (a rerun skips what is done);
real_trees.png draws held-out tiles of the chosen model (true boxes green, detections scoring >= 0.3 red).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import RESULTS, save  # noqa: E402
from benchmarks.trees_data import TEST_SCENES, fetch_wheel_data, make_voc_tiles  # noqa: E402
from tfdet.dataio.converter import convert_dataset_to_tfrecord  # noqa: E402
from tfdet.dataio.importers import load_voc_records  # noqa: E402
from tfdet.dataio.label_map import read_label_map  # noqa: E402
from tfdet.evaluation import average_precision, coco_metrics, collect_detections, eval_dataset  # noqa: E402
from tfdet.training.train import train_detector  # noqa: E402

ENTRY = "retinanet_resnet50_fpn_cpu"
STATE = os.path.join(RESULTS, "real_trees_protocol.json")
SEEDS = (0, 1, 2)
# the recipe levers (``overrides`` of the model config, ``recipe`` changes, ``pipeline`` options); "anchors" is
# filled from the training crowns by fitted_anchors
LEVERS = {"zoo": {}, "zoom_out": {"pipeline": {"zoom_out": (0.5, 1.0)}}, "fitted_anchors": {"anchors": True},
          "longer": {"steps": 800}}
# test-time settings of the head's test_cfg, chosen on validation ("zoo": as the entry ships)
TEST_SETTINGS = {"zoo": {}, "nms_pre 1000": {"nms_pre": 1000}, "no box voting": {"box_voting_iou": None},
                 "NMS IoU 0.4": {"nms": {"iou_threshold": 0.4}}, "NMS IoU 0.6": {"nms": {"iou_threshold": 0.6}}}
KERASHUB_SETTINGS = ("0.4", "0.5", "0.6")  # its NMS IoU (peer_workers/kerashub_finetune.py: NMS_IOUS)
METRIC = "mAP@0.5"


def prepare(work: str, fold: int) -> dict:
    """Tiles and converts the photos of ``fold`` once; returns its record patterns, counts and label map."""
    root = os.path.join(work, f"fold-{fold}")
    span = os.path.join(root, "span-1")
    if not os.path.exists(os.path.join(span, "test-report.json")):
        voc = os.path.join(root, "voc")
        counts = make_voc_tiles(fetch_wheel_data(os.path.join(work, "download")), voc, TEST_SCENES[fold])
        records, label_map, _ = load_voc_records(voc, "train")
        convert_dataset_to_tfrecord(records, 4, span, prefix="train", label_map=label_map, show_progress=False)
        for split in ("val", "test"):
            records, _, _ = load_voc_records(voc, split, list(label_map.values()))
            convert_dataset_to_tfrecord(records, 1, span, prefix=split, label_map=label_map, show_progress=False)
        with open(os.path.join(root, "counts.json"), "w") as handle:
            json.dump(counts, handle)
    with open(os.path.join(root, "counts.json")) as handle:
        counts = json.load(handle)
    return {"root": root, "span": span, "label_map": read_label_map(span), "counts": counts}


def figures(ground_truth: list, detections: list, label_map: dict) -> dict:
    """mAP@0.5, mAP at IoU 0.4, mAP@[.5:.95] and recall by pycocotools."""
    coco = coco_metrics(ground_truth, detections, len(label_map), label_map)
    at_04 = average_precision(ground_truth, detections, len(label_map), 0.4, label_map)
    return {"mAP@0.5": round(coco["AP50"], 4), "mAP@0.4": round(at_04["AP"], 4), "mAP@[.5:.95]": round(coco["AP"], 4),
            "recall@0.4": round(at_04["recall"], 4), "classes_evaluated": sorted(coco["per_class_AP"])}


def fitted_anchors(data: dict, size: int = 512) -> dict:
    """The anchor scale and ratios that cover the training crowns at the network's input size best: the octave base
    scale minimising the mean log-distance of each crown's size to its nearest anchor size (P3-P6, 3 scales an
    octave), and the aspect ratios at the crowns' 10th, 50th and 90th percentiles of height / width."""
    from tfdet.dataio.tfrecord_files import read_records
    from tfdet.evaluation.saved_model import ground_truth

    sizes, aspects = [], []
    for image in ground_truth(read_records(f"{data['span']}/train-*.tfrecord")):
        scale = size / max(image["height"], image["width"])
        for ymin, xmin, ymax, xmax in image["boxes"]:
            height, width = (ymax - ymin) * scale, (xmax - xmin) * scale
            sizes.append(np.sqrt(height * width))
            aspects.append(height / width)

    def cost(base: float) -> float:
        anchors = np.array([stride * base * 2 ** (i / 3) for stride in (8, 16, 32, 64) for i in range(3)])
        return float(np.mean(np.min(np.abs(np.log(np.asarray(sizes)[:, None] / anchors[None])), axis=1)))

    base = min(np.arange(1.5, 4.51, 0.25), key=cost)
    ratios = [round(float(r), 2) for r in np.percentile(aspects, (10, 50, 90))]
    return {"head.anchor_config.octave_base_scale": float(base), "head.anchor_config.ratios": ratios,
            "_fit": {"crowns": len(sizes), "median_size_px": round(float(np.median(sizes)), 1),
                     "mean_log_distance": round(cost(base), 3), "zoo_mean_log_distance": round(cost(4.0), 3)}}


def lever_config(work: str, lever: str, data: dict) -> tuple:
    """(config to train: the entry or a config file, model overrides, steps) of ``lever``."""
    spec = LEVERS[lever]
    overrides = fitted_anchors(data) if spec.get("anchors") else {}
    config = ENTRY
    if spec.get("pipeline"):  # a config file naming the entry and only its own input pipeline
        config = os.path.join(work, f"{ENTRY}_{lever}.py")
        with open(config, "w") as handle:
            handle.write(f"from tfdet.zoo._parts import letterbox_crop_flip\nfrom tfdet.zoo.{ENTRY} import MEAN, SIZE, "
                         f"STD\n\nBASE = {ENTRY!r}\n\n\ndef train_steps(pattern, size=SIZE):\n    return "
                         f"letterbox_crop_flip(pattern, size, MEAN, STD, vertical_flip=True, "
                         f"**{spec['pipeline']!r})\n")
    return config, overrides, spec.get("steps")


def evaluate(model, data: dict, split: str, settings: dict) -> dict:
    """Each test-time setting's figures on ``split`` (and the detections, for the drawing)."""
    dataset = eval_dataset(f"{data['span']}/{split}-*.tfrecord", model.config.input_size, model.config.mean,
                           model.config.std)
    out = {}
    for name, overrides in settings.items():
        truth, found = collect_detections(model, dataset, **overrides)
        out[name] = {**figures(truth, found, data["label_map"]), "_predictions": (truth, found)}
    return out


def train(work: str, data: dict, fold: int, lever: str, seed: int, splits=("val",)) -> dict:
    """One seeded fine-tune through tfdet's training driver, scored on ``splits`` under every test setting."""
    config, overrides, steps = lever_config(work, lever, data)
    work_dir = run_folder(work, fold, lever, seed)
    shutil.rmtree(work_dir, ignore_errors=True)  # a fresh run, not a resumed one
    result = train_detector(config, f"{data['span']}/train-*.tfrecord", work_dir, class_names=data["label_map"],
                            steps=steps, overrides={k: v for k, v in overrides.items() if not k.startswith("_")},
                            seed=seed, export=False, verbose=2)
    model = result.pop("model")
    run = {"fold": fold, "lever": lever, "seed": seed, "steps": result["steps"], "train_seconds": result["seconds"],
           "overrides": overrides, "loss_per_epoch": [round(v, 4) for v in result["history"]["loss"]]}
    for split in splits:
        run[split] = evaluate(model, data, split, TEST_SETTINGS)
    return run


def run_key(fold: int, lever: str, seed: int) -> str:
    """A run's name in the state file and its folder's under ``work/runs``."""
    return f"fold{fold}-{lever}-seed{seed}"


def run_folder(work: str, fold: int, lever: str, seed: int) -> str:
    """Where a run keeps what its test scoring reads: tfdet's work dir, or KerasHub's detections."""
    return os.path.join(work, "runs", run_key(fold, lever, seed))


def score_test(work: str, data: dict, run: dict, setting: str) -> dict:
    """The test scene, scored once, under the setting chosen on validation (the run's weights restored)."""
    from tfdet.training.work_dir import load_trained_detector

    model = load_trained_detector(run_folder(work, run["fold"], run["lever"], run["seed"]))
    return evaluate(model, data, "test", {setting: TEST_SETTINGS[setting]})[setting]


def kerashub(work: str, data: dict, seed: int) -> dict:
    """KerasHub's fine-tune in its own environment, its detections on val and test under each NMS IoU."""
    from benchmarks.peers import KERASHUB, peer_environment, peer_python
    from tfdet.dataio.tfrecord_files import read_records
    from tfdet.evaluation.saved_model import ground_truth
    from tfdet.zoo import train_recipe

    recipe = train_recipe(ENTRY)
    out = run_folder(work, 0, "kerashub", seed)
    shutil.rmtree(out, ignore_errors=True)
    command = [peer_python(KERASHUB), os.path.join(os.path.dirname(__file__), "peer_workers", "kerashub_finetune.py"),
               "--data", peer_data(data, work), "--out", out, "--steps", str(recipe["steps"]), "--batch-size",
               str(recipe["batch_size"]), "--seed", str(seed)]
    completed = subprocess.run(command, capture_output=True, text=True, env=peer_environment())
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": completed.stderr[-2000:]}
    if "error" in result:
        raise RuntimeError(f"the KerasHub worker failed: {result['error']}\n{result.get('traceback', '')}")
    run = {"fold": 0, "lever": "kerashub", "seed": seed, "steps": recipe["steps"], "out": out,
           "train_seconds": result["train_seconds"], "system": result["system"], "versions": result["versions"],
           "backbone_max_relative_difference_to_tfdet": backbone_agreement(os.path.join(out, "features.npz"))}
    truth = ground_truth(read_records(f"{data['span']}/val-*.tfrecord"))
    run["val"] = {iou: figures(truth, json.load(open(os.path.join(out, f"detections_val_iou{iou}.json"))),
                               data["label_map"]) for iou in KERASHUB_SETTINGS}
    return run


def backbone_agreement(features_file: str) -> float:
    """Largest relative difference between KerasHub's loaded backbone and tfdet's (C2-C5 on the worker's probe):
    both start from the same ImageNet arrays."""
    import tensorflow as tf

    model = tfdet.create_model(ENTRY, num_classes=1, mixed_precision=None, **{"backbone.input_size": (256, 256)})
    probe = np.random.RandomState(0).uniform(0, 255, (1, 256, 256, 3)).astype("float32")
    mean, std = np.array(model.config.mean, "float32"), np.array(model.config.std, "float32")
    ours = model.backbone(tf.constant((probe / 255.0 - mean) / std), return_features=True)
    with np.load(features_file, allow_pickle=False) as theirs:
        return round(max(float(np.abs(np.asarray(a, np.float32) - theirs[f"C{level}"]).max()
                               / np.abs(theirs[f"C{level}"]).max()) for a, level in zip(ours, (2, 3, 4, 5))), 7)


def kerashub_test(data: dict, run: dict, iou: str) -> dict:
    """KerasHub's test detections, scored once, under the NMS IoU validation chose."""
    from tfdet.dataio.tfrecord_files import read_records
    from tfdet.evaluation.saved_model import ground_truth

    truth = ground_truth(read_records(f"{data['span']}/test-*.tfrecord"))
    with open(os.path.join(run["out"], f"detections_test_iou{iou}.json")) as handle:
        return figures(truth, json.load(handle), data["label_map"])


def peer_data(data: dict, work: str) -> str:
    """What KerasHub's worker reads: the fold's records as PNG files with pixel boxes (val and test in the order of
    tfdet's evaluation), and the backbone arrays tfdet loads."""
    import tensorflow as tf
    from safetensors.numpy import load_file

    from tfdet.dataio.tfrecord_files import read_records
    from tfdet.evaluation.saved_model import ground_truth
    from tfdet.weights import fetch_named

    folder = os.path.join(data["root"], "peer_data")
    os.makedirs(folder, exist_ok=True)
    splits = {}
    for split in ("train", "val", "test"):
        records = read_records(f"{data['span']}/{split}-*.tfrecord")
        splits[split] = []
        for truth, raw in zip(ground_truth(records), records):
            path = os.path.join(folder, f"{split}-{truth['image_id']:04d}.png")
            encoded = tf.train.Example.FromString(raw).features.feature["image/encoded"].bytes_list.value[0]
            tf.io.write_file(path, tf.io.encode_png(tf.io.decode_image(encoded, channels=3)))
            splits[split].append({"path": path, "height": truth["height"], "width": truth["width"],
                                  "boxes": [[float(v) for v in box] for box in truth["boxes"]],
                                  "labels": [int(v) for v in truth["labels"]]})
    with open(os.path.join(folder, "data.json"), "w") as handle:
        json.dump({**splits, "num_classes": len(data["label_map"])}, handle)
    np.savez(os.path.join(folder, "resnet50.npz"), **load_file(fetch_named("resnet50_imagenet")))
    return folder


def spread(values) -> dict:
    values = np.asarray(values, np.float64)
    return {"mean": round(float(values.mean()), 4),
            "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0, "values": values.tolist()}


def choose(runs: list, split: str = "val") -> str:
    """The test-time setting with the best mean ``METRIC`` on ``split`` over ``runs`` (ties: the first listed)."""
    settings = list(runs[0][split])
    return max(settings, key=lambda name: (np.mean([r[split][name][METRIC] for r in runs]), -settings.index(name)))


def draw(truth, found, data: dict, path: str, tiles=(0, 2, 4, 6)) -> None:
    records, _, _ = load_voc_records(os.path.join(data["root"], "voc"), "test", list(data["label_map"].values()))
    panels = []
    for index in [t for t in tiles if t < len(records)]:
        image = Image.open(records[index]["image_path"]).convert("RGB")
        canvas = ImageDraw.Draw(image)
        for ymin, xmin, ymax, xmax in truth[index]["boxes"]:
            canvas.rectangle([xmin, ymin, xmax, ymax], outline=(40, 255, 40), width=2)
        for (ymin, xmin, ymax, xmax), score in zip(found[index]["boxes"], found[index]["scores"]):
            if score >= 0.3:
                canvas.rectangle([xmin, ymin, xmax, ymax], outline=(255, 40, 40), width=2)
        panels.append(image.resize((400, 400)))
    strip = Image.new("RGB", (410 * len(panels) - 10, 400), (255, 255, 255))
    for i, panel in enumerate(panels):
        strip.paste(panel, (i * 410, 0))
    strip.save(path)


def clean(value):
    """``value`` without the raw detections it carries (kept in memory for the drawing, not in the state file)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if k != "_predictions"}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default="levers,final,kerashub,folds")
    parser.add_argument("--work", default=os.path.join("data", "trees"))
    args = parser.parse_args()
    state = json.load(open(STATE)) if os.path.exists(STATE) else {"runs": {}}
    state.setdefault("command", "make bench-trees (python benchmarks/trees.py)")

    def save_state() -> None:
        save(os.path.basename(STATE), state, show=False)

    def record(key: str, run: dict) -> None:
        state["runs"][key] = clean(run)
        save_state()
        print(json.dumps({key: {s: {n: f.get(METRIC) for n, f in run[s].items()} for s in ("val",) if s in run}}),
              flush=True)

    folds = {fold: prepare(args.work, fold) for fold in range(len(TEST_SCENES))}
    state["folds"] = {fold: data["counts"] for fold, data in folds.items()}
    stages = args.stages.split(",")
    if "levers" in stages:
        for lever in LEVERS:
            if run_key(0, lever, 0) not in state["runs"]:
                record(run_key(0, lever, 0), train(args.work, folds[0], 0, lever, 0))
        scored = {lever: max(state["runs"][run_key(0, lever, 0)]["val"].items(), key=lambda kv: kv[1][METRIC])
                  for lever in LEVERS}
        state["chosen_lever"] = max(scored, key=lambda lever: scored[lever][1][METRIC])
        state["levers_on_val"] = {lever: {"best_setting": name, METRIC: figures_[METRIC]}
                                  for lever, (name, figures_) in scored.items()}
    lever = state.get("chosen_lever")

    def run_seeds(keys: list, fresh) -> list:
        """Each seed's run: from the state, or trained when missing or when this machine lacks its outputs and its
        test scene is still unscored (a seed's training is deterministic, so its validation figures come back)."""
        for key, seed in zip(keys, SEEDS):
            run = state["runs"].get(key)
            if run is None or ("test_scored" not in run and not os.path.exists(
                    run_folder(args.work, run["fold"], run["lever"], run["seed"]))):
                record(key, fresh(seed))
        return [state["runs"][key] for key in keys]

    def score_once(summary: str, keys: list, setting: str, scorer, extra: dict) -> None:
        """Each run's test scene, once, under the setting validation chose (``scorer(run)``), then ``extra`` and
        the spread over the runs saved as ``state[summary]`` at once, so that a stop before the next stage loses
        nothing."""
        for key in keys:
            run = state["runs"][key]
            if run.get("test_setting") != setting:
                record(key, {**run, "test_setting": setting, "test_scored": scorer(run)})
        state[summary] = {**extra, **{m: spread([state["runs"][k]["test_scored"][m] for k in keys])
                                      for m in ("mAP@0.5", "mAP@0.4", "mAP@[.5:.95]")}}
        save_state()

    def final_fold(fold: int) -> None:
        keys = [run_key(fold, lever, seed) for seed in SEEDS]
        setting = choose(run_seeds(keys, lambda seed: train(args.work, folds[fold], fold, lever, seed)))

        def scorer(run: dict) -> dict:
            scored = score_test(args.work, folds[fold], run, setting)
            if fold == 0 and run["seed"] == SEEDS[0]:
                draw(*scored["_predictions"], folds[0], os.path.join(RESULTS, "real_trees.png"))
            return scored

        score_once(f"fold{fold}", keys, setting, scorer, {"lever": lever, "setting": setting})

    if "final" in stages:
        final_fold(0)
    if "kerashub" in stages:
        keys = [run_key(0, "kerashub", seed) for seed in SEEDS]
        setting = choose(run_seeds(keys, lambda seed: kerashub(args.work, folds[0], seed)))
        score_once("kerashub_fold0", keys, setting, lambda run: kerashub_test(folds[0], run, setting),
                   {"setting": f"NMS IoU {setting}"})
    if "folds" in stages:
        for fold in (1, 2):
            final_fold(fold)
    if all(f"fold{f}" in state for f in range(3)):
        values = [state["runs"][run_key(f, lever, s)]["test_scored"][METRIC] for f in range(3) for s in SEEDS]
        state["rotation"] = {"folds x seeds": len(values), METRIC: spread(values)}
    save_state()
    print(json.dumps({k: v for k, v in state.items() if k not in ("runs",)}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
