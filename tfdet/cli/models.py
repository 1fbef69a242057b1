"""``tfdet train | predict | evaluate | export | models``: the everyday tools of a detection library."""

from __future__ import annotations

import argparse
import ast
import json
import os
from typing import Any, Dict, List


def _pairs(items: List[str]) -> Dict[str, Any]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. backbone.frozen_stages=2")
        try:
            pairs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pairs[key] = value
    return pairs


def _examples(*lines: str) -> dict:
    return {"formatter_class": argparse.RawDescriptionHelpFormatter,
            "epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines)}


def add_commands(commands) -> None:
    """Adds models, train, predict, evaluate and export to the ``tfdet`` subcommands."""
    listing = commands.add_parser("models", help="list the zoo's models", **_examples("tfdet models 'retinanet*'"))
    listing.add_argument("pattern", nargs="?", default="*")
    listing.set_defaults(handler=_models)

    train = commands.add_parser(
        "train", help="train a detector: checkpoints, resume, COCO eval, TensorBoard, SavedModel",
        **_examples("tfdet train cpu_small --data 'data/default/span-1/train-*.tfrecord' "
                    "--eval-data 'data/default/span-1/eval-*.tfrecord' --work-dir runs/cpu_small",
                    "tfdet train retinanet_resnet50_fpn_cpu --data 'trees/train-*.tfrecord' --epochs 60 "
                    "--work-dir runs/trees --set backbone.frozen_stages=3 --seed 0",
                    "tfdet train cpu_small --data 'mine/train-*.tfrecord' --work-dir runs/mine "
                    "--load-from tfx_pipeline_output/serving_model/tfdet/1796443182   # fine-tune a served model",
                    "(run the same command again after an interruption: it resumes; tensorboard --logdir runs)"))
    train.add_argument("config", help="a zoo model (tfdet models) or a .py config file with MODEL, TRAIN, train_steps")
    train.add_argument("--data", required=True, help="TFRecord glob of the training split")
    train.add_argument("--eval-data", default=None, help="TFRecord glob of the evaluation split")
    train.add_argument("--work-dir", required=True, help="checkpoints, logs and the SavedModel go here")
    train.add_argument("--num-classes", type=int, default=None,
                       help="default: the label_map.json beside --data, else the config's")
    train.add_argument("--epochs", type=int, default=None, help="passes over the data (default: the config's recipe)")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps instead of --epochs")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--learning-rate", type=float, default=None)
    train.add_argument("--eval-every", type=int, default=1, help="COCO evaluation every N epochs")
    train.add_argument("--no-pretrained", action="store_true", help="do not load the config's pretrained weights")
    train.add_argument("--pretrained", default=None, help="a backbone checkpoint (file or keras:/timm:/torchvision:)")
    train.add_argument("--load-from", default=None, metavar="DETECTOR",
                       help="start from a trained detector: a work dir, an exported or served SavedModel (a new "
                            "class count re-initialises only the class logits)")
    train.add_argument("--seed", type=int, default=None, help="the same seed, config and data give the same model")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set head.stacked_convs=2")
    train.set_defaults(handler=_train)

    predict = commands.add_parser(
        "predict", help="detect objects in images: drawn PNGs and a COCO results JSON",
        **_examples("tfdet predict runs/cpu_small photo1.jpg photo2.png --out predictions/",
                    "tfdet predict serving/tfdet/3 images/*.jpg --out predictions/ --score-thr 0.5"))
    predict.add_argument("model", help="a SavedModel or a tfdet work dir")
    predict.add_argument("images", nargs="+", help="JPEG or PNG files")
    predict.add_argument("--out", required=True, help="folder for the drawn images and detections.json")
    predict.add_argument("--score-thr", type=float, default=0.3,
                         help="draw and keep detections from this score (not below the one the model was exported "
                              "with: tfdet export --score-thr lowers that)")
    predict.add_argument("--batch-size", type=int, default=4)
    predict.set_defaults(handler=_predict)

    evaluate = commands.add_parser(
        "evaluate", help="COCO metrics (pycocotools) of a model on TFRecords, per class",
        **_examples("tfdet evaluate runs/cpu_small --data 'data/default/span-1/eval-*.tfrecord'"))
    evaluate.add_argument("model", help="a SavedModel or a tfdet work dir")
    evaluate.add_argument("--data", required=True, help="TFRecord glob")
    evaluate.add_argument("--num-classes", type=int, default=None, help="default: the model's label map")
    evaluate.add_argument("--json", default=None, help="also write the metrics here")
    evaluate.set_defaults(handler=_evaluate)

    report = commands.add_parser(
        "report", help="a model card: one HTML page of a model's COCO figures, errors, worst and best images, training",
        **_examples("tfdet report runs/cpu_small --data 'data/default/span-1/eval-*.tfrecord' --out card.html"))
    report.add_argument("model", help="a SavedModel or a tfdet work dir")
    report.add_argument("--data", required=True, help="TFRecord glob of the examples to evaluate on")
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.add_argument("--num-classes", type=int, default=None, help="default: the model's label map")
    report.set_defaults(handler=_report)

    export = commands.add_parser(
        "export", help="export a trained detector as a SavedModel or TFLite",
        **_examples("tfdet export runs/cpu_small --format saved_model --out serving/cpu_small/1",
                    "tfdet export runs/cpu_small --format tflite --out cpu_small.tflite --quantization float16",
                    "tfdet export tfx_pipeline_output/serving_model/tfdet/1796443182 --format tflite "
                    "--out served.tflite"))
    export.add_argument("model", help="a tfdet work dir (its newest checkpoint) or a SavedModel tfdet exported "
                                      "(e.g. a version the pipeline pushed)")
    export.add_argument("--format", choices=("saved_model", "tflite"), default="saved_model")
    export.add_argument("--out", required=True, help="the SavedModel folder or the .tflite file")
    export.add_argument("--quantization", choices=("float16", "dynamic_int8"), default=None, help="tflite only")
    export.add_argument("--score-thr", type=float, default=None, help="keep detections from this score (default: "
                                                                      "the model's test_cfg, 0.05)")
    export.set_defaults(handler=_export)


