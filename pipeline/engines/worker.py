"""The Python SDK workers of a Beam engine: a worker pool beside each TaskManager, and the boot each worker runs.

Beam's Kubernetes layout for Flink runs, beside every TaskManager, a worker pool (``--environment_type=EXTERNAL
--environment_config=localhost:50000``): the TaskManager asks it for an SDK worker per job, and the pool runs a
boot program with Beam's container contract (``--id``, ``--provision_endpoint``, ``--artifact_endpoint``,
``--control_endpoint``, ``--logging_endpoint``). Beam's own boot is a Go program inside its Docker images; this file
is its part that matters here, in Python:

* ``pool --port N``: Beam's worker pool servicer, listening on the loopback only (the TaskManager beside it is its
  one client), whose workers run this file's boot;
* the boot (the contract's arguments): asks the provision service for the job's options and staged artifacts,
  fetches the artifacts from the TaskManager's artifact service, installs the ones Beam's stager lists in
  ``extra_packages.txt`` (the project's code, see :func:`pipeline.engines.beam.worker_package`) into a directory of
  their own, once per set of artifacts, and starts Beam's SDK harness with it on ``PYTHONPATH``.

So a worker needs of the submitting machine only what Beam stages: the interpreter and its installed libraries
(TFX, Beam, TensorFlow) are the host's image, the project's code arrives with the job. The file imports nothing of
the project, so that a host can run it from a copy (``python -m pipeline.engines.cluster up --isolated`` copies it into
each simulated host; on a real cluster, into the TaskManagers' image).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

CONTRACT_ARGS = ("id", "provision_endpoint", "control_endpoint", "logging_endpoint", "artifact_endpoint",
                 "semi_persistent_directory")
EXTRA_PACKAGES_FILE = "extra_packages.txt"  # Beam's stager: the extra packages, in install order


def provision_info(endpoint: str, worker_id: str):
    """The job's ProvisionInfo (pipeline options, endpoints, dependencies) from the provision service."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        return beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", worker_id)]).info


def worker_environment(args: argparse.Namespace, info) -> Dict[str, str]:
    """The environment ``sdk_worker_main`` reads, from the job's ProvisionInfo ``info``."""
    from apache_beam.portability.api import endpoints_pb2
    from google.protobuf import json_format

    def endpoint(provided, fallback: str) -> str:
        return str(provided if provided.url else endpoints_pb2.ApiServiceDescriptor(url=fallback))

    environment = {"WORKER_ID": args.id,
                   "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
                   "CONTROL_API_SERVICE_DESCRIPTOR": endpoint(info.control_endpoint, args.control_endpoint),
                   "LOGGING_API_SERVICE_DESCRIPTOR": endpoint(info.logging_endpoint, args.logging_endpoint),
                   "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities)}
    if args.semi_persistent_directory:
        environment["SEMI_PERSISTENT_DIRECTORY"] = args.semi_persistent_directory
    return environment


def _staged_name(dependency) -> str:
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    if dependency.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
        return ""
    payload = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload)
    return os.path.basename(payload.staged_name)


def fetch_artifacts(endpoint: str, dependencies, directory: str) -> Dict[str, str]:
    """Writes every staged artifact into ``directory`` under its staged name; returns name -> path."""
    import grpc
    from apache_beam.portability.api import beam_artifact_api_pb2, beam_artifact_api_pb2_grpc

    found = {}
    with grpc.insecure_channel(endpoint) as channel:
        service = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
        for dependency in dependencies:
            name = _staged_name(dependency)
            if not name:
                continue
            path = os.path.join(directory, name)
            with open(path, "wb") as handle:
                for chunk in service.GetArtifact(beam_artifact_api_pb2.GetArtifactRequest(artifact=dependency)):
                    handle.write(chunk.data)
            found[name] = path
    return found


def install_dependencies(args: argparse.Namespace, info, cache: str) -> Optional[str]:
    """The staged extra packages, installed (``pip --no-deps``) into ``cache/<digest>/site``; returns that folder, or
    None when the job stages none. Workers of the same job share one install (a file lock keeps them in turn)."""
    if not info.dependencies:
        return None
    digest = hashlib.sha256(b"".join(d.SerializeToString() for d in info.dependencies)).hexdigest()[:24]
    home = os.path.join(cache, digest)
    site = os.path.join(home, "site")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(home, "installed.json")):
            return site
        started = time.monotonic()
        staged = os.path.join(home, "staged")
        os.makedirs(staged, exist_ok=True)
        files = fetch_artifacts(args.artifact_endpoint, info.dependencies, staged)
        packages: List[str] = []
        if EXTRA_PACKAGES_FILE in files:
            with open(files[EXTRA_PACKAGES_FILE]) as handle:
                packages = [files[name] for name in (line.strip() for line in handle) if name in files]
        if packages:
            # the interpreter's own libraries are the image: install the staged code alone, offline
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                       "--disable-pip-version-check", "--target", site, *packages]
            run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"installing the staged packages failed ({' '.join(command)}):\n{run.stdout}")
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(home, "installed.json"), "w") as handle:
            json.dump({"packages": [os.path.basename(p) for p in packages],
                       "seconds": round(time.monotonic() - started, 2)}, handle)
    return site


