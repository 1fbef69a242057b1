"""The tfdet pipeline on Kubeflow Pipelines: compile, submit a run, schedule recurring runs.

    python -m pipeline.kubeflow_runner compile  --output pipeline.yaml [--image IMAGE] [--pipeline-root gs://...]
        [--data-root gs://...] [--serving-dir gs://...] [--beam direct|dataflow|flink|spark] [--train-steps N]
        [--window-spans K] [--distribution none|mirrored|multi_worker] [--trainer-cpu N] [--trainer-memory-gb N]
        [--trainer-accelerator TYPE --trainer-accelerator-count N]
    python -m pipeline.kubeflow_runner submit   --host URL --experiment NAME [--package pipeline.yaml | compile flags]
    python -m pipeline.kubeflow_runner schedule --host URL --experiment NAME --cron "0 0 3 * * *"
        [--name NAME] [--package pipeline.yaml | compile flags]

``compile`` turns the same ``create_pipeline`` as the local runner into a kfp 2 pipeline YAML with TFX's
KubeflowV2DagRunner; the components run in IMAGE (the repository's Dockerfile), so the roots must be
remote stores every pod can reach. ``submit`` and ``schedule`` send that YAML (``--package``, or one
compiled on the spot from the compile flags) to a KFP API server through ``kfp.Client``: ``submit``
starts one run, ``schedule`` creates a recurring run (KFP cron: six fields, seconds first; no
catch-up of missed runs; one run at a time). The experiment is created when it does not exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import warnings
from typing import Any, Dict, Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=FutureWarning)

from pipeline import configs  # noqa: E402

CRON_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")


def check_cron(expression: str) -> str:
    """Returns ``expression`` when it has KFP's six cron fields; otherwise says how to fix it.

    KFP schedules with robfig/cron and a leading seconds field: "0 0 3 * * *" is every day at 03:00.
    A five-field crontab line is the usual slip, so the error shows its six-field form.
    """
    fields = expression.split()
    if len(fields) == 6:
        return " ".join(fields)
    hint = f" (did you mean '0 {' '.join(fields)}'?)" if len(fields) == 5 else ""
    raise ValueError(f"a KFP cron expression has 6 fields ({', '.join(CRON_FIELDS)}); {expression!r} has "
                     f"{len(fields)}{hint}")


def compile_pipeline(output: str, image: str, pipeline_root: str, data_root: str, serving_dir: str,
                     **changes: Any) -> str:
    """Writes the kfp pipeline YAML to ``output`` (it must end in .yaml: the kfp 2 client rejects
    the JSON PipelineJob form) and returns its path.

    ``changes``: any :class:`pipeline.configs.PipelineConfig` field (``train_steps``, ``model_config``,
    ``window_spans``, ``distribution``, ``beam``, ``trainer_resources`` -- ``cpu``, ``memory_gb``, ``accelerator``,
    ``accelerator_count`` of the Trainer's pod ...); the rest are the Kubeflow defaults of pipeline/configs.py.
    """
    return compile_config(output, image, configs.PipelineConfig.kubeflow(
        pipeline_root=pipeline_root, data_root=data_root, serving_model_dir=serving_dir, **changes))


def check_compile(output: str, config: configs.PipelineConfig) -> None:
    """Raises ValueError, naming the fix, for what cannot compile (before TFX's seconds of imports)."""
    if not output.endswith(".yaml"):
        raise ValueError(f"--output must end in .yaml (kfp 2 loads the YAML pipeline spec), got {output!r}: "
                         f"--output {os.path.splitext(output)[0]}.yaml")
    if config.distribution == "multi_worker":
        raise ValueError("distribution 'multi_worker' needs several Trainer processes with TF_CONFIG, and TFX's "
                         "Trainer on Kubeflow is one pod: use 'mirrored' (every device of the Trainer's pod), or run "
                         "the training as a TFJob or a Vertex AI job")


def compile_config(output: str, image: str, config: configs.PipelineConfig) -> str:
    """Writes the kfp pipeline YAML of ``config`` to ``output`` (.yaml) and returns its path."""
    check_compile(output, config)
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    if config.beam == "flink":  # the cluster's workers and the job server as the pipeline image has them
        config = dataclasses.replace(config, beam_args=[*configs.KUBEFLOW_FLINK_ARGS, f"--sdk_container_image={image}",
                                                        *config.beam_args])
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output)), output_filename=os.path.basename(output))
    runner.run(create_pipeline(config))
    return output


def client(host: str, namespace: Optional[str] = None):
    """A ``kfp.Client`` for the KFP API server at ``host`` (e.g. http://localhost:8080 after
    ``kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80``)."""
    import kfp

    if not host:
        raise ValueError("--host is required: the URL of the KFP API server, e.g. http://localhost:8080")
    return kfp.Client(host=host, namespace=namespace or "kubeflow")


def _check_package(package: str) -> str:
    if not os.path.isfile(package):
        raise FileNotFoundError(f"pipeline package {package!r} does not exist: compile it first "
                                f"(python -m pipeline.kubeflow_runner compile --output {package})")
    return package


