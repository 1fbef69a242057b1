"""pipeline/engines/worker.py's pool leaves every worker to end by itself: stop requests name a worker by an id that
two TaskManagers (or one TaskManager's old and new environment) share, and acting on them killed running workers --
a failed job, or a TaskManager waiting for ever."""

import os
import signal
import time

from apache_beam.portability.api import beam_fn_api_pb2, endpoints_pb2

from pipeline.engines.worker import pool_servicer


def start_request(worker_id: str) -> beam_fn_api_pb2.StartWorkerRequest:
    endpoint = endpoints_pb2.ApiServiceDescriptor(url="localhost:1")
    return beam_fn_api_pb2.StartWorkerRequest(worker_id=worker_id, control_endpoint=endpoint,
                                              logging_endpoint=endpoint, artifact_endpoint=endpoint,
                                              provision_endpoint=endpoint)


def state(pid: int) -> str:
    """'running', 'zombie' (ended, not reaped) or 'gone'."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return "zombie" if handle.read().rsplit(")", 1)[1].split()[0] == "Z" else "running"
    except FileNotFoundError:
        return "gone"


def test_stops_never_kill_a_worker_and_ended_workers_are_reaped(tmp_path):
    pids = tmp_path / "pids"
    executable = tmp_path / "boot"  # a worker that records its pid and lives until it is ended
    executable.write_text(f'#!/bin/sh\necho $$ >> "{pids}"\nexec sleep 300\n')
    executable.chmod(0o755)
    servicer = pool_servicer(str(executable))

    def started(count: int) -> list:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = pids.read_text().split() if pids.exists() else []
            if len(found) >= count:
                return [int(pid) for pid in found]
            time.sleep(0.05)
        raise AssertionError(f"{count} workers did not start")

    servicer.StartWorker(start_request("1-1"), None)  # TaskManager 1's first worker
    servicer.StartWorker(start_request("1-1"), None)  # TaskManager 2's first worker: the same id
    first, second = started(2)
    servicer.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="1-1"), None)  # which one did it mean?
    assert state(first) == state(second) == "running"  # Beam's own servicer kills one of them here
    try:
        os.kill(first, signal.SIGTERM)  # as a harness ends when its TaskManager closes its control channel
        deadline = time.monotonic() + 10
        while state(first) == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        servicer.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="1-1"), None)
        assert state(first) == "gone" and servicer.running() == [second]  # reaped: no zombie is left
    finally:
        os.kill(second, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while servicer.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert servicer.running() == [] and state(second) == "gone"