def boot(argv: Optional[List[str]] = None) -> None:
    """The contract's boot: provision, install what was staged, then become Beam's SDK harness."""
    parser = argparse.ArgumentParser()
    for name in CONTRACT_ARGS:
        parser.add_argument("--" + name, default="")
    args, _ = parser.parse_known_args(argv)
    started = time.monotonic()
    info = provision_info(args.provision_endpoint, args.id)
    environment = dict(os.environ, **worker_environment(args, info))
    site = install_dependencies(args, info, os.path.join(tempfile.gettempdir(), "beam-staged"))
    if site:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [site, environment.get("PYTHONPATH")]))
    print(f"{time.strftime('%H:%M:%S')} worker {args.id} (pid {os.getpid()}): provisioned in "
          f"{time.monotonic() - started:.1f} s; control {environment['CONTROL_API_SERVICE_DESCRIPTOR'].strip()}",
          file=sys.stderr, flush=True)
    # the pool reads nothing from a worker's stdout (a full pipe would stall it): everything goes to stderr
    os.dup2(2, 1)
    command = [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"]
    os.execve(sys.executable, command, environment)


def write_executable(path: str) -> str:
    """Writes the shell wrapper the pool gives as ``container_executable``: this interpreter running this file."""
    with open(path, "w") as handle:
        handle.write(f'#!/bin/sh\nexec "{sys.executable}" "{os.path.abspath(__file__)}" "$@"\n')
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _log(message: str) -> None:
    """A line of the pool's own log (its stderr): what it was asked and what came of it."""
    print(f"{time.strftime('%H:%M:%S')} worker pool: {message}", file=sys.stderr, flush=True)


def pool_servicer(executable: str):
    """Beam's worker pool servicer, except that it leaves each worker to end by itself.

    A stop request names a worker by its id alone, and ids are not unique: every TaskManager numbers its workers
    from ``1-1``, and gives its next environment the id of the one it has just closed. Acting on stops, as Beam's
    servicer does (one process per id), killed another TaskManager's running worker, or the new worker of the same
    TaskManager when its start overtook the old one's stop: the job failed, or its TaskManager waited for ever
    ("Still waiting for startup of environment"). A TaskManager closes a worker's control channel before it asks
    to stop it, and Beam's SDK harness ends when its control channel closes, so the pool only reaps the workers
    that have ended; ``cluster down`` ends the pool's process group, workers included.
    """
    import threading

    from apache_beam.portability.api import beam_fn_api_pb2
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer

    class SelfEndingWorkersServicer(BeamFnExternalWorkerPoolServicer):
        def __init__(self) -> None:
            super().__init__(use_process=True, container_executable=executable)
            self._lock = threading.Lock()
            self._running: List[subprocess.Popen] = []

        def _reap(self) -> None:
            for process in [p for p in self._running if p.poll() is not None]:
                self._running.remove(process)
                _log(f"worker pid {process.pid} ended with status {process.returncode}")

        def StartWorker(self, request, context):  # noqa: N802  (gRPC's method name)
            with self._lock:  # Beam's servicer files the process under its id; it moves here at once
                response = super().StartWorker(request, context)
                process = self._worker_processes.pop(request.worker_id, None)
                if process is not None:
                    self._running.append(process)
                self._reap()
            _log(f"started worker {request.worker_id}: pid {process.pid if process else None} "
                 f"{response.error.strip().splitlines()[-1] if response.error else ''}")
            return response

        def StopWorker(self, request, context):  # noqa: N802
            with self._lock:
                self._reap()
                alive = len(self._running)
            _log(f"stop of worker {request.worker_id} asked: left to end by itself ({alive} workers running)")
            return beam_fn_api_pb2.StopWorkerResponse()

        def running(self) -> List[int]:
            """The pids of the workers that have not ended (reaping those that have)."""
            with self._lock:
                self._reap()
                return [process.pid for process in self._running]

    return SelfEndingWorkersServicer()


def pool(port: int, host: str = "localhost") -> None:
    """Beam's worker pool servicer on ``host:port``, starting each SDK worker through :func:`boot`."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.utils import thread_pool_executor

    executable = write_executable(os.path.join(tempfile.mkdtemp(prefix="beam-boot-"), "boot"))
    server = grpc.server(thread_pool_executor.shared_unbounded_instance())
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise SystemExit(f"the worker pool cannot listen on {host}:{port}: is another program using the port?")
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool_servicer(executable), server)
    server.start()
    print(f"Beam worker pool listening on {host}:{bound}; workers boot with {executable}", file=sys.stderr,
          flush=True)
    server.wait_for_termination()


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pool"]:
        parser = argparse.ArgumentParser(prog="worker.py pool")
        parser.add_argument("--port", type=int, default=50000)
        parser.add_argument("--host", default="localhost")
        options = parser.parse_args(argv[1:])
        pool(options.port, options.host)
    else:
        boot(argv)


if __name__ == "__main__":
    main()