def _models(args: argparse.Namespace) -> int:
    from tfdet.zoo import get_entry, list_models

    for name in list_models(args.pattern):
        entry = get_entry(name)
        pretrained = entry.MODEL["backbone"].get("init_cfg", {}).get("checkpoint", "-")
        print(f"{name:32s} {entry.MODEL['backbone']['name']:10s} pretrained {pretrained:26s} "
              f"{(entry.doc or '-').splitlines()[0]}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from tfdet.training.train import train_detector

    pretrained = False if args.no_pretrained else args.pretrained
    result = train_detector(args.config, args.data, args.work_dir, eval_data=args.eval_data,
                            num_classes=args.num_classes, epochs=args.epochs, steps=args.steps,
                            batch_size=args.batch_size, learning_rate=args.learning_rate, eval_every=args.eval_every,
                            pretrained=pretrained, load_from=args.load_from, overrides=_pairs(args.set),
                            seed=args.seed)
    print(f"trained {result['steps']} steps ({result['initialisation']})")
    if "metrics" in result:
        metrics = result["metrics"]
        print(f"COCO on {args.eval_data}: mAP {metrics['AP']:.4f}, mAP@0.5 {metrics['AP50']:.4f}")
    print(f"SavedModel: {result['saved_model']}")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(args.work_dir, 'logs')}")
    return 0


def _load_images(paths: List[str]) -> List[bytes]:
    data = []
    for path in paths:
        with open(path, "rb") as handle:
            data.append(handle.read())
    return data


