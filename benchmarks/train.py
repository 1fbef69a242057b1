"""Train a zoo detector to convergence on the default dataset and report COCO mAP.

    .venv/bin/python benchmarks/train.py [--config cpu_small] [--epochs 40]
    .venv/bin/python benchmarks/train.py --config fcos_cpu_small --epochs 6 --mixed-precision mixed_bfloat16

Writes benchmarks/results/train_<config>.json (train_<config>_<epochs>ep[_<precision>].json when
the epochs or precision differ from the recipe): mAP@0.5, mAP@[.5:.95], per-class AP on
the eval split (pycocotools), mAP@0.5 every --eval-every epochs, the loss curve and wall time.
"""

import argparse
import json
import os
import sys
import tempfile

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
from benchmarks.groupnorm_ab import use_tf_keras_groupnorm  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import save  # noqa: E402
from tfdet.dataio.synthetic import generate_default_dataset  # noqa: E402
from tfdet.training.train import train_detector  # noqa: E402
from tfdet.zoo import get_entry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="cpu_small")
    parser.add_argument("--data", default="data")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--mixed-precision", default=None)
    parser.add_argument("--groupnorm-training", choices=("tfdet", "tf_keras"), default="tfdet",
                        help="A/B switch: tf_keras trains through tf_keras's GroupNormalization (the code before "
                             "tfdet's written-out GroupNorm gradient); inference keeps tfdet's")
    parser.add_argument("--seed", type=int, default=None, help="a repeatable run (tfdet.training.reproducibility)")
    parser.add_argument("--result", default=None,
                        help="write the result JSON here instead of benchmarks/results/train_<config>[...].json")
    args = parser.parse_args()
    if args.groupnorm_training == "tf_keras":
        use_tf_keras_groupnorm(in_inference=False)
    recipe_epochs = get_entry(args.config).TRAIN.get("epochs")
    span = generate_default_dataset(args.data)[1]
    overrides = {"mixed_precision": args.mixed_precision} if args.mixed_precision else {}
    with tempfile.TemporaryDirectory() as work_dir:
        result = train_detector(args.config, f"{span}/train-*.tfrecord", work_dir, eval_data=f"{span}/eval-*.tfrecord",
                                epochs=args.epochs or recipe_epochs, eval_every=args.eval_every, overrides=overrides,
                                seed=args.seed, export=False, verbose=2)
    history, final, model = result["history"], result["metrics"], result["model"]
    epochs = len(history["loss"])
    out = {
        "command": "python benchmarks/train.py " + " ".join(sys.argv[1:]),
        "config": args.config, "epochs": epochs, "steps": result["steps"], "batch_size": result["batch_size"],
        "train_seconds": result["seconds"],
        "train_images_per_second": round(result["steps"] * result["batch_size"] / result["seconds"], 2),
        "mAP@0.5": round(final["AP50"], 4), "mAP@[.5:.95]": round(final["AP"], 4),
        "coco": {k: round(v, 4) for k, v in final.items() if isinstance(v, float)},
        "per_class_AP": {k: round(v, 4) for k, v in final["per_class_AP"].items()},
        "loss_per_epoch": [round(v, 4) for v in history["loss"]],
        "mAP@0.5_per_eval": {epoch + 1: round(value, 4) for epoch, value in enumerate(history.get("val_AP50", []))
                             if (epoch + 1) % args.eval_every == 0},
        "mixed_precision": args.mixed_precision, "params": model.count_params(),
        "groupnorm_training": args.groupnorm_training, "seed": args.seed,
    }
    # a shorter or longer run than the entry's recipe keeps its own result file
    suffix = f"_{epochs}ep" if epochs != recipe_epochs or args.mixed_precision else ""
    suffix += f"_{args.mixed_precision}" if args.mixed_precision else ""
    suffix += "_gn-tf_keras" if args.groupnorm_training == "tf_keras" else ""
    suffix += f"_seed{args.seed}" if args.seed is not None else ""
    if args.result:
        with open(args.result, "w") as handle:
            json.dump(out, handle, indent=2)
    else:
        save(f"train_{args.config}{suffix}.json", out)
    model.save_weights(os.path.join(args.data, f"{args.config}_weights", "ckpt"))  # what tflite.py reads


if __name__ == "__main__":
    main()
