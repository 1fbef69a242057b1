"""The Python SDK worker that a Beam engine's workers start: Beam's container boot, in the project's environment.

A Flink TaskManager running a portable Beam job with ``--environment_type=PROCESS`` starts one command per SDK
worker, with the container contract's arguments (``--id``, ``--provision_endpoint``, ``--control_endpoint``,
``--logging_endpoint``, ...). Beam's own boot for that contract is a Go program inside its Docker images; this
module does its part that matters here in Python: it asks the provision service for the job's pipeline options and
endpoints and starts :func:`apache_beam.runners.worker.sdk_worker_main.main` with them. Staged artifacts are not
installed: the worker runs the project's own interpreter with the repository on ``PYTHONPATH`` (the wrapper script
:func:`write_launcher` writes), so TFX, tfdet and the ``models`` / ``components`` modules are already importable.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import Dict, List, Optional

CONTRACT_ARGS = ("id", "provision_endpoint", "control_endpoint", "logging_endpoint", "artifact_endpoint",
                 "semi_persistent_directory")


def worker_environment(args: argparse.Namespace) -> Dict[str, str]:
    """The environment ``sdk_worker_main`` reads, from the job's provision service."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc, endpoints_pb2
    from google.protobuf import json_format

    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)]).info

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


def write_launcher(path: str, python: Optional[str] = None, repo_root: Optional[str] = None) -> str:
    """Writes the executable that ``--environment_config={"command": path}`` names; returns ``path``.

    It runs this module with ``python`` (default: the running interpreter, i.e. the project's virtualenv) and
    ``repo_root`` first on ``PYTHONPATH`` (default: this checkout).
    """
    python = python or sys.executable
    repo_root = repo_root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(path, "w") as handle:
        handle.write(f'#!/bin/sh\nexport PYTHONPATH="{repo_root}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
                     f'exec "{python}" -m pipeline.beam_worker "$@"\n')
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in CONTRACT_ARGS:
        parser.add_argument("--" + name, default="")
    args, _ = parser.parse_known_args(argv)
    os.environ.update(worker_environment(args))
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