def submit(host: str, package: str, experiment: str, run_name: Optional[str] = None,
           namespace: Optional[str] = None, enable_caching: Optional[bool] = None) -> Dict[str, str]:
    """Starts one run of the compiled ``package`` in ``experiment`` (created when missing);
    returns the experiment and run ids."""
    kfp_client = client(host, namespace)
    result = kfp_client.create_run_from_pipeline_package(
        _check_package(package), arguments={}, run_name=run_name or f"{configs.PIPELINE_NAME} run",
        experiment_name=experiment, namespace=namespace, enable_caching=enable_caching)
    return {"experiment_id": result.run_info.experiment_id, "run_id": result.run_id}


def schedule(host: str, package: str, experiment: str, cron: str, name: Optional[str] = None,
             namespace: Optional[str] = None, max_concurrency: int = 1,
             enable_caching: Optional[bool] = None) -> Dict[str, str]:
    """Creates a recurring run of ``package`` on the six-field ``cron`` schedule, without catch-up of
    missed runs, at most ``max_concurrency`` at a time; returns the experiment and recurring-run ids."""
    cron = check_cron(cron)
    kfp_client = client(host, namespace)
    experiment_id = kfp_client.create_experiment(name=experiment, namespace=namespace).experiment_id
    recurring = kfp_client.create_recurring_run(
        experiment_id=experiment_id, job_name=name or f"{configs.PIPELINE_NAME} retraining",
        description=f"tfdet retraining on the newest span, cron {cron!r}", cron_expression=cron,
        max_concurrency=max_concurrency, no_catchup=True, pipeline_package_path=_check_package(package),
        enable_caching=enable_caching)
    return {"experiment_id": experiment_id, "recurring_run_id": recurring.recurring_run_id}


def _add_compile_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", default=configs.KUBEFLOW_IMAGE)
    configs.add_flags(parser, configs.PipelineConfig.kubeflow(), skip=("metadata_path", "serving_model_dir"))
    parser.add_argument("--serving-dir", default=configs.KUBEFLOW_SERVING_MODEL_DIR,
                        help="the Pusher's destination, a remote folder TF Serving reads")
    resources = configs.KUBEFLOW_TRAINER_RESOURCES
    parser.add_argument("--trainer-cpu", type=float, default=resources["cpu"], help="vCPU limit of the Trainer's pod")
    parser.add_argument("--trainer-memory-gb", type=float, default=resources["memory_gb"])
    parser.add_argument("--trainer-accelerator", default=resources["accelerator"], help="e.g. nvidia-tesla-t4")
    parser.add_argument("--trainer-accelerator-count", type=int, default=resources["accelerator_count"])


def _add_client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("KF_PIPELINES_ENDPOINT", configs.KUBEFLOW_HOST),
                        help="KFP API server URL (default: $KF_PIPELINES_ENDPOINT or configs.KUBEFLOW_HOST)")
    parser.add_argument("--experiment", default=configs.KUBEFLOW_EXPERIMENT)
    parser.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user installs)")
    parser.add_argument("--package", default=None,
                        help="a compiled pipeline YAML; without it the pipeline is compiled from the flags")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compile_cmd = commands.add_parser("compile", help="write the pipeline YAML")
    compile_cmd.add_argument("--output", default="pipeline.yaml")
    _add_compile_flags(compile_cmd)
    submit_cmd = commands.add_parser("submit", help="start one run on a KFP host")
    submit_cmd.add_argument("--run-name", default=None)
    schedule_cmd = commands.add_parser("schedule", help="create a recurring run on a KFP host")
    schedule_cmd.add_argument("--cron", default=configs.KUBEFLOW_CRON,
                              help="six fields, seconds first: '0 0 3 * * *' is 03:00 every day")
    schedule_cmd.add_argument("--name", default=None, help="the recurring run's name")
    schedule_cmd.add_argument("--max-concurrency", type=int, default=1)
    for command in (submit_cmd, schedule_cmd):
        _add_client_flags(command)
        _add_compile_flags(command)
    return parser


def _config_of(args: argparse.Namespace) -> configs.PipelineConfig:
    resources = {"cpu": args.trainer_cpu, "memory_gb": args.trainer_memory_gb,
                 "accelerator": args.trainer_accelerator, "accelerator_count": args.trainer_accelerator_count}
    return configs.from_flags(args, configs.PipelineConfig.kubeflow(), serving_model_dir=args.serving_dir,
                              trainer_resources=resources)


def main(argv=None) -> int:
    """Entry point: one line naming the fix and exit status 2 for what cannot work."""
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    # what cannot work is said before the slow compilation
    if args.command == "compile" or not args.package:
        check_compile(args.output if args.command == "compile" else "pipeline.yaml", _config_of(args))
    if args.command == "compile":
        print(f"wrote {compile_config(args.output, args.image, _config_of(args))}")
        return 0
    if args.command == "schedule":
        check_cron(args.cron)
    if args.package:
        _check_package(args.package)
    with tempfile.TemporaryDirectory() as scratch:
        package = args.package or compile_config(os.path.join(scratch, "pipeline.yaml"), args.image, _config_of(args))
        if args.command == "submit":
            ids = submit(args.host, package, args.experiment, args.run_name, args.namespace)
        else:
            ids = schedule(args.host, package, args.experiment, args.cron, args.name, args.namespace,
                           args.max_concurrency)
    print(" ".join(f"{key}={value}" for key, value in ids.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
