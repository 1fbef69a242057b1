"""pipeline/engines/worker.py's pool: a stop request stops the worker it was meant for, even when the start of the
TaskManager's next worker, under the same id, overtakes it (which left Flink waiting for ever on a killed worker)."""

import os
import time

from apache_beam.portability.api import beam_fn_api_pb2, endpoints_pb2

from pipeline.engines.worker import pool_servicer


def start_request(worker_id: str) -> beam_fn_api_pb2.StartWorkerRequest:
    endpoint = endpoints_pb2.ApiServiceDescriptor(url="localhost:1")
    return beam_fn_api_pb2.StartWorkerRequest(worker_id=worker_id, control_endpoint=endpoint,
                                              logging_endpoint=endpoint, artifact_endpoint=endpoint,
                                              provision_endpoint=endpoint)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"


def test_a_stop_overtaken_by_the_next_start_of_the_same_id_stops_the_older_worker(tmp_path):
    pids = tmp_path / "pids"
    executable = tmp_path / "boot"  # a worker that records its pid and lives until stopped
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

    servicer.StartWorker(start_request("2-1"), None)
    (first,) = started(1)
    servicer.StartWorker(start_request("2-1"), None)  # the next environment's worker, before the first's stop
    second = started(2)[1]
    servicer.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="2-1"), None)
    assert not alive(first) and alive(second)  # Beam's own servicer stops the second one here
    servicer.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="2-1"), None)
    assert not alive(second)
    servicer.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="2-1"), None)  # nothing left: no error
