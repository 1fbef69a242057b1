"""Runs the tfdet pipeline on this machine: LocalDagRunner, MLMD in SQLite, Beam DirectRunner.

    python -m pipeline.local_runner [--data-root DIR] [--model-config NAME] [--train-steps N] [--output-root DIR]
        [--verbose]  (--help lists every knob of pipeline/configs.py)

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
    configs.add_flags(parser, skip=("pipeline_root", "metadata_path", "serving_model_dir"))
    parser.add_argument("--output-root", default=configs.OUTPUT_ROOT,
                        help="pipeline root, MLMD database and serving directory go under it")
    parser.add_argument("--no-generate", action="store_true", help="do not generate the default dataset")
    parser.add_argument("--verbose", action="store_true", help="show every log line of TFX, Beam and TensorFlow")
    return parser


def config_of(args: argparse.Namespace) -> configs.PipelineConfig:
    """The run's PipelineConfig: the flags, with the outputs under ``--output-root``."""
    return configs.from_flags(
        args, pipeline_root=os.path.join(args.output_root, configs.PIPELINE_NAME),
        metadata_path=os.path.join(args.output_root, "metadata", configs.PIPELINE_NAME, "metadata.db"),
        serving_model_dir=os.path.join(args.output_root, "serving_model", configs.PIPELINE_NAME))


def where_next(config: configs.PipelineConfig, summary: dict) -> str:
    """Where to look after a run."""
    lines = [f"TensorBoard: tensorboard --logdir {os.path.join(config.pipeline_root, 'Trainer')}",
             f"notebooks: TFDET_OUTPUT_ROOT={os.path.dirname(config.pipeline_root)} jupyter notebook notebooks/"]
    if summary.get("pushed"):
        lines.append(f"served model: {summary['pushed_model']} (tfdet predict {summary['pushed_model']} IMAGES... "
                     f"--out predictions/)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pipeline.console import quiet_console

    progress = quiet_console(args.verbose)
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline
    from pipeline.summary import collect, render

    sys.path.insert(0, configs.REPO_ROOT)  # the components import models.* and components.*
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [configs.REPO_ROOT, os.environ.get("PYTHONPATH")]))
    if not args.no_generate and os.path.abspath(args.data_root) == os.path.abspath(configs.DATA_ROOT):
        from tfdet.dataio.synthetic import generate_default_dataset

        generate_default_dataset(os.path.dirname(configs.DATA_ROOT), os.path.basename(configs.DATA_ROOT))
    config = config_of(args)
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        config, tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    started = time.perf_counter()
    failure = None
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # BoxGate's verdict, or another component's failure: summarise, then report
        failure = error
        progress.failed()
    print("\n=== tfdet pipeline summary ===")
    summary = collect(config.metadata_path, config.pipeline_root, failed=failure is not None)
    print(render(summary, time.perf_counter() - started))
    if failure is not None:
        print("nothing was trained or pushed; the served model is unchanged")
        print(f"\nthe run stopped: {failure}")
        return 1
    print(where_next(config, summary))
    return 0


def main(argv=None) -> int:
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
