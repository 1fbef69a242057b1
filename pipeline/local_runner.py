"""Runs the tfdet pipeline on this machine: LocalDagRunner, MLMD in SQLite, Beam DirectRunner.

    python -m pipeline.local_runner [--data-root DIR] [--model-config NAME] [--train-steps N] [--output-root DIR]
        [--beam direct|in-memory|flink|portable|dataflow] [--verbose]  (--help lists every knob of pipeline/configs.py)
    python -m pipeline.local_runner status [--json]     what is served, and what made each version
    python -m pipeline.local_runner rollback --to N     serve version N again (as a new version)

With no arguments it generates the default dataset when missing, trains the CPU-sized model and
ends with a summary of the run. Exit status: 0 pushed (or nothing new), 1 stopped (bad data or a
failure), 3 trained but not blessed (nothing pushed), 2 the Beam engine cannot take jobs (one line says why).
Run from the repository root.
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import os
import re
import sys
import time
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up lines (CUDA factories, oneDNN)
# google-api-core warns on every import that Python 3.10 is past its support window (TFX 1.16 allows
# nothing newer); TFMA's precision at a threshold where nothing is predicted is 0 / 0, which it reports
# as NaN on purpose, and numpy's RuntimeWarning about it reached the console from the Evaluator. The
# environment variable carries both filters into the Beam worker processes (after any the user set, so
# they win for these two warnings only).
QUIET_WARNINGS = ("ignore::FutureWarning",
                  "ignore:invalid value encountered in divide:RuntimeWarning:"
                  "tensorflow_model_analysis.metrics.confusion_matrix_metrics")


def _quiet_warnings() -> None:
    """Sets QUIET_WARNINGS for the Beam workers (PYTHONWARNINGS) and for this process (read as -W is)."""
    os.environ["PYTHONWARNINGS"] = ",".join(
        [f for f in os.environ.get("PYTHONWARNINGS", "").split(",") if f and f not in QUIET_WARNINGS]
        + list(QUIET_WARNINGS))
    for spec in QUIET_WARNINGS:
        action, message, category, module = (spec.split(":") + [""] * 4)[:4]
        warnings.filterwarnings(action, message=re.escape(message), category=getattr(builtins, category or "Warning"),
                                module=re.escape(module) + r"\Z" if module else "")


_quiet_warnings()

from pipeline import configs  # noqa: E402

# exit codes: 0 a model was pushed (or nothing new: all cached); 1 the run stopped (bad data, a failure);
# 3 a model was trained but not blessed, so nothing was pushed
NOT_BLESSED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="other commands:\n  python -m pipeline.local_runner status [--json]     what is served, and what made "
               "each version\n  python -m pipeline.local_runner rollback --to N     serve version N again (as a new "
               "version)\n  python -m pipeline.engines.cluster up|down|status   a Flink cluster for --beam flink")
    configs.add_flags(parser, skip=("pipeline_root", "metadata_path", "serving_model_dir"))
    parser.set_defaults(num_classes=None)  # the data's label_map.json, else configs.NUM_CLASSES
    for action in parser._actions:
        if action.dest == "num_classes":
            action.help = (f"classes of the data and the model (default: as many as the spans' label_map.json name, "
                           f"else {configs.NUM_CLASSES}; a flag that disagrees with them stops the run)")
    parser.add_argument("--output-root", default=configs.OUTPUT_ROOT,
                        help="pipeline root, MLMD database and serving directory go under it")
    parser.add_argument("--no-generate", action="store_true", help="do not generate the default dataset")
    parser.add_argument("--wait", action="store_true",
                        help="when another run holds the output root, wait for it instead of stopping")
    parser.add_argument("--verbose", action="store_true", help="show every log line of TFX, Beam and TensorFlow")
    return parser


def config_of(args: argparse.Namespace) -> configs.PipelineConfig:
    """The run's PipelineConfig: the flags, with the outputs under ``--output-root``."""
    return configs.from_flags(args, **configs.output_layout(args.output_root))


def unlabelled_files(config: configs.PipelineConfig) -> list:
    """The files ``config.unlabelled_pattern`` matches in any span (or version / date) under the data root."""
    import glob

    from tfdet.dataio.spans import any_span

    return glob.glob(os.path.join(config.data_root, any_span(config.unlabelled_pattern)))