def _predict(args: argparse.Namespace) -> int:
    import io

    import tensorflow as tf
    from PIL import Image, ImageOps
    from tqdm.auto import tqdm

    from tfdet.core.detections import split_detections
    from tfdet.evaluation.coco import coco_results
    from tfdet.export.saved_model import read_model_card
    from tfdet.training.work_dir import class_names_of, saved_model_dir
    from tfdet.visualization import draw_detections

    missing = [path for path in args.images if not os.path.isfile(path)]
    if missing:
        more = f" (nor are {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"{missing[0]} is not a file{more}: pass JPEG or PNG files, e.g. images/*.jpg (the "
                                f"shell expands the glob)")
    exported = saved_model_dir(args.model)
    floor = ((read_model_card(exported) or {}).get("test_cfg") or {}).get("score_thr")
    if floor is not None and args.score_thr < floor:
        raise ValueError(f"--score-thr {args.score_thr} is below {floor}, the score the model was exported to keep "
                         f"detections from: lower scores are not in its output. Export it again with that threshold "
                         f"(tfdet export {args.model} --score-thr {args.score_thr} --out DIR) and predict with DIR")
    serve = tf.saved_model.load(exported).signatures["serving_images"]
    names = class_names_of(args.model)
    os.makedirs(args.out, exist_ok=True)
    found, images, failed = [], [], 0
    for start in tqdm(range(0, len(args.images), args.batch_size), desc="predict", unit="batch"):
        paths = args.images[start:start + args.batch_size]
        encoded = _load_images(paths)
        out = serve(images=tf.constant(encoded))
        ids = list(range(start, start + len(paths)))
        for path, data, detected in zip(paths, encoded, split_detections(out, image_ids=ids)):
            i = detected["image_id"] - start
            if not bool(out["valid"][i]):
                print(f"{path}: {out['error'][i].numpy().decode()}")
                failed += 1
                continue
            keep = detected["scores"] >= args.score_thr
            kept = {key: detected[key][keep] for key in ("boxes", "scores", "classes")}
            height, width = (int(v) for v in out["image_size"][i])
            picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))  # upright, as the model saw it
            drawn = draw_detections(picture, kept["boxes"], kept["scores"], kept["classes"], names)
            drawn.save(os.path.join(args.out, os.path.splitext(os.path.basename(path))[0] + ".png"))
            images.append({"id": detected["image_id"], "file_name": path, "height": height, "width": width})
            found.append({"image_id": detected["image_id"], **kept})
    results = coco_results(found, rounded=True)
    with open(os.path.join(args.out, "detections.json"), "w") as handle:
        json.dump(results, handle)
    with open(os.path.join(args.out, "images.json"), "w") as handle:
        json.dump({"images": images, "categories": [{"id": k, "name": v} for k, v in sorted(names.items())]},
                  handle, indent=1)
    print(f"{len(images)} images, {len(results)} detections (score >= {args.score_thr}) -> {args.out}/ "
          f"(drawn PNGs, detections.json in COCO results format, images.json)")
    return 1 if failed else 0


def _evaluate(args: argparse.Namespace) -> int:
    from tfdet.dataio.tfrecord_files import read_records
    from tfdet.evaluation import COCO_METRIC_NAMES
    from tfdet.evaluation.saved_model import evaluate_saved_model
    from tfdet.training.work_dir import class_names_of, saved_model_dir

    names = class_names_of(args.model)
    num_classes = args.num_classes or len(names)
    if not num_classes:
        raise ValueError(f"{args.model} has no label_map.json; pass --num-classes")
    metrics = evaluate_saved_model(saved_model_dir(args.model), read_records(args.data), num_classes, names)
    print(f"{metrics['num_images']} images, {metrics['num_detections']} detections")
    for name in COCO_METRIC_NAMES:
        print(f"  {name:6s} {metrics[name]:.4f}")
    print("per class (mAP@[.5:.95]):")
    for name, value in metrics["per_class_AP"].items():
        print(f"  {name:20s} {value:.4f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(metrics, handle, indent=2)
    return 0


def _report(args: argparse.Namespace) -> int:
    from tfdet.dataio.tfrecord_files import read_records
    from tfdet.reporting.card import write_card
    from tfdet.reporting.standalone import report_card
    from tfdet.training.work_dir import class_names_of

    names = class_names_of(args.model)
    num_classes = args.num_classes or len(names)
    if not num_classes:
        raise ValueError(f"{args.model} has no label_map.json; pass --num-classes")
    html = report_card(args.model, read_records(args.data), num_classes, names, args.data)
    print(f"model card -> {write_card(args.out, html)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tfdet.export import export_saved_model
    from tfdet.export.tflite import export_tflite
    from tfdet.training.work_dir import class_names_of, load_trained_detector

    model = load_trained_detector(args.model)
    names = class_names_of(args.model)
    if args.format == "tflite":
        path = export_tflite(model, args.out, quantization=args.quantization, score_thr=args.score_thr)
        print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB (input uint8 [1, {model.config.input_size[0]}, "
              f"{model.config.input_size[1]}, 3])")
    else:
        print(export_saved_model(model, args.out, score_thr=args.score_thr, class_names=names or None))
    return 0
