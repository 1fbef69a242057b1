"""Train a zoo detector to convergence on the default dataset and report COCO mAP.

    .venv/bin/python benchmarks/train_default.py [--config cpu_small] [--epochs 40]
    .venv/bin/python benchmarks/train_default.py --config fcos_cpu_small --epochs 6 --mixed-precision mixed_bfloat16

Writes benchmarks/results/train_<config>.json (train_<config>_<epochs>ep[_<precision>].json when
the epochs or precision differ from the recipe): mAP@0.5, mAP@[.5:.95], per-class AP on
the eval split (pycocotools), mAP@0.5 every --eval-every epochs, the loss curve and wall time.
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

import tf_keras  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.groupnorm_ab import use_tf_keras_groupnorm  # noqa: E402
from benchmarks.report import save  # noqa: E402
from tfdet.dataio.pipeline import pipeline, training_batches  # noqa: E402
from tfdet.dataio.synthetic import generate_default_dataset  # noqa: E402
from tfdet.evaluation import eval_dataset, evaluate_coco  # noqa: E402
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel  # noqa: E402
from tfdet.training.callbacks import CocoEvaluation  # noqa: E402
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
    parser.add_argument("--seed", type=int, default=None,
                        help="seeds Python, NumPy and TensorFlow (initial weights, shuffling, augmentation draws) "
                             "so that two runs differing in one switch start alike")
    parser.add_argument("--result", default=None,
                        help="write the result JSON here instead of benchmarks/results/train_<config>[...].json")
    args = parser.parse_args()
    if args.seed is not None:
        tf_keras.utils.set_random_seed(args.seed)
    if args.groupnorm_training == "tf_keras":
        use_tf_keras_groupnorm(in_inference=False)
    entry = get_entry(args.config)
    span = generate_default_dataset(args.data)[1]
    with open(os.path.join(span, "label_map.json")) as handle:
        label_map = {int(k): v for k, v in json.load(handle).items()}
    epochs = args.epochs or entry.TRAIN["epochs"]
    batch_size = entry.TRAIN["batch_size"]
    config = dict(entry.MODEL, mixed_precision=args.mixed_precision)
    model = OneStageModel(ConfigOneStage(**config)).build_model()

    train = training_batches(pipeline(entry.train_steps(f"{span}/train-*.tfrecord")), batch_size)
    steps_per_epoch = sum(1 for _ in train)
    schedule = tf_keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=epochs * steps_per_epoch, warmup_target=entry.TRAIN["learning_rate"],
        warmup_steps=steps_per_epoch)
    model.compile(optimizer=tf_keras.optimizers.Adam(schedule, global_clipnorm=10.0))
    evaluation = eval_dataset(f"{span}/eval-*.tfrecord", model.config.input_size, model.config.mean,
                              model.config.std)
    coco = CocoEvaluation(evaluation, every_n_epochs=args.eval_every, label_map=label_map)
    started = time.perf_counter()
    history = model.fit(train, epochs=epochs, callbacks=[coco], verbose=2)
    train_seconds = time.perf_counter() - started
    final = evaluate_coco(model, evaluation, label_map)
    result = {
        "config": args.config, "epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size,
        "train_seconds": round(train_seconds, 1),
        "train_images_per_second": round(epochs * steps_per_epoch * batch_size / train_seconds, 2),
        "mAP@0.5": round(final["AP50"], 4), "mAP@[.5:.95]": round(final["AP"], 4),
        "coco": {k: round(v, 4) for k, v in final.items() if isinstance(v, float)},
        "per_class_AP": {k: round(v, 4) for k, v in final["per_class_AP"].items()},
        "loss_per_epoch": [round(v, 4) for v in history.history["loss"]],
        "mAP@0.5_per_eval": {epoch: round(m["AP50"], 4) for epoch, m in coco.history.items()},
        "mixed_precision": args.mixed_precision, "params": model.count_params(),
    }
    # a shorter or longer run than the entry's recipe keeps its own result file
    suffix = f"_{epochs}ep" if epochs != entry.TRAIN["epochs"] or args.mixed_precision else ""
    suffix += f"_{args.mixed_precision}" if args.mixed_precision else ""
    suffix += "_gn-tf_keras" if args.groupnorm_training == "tf_keras" else ""
    suffix += f"_seed{args.seed}" if args.seed is not None else ""
    result["groupnorm_training"] = args.groupnorm_training
    result["seed"] = args.seed
    if args.result:
        with open(args.result, "w") as handle:
            json.dump(result, handle, indent=2)
    else:
        save(f"train_{args.config}{suffix}.json", result)
    model.save_weights(os.path.join(args.data, f"{args.config}_weights", "ckpt"))


if __name__ == "__main__":
    main()