def where_next(config: configs.PipelineConfig, summary: dict) -> str:
    """Where to look after a run."""
    lines = [f"TensorBoard: tensorboard --logdir {os.path.join(config.pipeline_root, 'Trainer')}",
             f"notebooks: TFDET_OUTPUT_ROOT={os.path.dirname(config.pipeline_root)} jupyter notebook notebooks/"]
    if summary.get("pushed"):
        lines.append(f"served model: {summary['pushed_model']} (tfdet predict {summary['pushed_model']} IMAGES... "
                     f"--out predictions/)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """A run of the pipeline with the output root to itself (pipeline/operations/run_lock.py); returns the exit
    status."""
    from pipeline.operations.run_lock import RunInProgress, RunLock

    try:
        with RunLock(args.output_root, wait=args.wait):
            return _run(args)
    except RunInProgress as error:
        print(f"error: {error}: wait for it to finish, or pass --wait to start when it has", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from pipeline.engines.beam import ENGINES, EngineUnavailable, check_engine
    from pipeline.engines.flink import FlinkSetupError
    from pipeline.operations.failures import PreflightError, check_data_root, check_metadata, data_classes, disk_full

    config = config_of(args)
    if not args.no_generate and os.path.abspath(args.data_root) == os.path.abspath(configs.DATA_ROOT):
        from tfdet.dataio.synthetic import DEFAULT_NUM_UNLABELLED, generate_default_dataset

        generate_default_dataset(os.path.dirname(configs.DATA_ROOT), os.path.basename(configs.DATA_ROOT),
                                 num_unlabelled=DEFAULT_NUM_UNLABELLED)
    try:  # before anything slow: what cannot work is one line, not a hang or a traceback
        check_data_root(config.data_root, config.train_pattern, config.eval_pattern)
        count, names = data_classes(config.data_root, config.train_pattern, args.num_classes, configs.NUM_CLASSES)
        config = dataclasses.replace(config, num_classes=count,
                                     class_names={str(k): v for k, v in names.items()} or None)
        check_metadata(config.metadata_path)
        check_engine(config.beam, config.beam_pipeline_args())
    except (PreflightError, EngineUnavailable, FlinkSetupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from pipeline.operations.console import quiet_console

    progress = quiet_console(args.verbose)
    from tfx import v1 as tfx

    from pipeline.engines.beam import runtime_args
    from pipeline.operations.summary import collect, render
    from pipeline.pipeline import create_pipeline

    # the project's code for the Beam workers and, on Flink, the cluster's parallelism (pipeline/engines/beam.py)
    config = dataclasses.replace(config, beam_args=[*config.beam_args,
                                                    *runtime_args(config.beam, config.beam_pipeline_args())])
    sys.path.insert(0, configs.REPO_ROOT)  # the components import models.* and components.*
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [configs.REPO_ROOT, os.environ.get("PYTHONPATH")]))
    if config.unlabelled_pattern and not unlabelled_files(config):
        print(f"batch inference off: no file matches {config.unlabelled_pattern} under {config.data_root}")
        config = dataclasses.replace(config, unlabelled_pattern=None)
    if config.beam != "direct":
        print(f"Beam steps on: {config.beam} ({ENGINES[config.beam]})")
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        config, tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    started = time.perf_counter()
    failure, running = None, None
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # BoxGate's verdict, or another component's failure: summarise, then report
        failure = error
        running = progress.current
        progress.failed()
    print("\n=== tfdet pipeline summary ===")
    summary = collect(config.metadata_path, config.pipeline_root, failed=failure is not None)
    print(render(summary, time.perf_counter() - started))
    if failure is not None:
        full = disk_full(failure, args.output_root,
                         os.path.join(config.pipeline_root, running, "") if running else None)
        if full:
            print(f"error: {full}", file=sys.stderr)
            return 1
        print("nothing was trained or pushed; the served model is unchanged")
        print(f"\nthe run stopped: {failure}")
        return 1
    print(where_next(config, summary))
    if summary.get("blessed") is False:
        print("the candidate was NOT blessed: nothing was pushed; the served model is unchanged")
        return NOT_BLESSED
    return 0


def operate(argv) -> int:
    """``status`` and ``rollback`` (see pipeline/operations/served.py)."""
    import json

    from pipeline.operations.served import lineage, render_status, rollback

    parser = argparse.ArgumentParser(prog="python -m pipeline.local_runner " + argv[0])
    parser.add_argument("--output-root", default=configs.OUTPUT_ROOT)
    if argv[0] == "status":
        parser.add_argument("--json", action="store_true", help="print the lineage as JSON")
        parser.add_argument("--path", action="store_true",
                            help="print only the folder of the version TF Serving serves, as an absolute path (for "
                                 "scripts)")
    else:
        parser.add_argument("--to", type=int, required=True, help="the version to serve again")
    args = parser.parse_args(argv[1:])
    layout = configs.output_layout(args.output_root)
    metadata, serving = layout["metadata_path"], layout["serving_model_dir"]
    if not os.path.exists(metadata):
        print(f"no pipeline metadata at {metadata}; run the pipeline first", file=sys.stderr)
        return 2
    from pipeline.operations.failures import PreflightError, check_metadata
    from pipeline.operations.run_lock import RunInProgress, RunLock, holder

    if argv[0] == "status" and args.path:
        from tfdet.export.serving import latest_version

        served = latest_version(serving)
        if served is None:
            print(f"nothing is served in {serving}", file=sys.stderr)
            return 2
        print(os.path.abspath(served))  # usable from any folder, whatever --output-root was relative to
        return 0
    if argv[0] == "status":
        running = holder(args.output_root)
        entries = lineage(metadata, serving)
        if args.json:  # the list as before; a run in progress is said beside it
            if running is not None:
                print(f"a run is in progress: pid {running.get('pid')} on {running.get('host')}", file=sys.stderr)
            print(json.dumps(entries, indent=2, default=str))
        else:
            print(render_status(entries, serving, running))
        return 0
    try:
        with RunLock(args.output_root):  # not while a run may push
            check_metadata(metadata)
            target = rollback(metadata, serving, args.to)
    except (ValueError, RunInProgress, PreflightError) as error:
        print(f"rollback: {error}", file=sys.stderr)
        return 2
    print(f"v{args.to} is served again as {target} (recorded in MLMD as a rollback); the next run warm-starts "
          f"from it and compares against it")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("status", "rollback"):
        return operate(argv)
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    if "--verbose" not in sys.argv:
        from pipeline.operations.console import drop_from_stderr

        drop_from_stderr()
    sys.exit(main())
