"""Where the pipeline's Beam steps run: an engine chosen by name, and the Beam arguments that send them there.

The Beam steps are both ExampleGens, StatisticsGen, BoxGate's scan, Transform, the Evaluator, BulkInferrer and
BatchDetections. Engines:

* ``direct``: Beam's DirectRunner with one worker process per core (the default);
* ``in-memory``: the DirectRunner inside the runner's process (starts fastest on small data);
* ``flink``: a Flink cluster through Beam's Flink job server; ``python -m pipeline.engines.cluster up`` starts one here,
  ``flink_master`` points at another. Every job runs at the cluster's slot count (:func:`runtime_args`); the
  Python SDK workers come from a worker pool beside each TaskManager (Beam's Kubernetes layout,
  :mod:`pipeline.engines.worker`) and install the project's code that Beam stages with the job
  (:func:`worker_package`); pass ``--environment_type`` / ``--environment_config`` in the extra arguments for
  another layout (Docker);
* ``portable``: Beam's portable job service and one SDK worker pool (``python -m pipeline.engines.cluster up --engine
  portable``): the protocol Flink speaks, in one process: **not** a distributed engine;
* ``dataflow``: Google Cloud Dataflow by its documented arguments (``configs.DATAFLOW_ARGS``: fill in your project).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence

from pipeline import REPO_ROOT
from pipeline.engines import flink
from tfdet.files import cache_dir

ENGINES: Dict[str, str] = {
    "direct": "Beam's DirectRunner, one worker process per core",
    "in-memory": "Beam's DirectRunner in this process",
    "flink": "a Flink cluster (python -m pipeline.engines.cluster up, or --flink-master HOST:PORT)",
    "portable": "Beam's portable job service + one SDK worker pool (not distributed)",
    "dataflow": "Google Cloud Dataflow (configs.DATAFLOW_ARGS)",
}
# the options that name the workers' dependencies: with none of them, TFX's Beam executors would stage an sdist of TFX
TFX_DEPENDENCY_OPTIONS = ("--extra_package", "--extra_packages", "--setup_file", "--requirements_file",
                          "--worker_harness_container_image", "--sdk_container_image")
# what the Beam workers import of the project, staged with every job (worker_package)
WORKER_PACKAGES = ("tfdet", "components", "models")
WORKER_DISTRIBUTION = "tfdet_pipeline_code"
PORTABLE_JOB_ENDPOINT = "localhost:8099"
PORTABLE_WORKER_POOL = "localhost:50000"


class EngineUnavailable(RuntimeError):
    """The chosen engine cannot take jobs (not running, unreachable, or missing a part); the message says why."""


def _has(args: Sequence[str], option: str) -> bool:
    return any(arg == option or arg.startswith(option + "=") for arg in args)


def beam_args(engine: str, flink_master: str = f"localhost:{flink.REST_PORT}", extra: Sequence[str] = (),
              dataflow_args: Sequence[str] = (), staging_root: str = "") -> List[str]:
    """The Beam pipeline arguments of ``engine``, followed by ``extra`` (which win where they overlap).

    ``staging_root``: a folder every Flink worker reads (the pipeline root), where Beam's job server stages the job's
    artifacts for the workers to fetch (default: this machine's cache, which only local workers can read).
    """
    extra = list(extra)
    if engine == "direct":
        args = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    elif engine == "in-memory":
        args = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    elif engine == "flink":
        args = ["--runner=pipeline.engines.flink_runner.FlinkRunner", f"--flink_master={flink_master}",
                f"--flink_version={flink.BEAM_FLINK_VERSION}"]
        if not _has(extra, "--flink_job_server_jar"):
            args.append(f"--flink_job_server_jar={flink.job_server_jar()}")
        if not _has(extra, "--job_port"):
            # one job-server command for every component of a run: Beam's subprocess cache then shares one JVM
            # (it stops a job server only when the process exits, so each component would otherwise leave one)
            artifacts = (os.path.join(staging_root, "beam_artifacts") if staging_root
                         else cache_dir("flink", "artifacts"))
            args += [f"--job_port={free_port()}", f"--artifacts_dir={artifacts}"]
        if not _has(extra, "--environment_type"):
            # Beam's Kubernetes layout: a worker pool beside each TaskManager (python -m pipeline.engines.cluster up
            # starts them); the workers install what the job stages, so they need nothing else of this machine
            args += ["--environment_type=EXTERNAL", f"--environment_config=localhost:{flink.WORKER_POOL_PORT}"]
    elif engine == "portable":
        args = ["--runner=PortableRunner", f"--job_endpoint={PORTABLE_JOB_ENDPOINT}", "--environment_type=EXTERNAL",
                f"--environment_config={PORTABLE_WORKER_POOL}"]
    elif engine == "dataflow":
        args = ["--runner=DataflowRunner", *dataflow_args]
    else:
        raise ValueError(f"Beam engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return args + extra


def _source_files(root: str) -> List[str]:
    """The project's worker code under ``root``: every .py file of :data:`WORKER_PACKAGES`, sorted."""
    found = []
    for package in WORKER_PACKAGES:
        for directory, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            found += [os.path.relpath(os.path.join(directory, f), root) for f in sorted(files) if f.endswith(".py")]
    return found


def worker_package(root: str = REPO_ROOT) -> str:
    """The project's code for remote Beam workers (:data:`WORKER_PACKAGES`) as a wheel, built once per content.

    Beam stages it with every job (``--extra_package``) and the workers install it (:mod:`pipeline.engines.worker`):
    their DoFns (BoxGate's scan, BatchDetections) live in ``components`` and ``tfdet``. Passing it also keeps TFX's
    executors from building and staging an sdist of TFX per component, which the workers' image already has.
    """
    files = _source_files(root)
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(root, name), "rb") as handle:
            digest.update(handle.read() + b"\0")
    version = f"0.0.0+{digest.hexdigest()[:16]}"
    path = os.path.join(cache_dir("worker_packages"), f"{WORKER_DISTRIBUTION}-{version}-py3-none-any.whl")
    if os.path.isfile(path):
        return path
    with tempfile.TemporaryDirectory() as scratch:
        source = os.path.join(scratch, "src")
        for name in files:
            os.makedirs(os.path.dirname(os.path.join(source, name)), exist_ok=True)
            shutil.copyfile(os.path.join(root, name), os.path.join(source, name))
        with open(os.path.join(source, "setup.py"), "w") as handle:
            handle.write(f"from setuptools import setup, find_packages\nsetup(name={WORKER_DISTRIBUTION!r}, "
                         f"version={version!r}, packages=find_packages(include={list(WORKER_PACKAGES)!r} + "
                         f"[p + '.*' for p in {list(WORKER_PACKAGES)!r}]))\n")
        built = os.path.join(scratch, "wheel")
        run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                              "--disable-pip-version-check", "--wheel-dir", built, source],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"building the workers' package failed: {run.stderr.strip()[-2000:]}")
        (wheel,) = os.listdir(built)
        partial = f"{path}.partial-{os.getpid()}"
        shutil.copyfile(os.path.join(built, wheel), partial)
        os.replace(partial, path)
    return path


