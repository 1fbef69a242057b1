"""Runs the tfdet pipeline on this machine: LocalDagRunner, MLMD in SQLite, Beam DirectRunner.

    python -m pipeline.local_runner [--data-root DIR] [--model-config NAME] [--train-steps N] [--pipeline-root DIR]

With no arguments it generates the default dataset when missing, trains the CPU-sized model and
ends with a summary of the run. Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# google-api-core warns on every import that Python 3.10 is past its support window (TFX 1.16 allows
# nothing newer); the environment variable silences it in the Beam worker processes too.
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
warnings.filterwarnings("ignore", category=FutureWarning)

from pipeline import configs  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=configs.DATA_ROOT, help="folder of span-<N>/ TFRecord folders")
    parser.add_argument("--model-config", default=configs.MODEL_CONFIG, help="a tfdet.zoo model (tfdet.list_models())")
    parser.add_argument("--num-classes", type=int, default=configs.NUM_CLASSES)
    parser.add_argument("--train-steps", type=int, default=configs.TRAIN_STEPS, help="default: the model's recipe")
    parser.add_argument("--batch-size", type=int, default=configs.BATCH_SIZE, help="default: the model's recipe")
    parser.add_argument("--learning-rate", type=float, default=configs.LEARNING_RATE,
                        help="default: the model's recipe")
    parser.add_argument("--min-map50", type=float, default=configs.MIN_MAP50, help="blessing threshold")
    parser.add_argument("--max-map50-drop", type=float, default=configs.MAX_MAP50_DROP,
                        help="largest mAP50 loss against the blessed baseline that still blesses")
    parser.add_argument("--window-spans", type=int, default=configs.WINDOW_SPANS,
                        help="train on the newest span and the k-1 accepted spans before it")
    parser.add_argument("--distribution", default=configs.DISTRIBUTION or "none",
                        help="tf.distribute strategy of the Trainer: none, mirrored, multi_worker (TF_CONFIG)")
    parser.add_argument("--output-root", default=configs.OUTPUT_ROOT,
                        help="pipeline root, MLMD database and serving directory go under it")
    parser.add_argument("--no-generate", action="store_true", help="do not generate the default dataset")
    return parser


def run(args: argparse.Namespace) -> int:
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline
    from pipeline.summary import collect, render

    sys.path.insert(0, configs.REPO_ROOT)  # the components import models.* and components.*
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [configs.REPO_ROOT, os.environ.get("PYTHONPATH")]))
    if not args.no_generate and os.path.abspath(args.data_root) == os.path.abspath(configs.DATA_ROOT):
        from tfdet.dataio.synthetic import generate_default_dataset

        generate_default_dataset(os.path.dirname(configs.DATA_ROOT), os.path.basename(configs.DATA_ROOT))
    pipeline_root = os.path.join(args.output_root, configs.PIPELINE_NAME)
    metadata_path = os.path.join(args.output_root, "metadata", configs.PIPELINE_NAME, "metadata.db")
    serving_dir = os.path.join(args.output_root, "serving_model", configs.PIPELINE_NAME)
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        configs.PIPELINE_NAME, pipeline_root, args.data_root, serving_dir,
        train_pattern=configs.TRAIN_PATTERN, eval_pattern=configs.EVAL_PATTERN, model_config=args.model_config,
        num_classes=args.num_classes, train_steps=args.train_steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, min_map50=args.min_map50, max_map50_drop=args.max_map50_drop,
        max_detections=configs.MAX_DETECTIONS, window_spans=args.window_spans,
        distribution=None if args.distribution == "none" else args.distribution,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=configs.BEAM_PIPELINE_ARGS)
    started = time.perf_counter()
    failure = None
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # BoxGate's verdict, or another component's failure: summarise, then report
        failure = error
    print("\n=== tfdet pipeline summary ===")
    print(render(collect(metadata_path, pipeline_root, failed=failure is not None), time.perf_counter() - started))
    if failure is not None:
        print("nothing was trained or pushed; the served model is unchanged")
        print(f"\nthe run stopped: {failure}")
        return 1
    return 0


def main(argv=None) -> int:
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
