"""Where the pipeline's Beam steps run: an engine chosen by name, and the Beam arguments that send them there.

The Beam steps are both ExampleGens, StatisticsGen, Transform, the Evaluator and BulkInferrer (the custom components
run no Beam pipeline). Engines:

* ``direct``: Beam's DirectRunner with one worker process per core (the default);
* ``in-memory``: the DirectRunner inside the runner's process (starts fastest on small data);
* ``flink``: a Flink cluster through Beam's Flink job server; ``python -m pipeline.cluster up`` starts one here,
  ``flink_master`` points at another. Python SDK workers are started by each TaskManager with the project's
  interpreter (:mod:`pipeline.beam_worker`); pass ``--environment_type`` / ``--environment_config`` in the extra
  arguments to use Docker or a worker pool on a remote cluster instead;
* ``portable``: Beam's portable job service and one SDK worker pool (``python -m pipeline.cluster up --engine
  portable``): the protocol Flink speaks, in one process: **not** a distributed engine;
* ``dataflow``: Google Cloud Dataflow by its documented arguments (``configs.DATAFLOW_ARGS``: fill in your project).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Dict, List, Sequence

from pipeline import flink
from tfdet.weights.fetch import cache_dir

ENGINES: Dict[str, str] = {
    "direct": "Beam's DirectRunner, one worker process per core",
    "in-memory": "Beam's DirectRunner in this process",
    "flink": "a Flink cluster (python -m pipeline.cluster up, or --flink-master HOST:PORT)",
    "portable": "Beam's portable job service + one SDK worker pool (not distributed)",
    "dataflow": "Google Cloud Dataflow (configs.DATAFLOW_ARGS)",
}
# TFX's Beam executors stage an sdist of TFX for the workers unless one of these names their dependencies
TFX_DEPENDENCY_OPTIONS = ("--extra_package", "--extra_packages", "--setup_file", "--requirements_file",
                          "--worker_harness_container_image", "--sdk_container_image")
PORTABLE_JOB_ENDPOINT = "localhost:8099"
PORTABLE_WORKER_POOL = "localhost:50000"


class EngineUnavailable(RuntimeError):
    """The chosen engine cannot take jobs (not running, unreachable, or missing a part); the message says why."""


def _has(args: Sequence[str], option: str) -> bool:
    return any(arg == option or arg.startswith(option + "=") for arg in args)


def beam_args(engine: str, flink_master: str = f"localhost:{flink.REST_PORT}", extra: Sequence[str] = (),
              dataflow_args: Sequence[str] = ()) -> List[str]:
    """The Beam pipeline arguments of ``engine``, followed by ``extra`` (which win where they overlap)."""
    extra = list(extra)
    if engine == "direct":
        args = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    elif engine == "in-memory":
        args = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    elif engine == "flink":
        args = ["--runner=FlinkRunner", f"--flink_master={flink_master}", f"--flink_version={flink.BEAM_FLINK_VERSION}"]
        if not _has(extra, "--flink_job_server_jar"):
            args.append(f"--flink_job_server_jar={flink.job_server_jar()}")
        if not _has(extra, "--job_port"):
            # one job-server command for every component of a run: Beam's subprocess cache then shares one JVM
            # (it stops a job server only when the process exits, so each component would otherwise leave one)
            args += [f"--job_port={free_port()}", f"--artifacts_dir={cache_dir('flink', 'artifacts')}"]
        if not _has(extra, "--environment_type"):
            from pipeline.beam_worker import write_launcher

            launcher = write_launcher(os.path.join(cache_dir("flink"), "beam_worker.sh"))
            args += ["--environment_type=PROCESS", f'--environment_config={{"command": "{launcher}"}}']
    elif engine == "portable":
        args = ["--runner=PortableRunner", f"--job_endpoint={PORTABLE_JOB_ENDPOINT}", "--environment_type=EXTERNAL",
                f"--environment_config={PORTABLE_WORKER_POOL}"]
    elif engine == "dataflow":
        args = ["--runner=DataflowRunner", *dataflow_args]
    else:
        raise ValueError(f"Beam engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return args + extra


def tfx_package() -> str:
    """TFX's own sdist for Beam workers (what TFX's executors stage), built once per TFX version into the cache.

    Left to itself, every Beam component of every run builds it anew (1 s, 49 MB) into a temporary directory that
    nothing deletes.
    """
    from tfx import version
    from tfx.utils import dependency_utils

    path = os.path.join(cache_dir("tfx"), f"tfx_ephemeral-{version.__version__}.tar.gz")
    if not os.path.isfile(path):
        previous = tempfile.tempdir
        with tempfile.TemporaryDirectory() as scratch:
            tempfile.tempdir = scratch  # where TFX's builder makes its own directory
            try:
                built = dependency_utils.build_ephemeral_package()
            finally:
                tempfile.tempdir = previous
            partial = f"{path}.partial-{os.getpid()}"
            shutil.copyfile(built, partial)
            os.replace(partial, path)
    return path


def tfx_package_args(args: Sequence[str]) -> List[str]:
    """``--extra_package=`` :func:`tfx_package`, or nothing when ``args`` already name the workers' dependencies."""
    if any(_has(args, option) for option in TFX_DEPENDENCY_OPTIONS):
        return []
    return [f"--extra_package={tfx_package()}"]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _option(args: Sequence[str], option: str) -> str:
    return next(arg.split("=", 1)[1] for arg in reversed(args) if arg.startswith(option + "="))


def _listening(address: str, timeout: float = 3.0) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def check_engine(engine: str, args: Sequence[str]) -> None:
    """Fails fast, in one line, when ``engine`` cannot take jobs: a Flink master that does not answer, a missing job
    server or Java, a portable job service or worker pool that is not listening."""
    if engine == "flink":
        flink.java()
        jar = _option(args, "--flink_job_server_jar")
        if not os.path.exists(jar):
            raise EngineUnavailable(f"Beam's Flink job server {jar} does not exist: run `python -m pipeline.cluster "
                                    f"fetch`")
        master = _option(args, "--flink_master")
        from pipeline.cluster import rest

        try:
            overview = rest(master, "/overview", timeout=5.0)
        except OSError as error:
            raise EngineUnavailable(f"no Flink cluster answers at http://{master} ({error}): start one with "
                                    f"`python -m pipeline.cluster up`, or pass --flink-master HOST:PORT") from None
        if not overview.get("slots-total"):
            raise EngineUnavailable(f"the Flink cluster at http://{master} has no TaskManager slots: start workers "
                                    f"(python -m pipeline.cluster status shows them)")
    elif engine == "portable":
        for name, address in (("job service", _option(args, "--job_endpoint")),
                              ("SDK worker pool", _option(args, "--environment_config"))):
            if not _listening(address):
                raise EngineUnavailable(f"Beam's portable {name} does not answer at {address}: start both with "
                                        f"`python -m pipeline.cluster up --engine portable`")