def runtime_args(engine: str, args: Sequence[str]) -> List[str]:
    """What a run adds to ``args`` once the engine is known to take jobs: the project's package for the workers
    (unless ``args`` name the workers' dependencies) and, on Flink, ``--parallelism`` = the cluster's slots (Beam's
    job server reads no Flink configuration: without it every operator runs at parallelism 1)."""
    added = []
    if not any(_has(args, option) for option in TFX_DEPENDENCY_OPTIONS):
        added.append(f"--extra_package={worker_package()}")
    if engine == "flink" and not _has(args, "--parallelism"):
        added.append(f"--parallelism={flink_slots(_option(args, '--flink_master'))}")
    return added


def flink_slots(master: str) -> int:
    """The task slots of the Flink cluster at ``master`` (its REST address), by its own REST API."""
    from pipeline.engines.cluster import rest

    return int(rest(master, "/overview", timeout=5.0)["slots-total"])


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
            raise EngineUnavailable(f"Beam's Flink job server {jar} does not exist: run `python -m "
                                    f"pipeline.engines.cluster fetch`")
        master = _option(args, "--flink_master")
        from pipeline.engines.cluster import rest

        try:
            overview = rest(master, "/overview", timeout=5.0)
        except OSError as error:
            raise EngineUnavailable(f"no Flink cluster answers at http://{master} ({error}): start one with "
                                    f"`python -m pipeline.engines.cluster up`, or pass --flink-master "
                                    f"HOST:PORT") from None
        if not overview.get("slots-total"):
            raise EngineUnavailable(f"the Flink cluster at http://{master} has no TaskManager slots: start workers "
                                    f"(python -m pipeline.engines.cluster status shows them)")
    elif engine == "portable":
        for name, address in (("job service", _option(args, "--job_endpoint")),
                              ("SDK worker pool", _option(args, "--environment_config"))):
            if not _listening(address):
                raise EngineUnavailable(f"Beam's portable {name} does not answer at {address}: start both with "
                                        f"`python -m pipeline.engines.cluster up --engine portable`")
