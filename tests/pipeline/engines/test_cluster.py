"""pipeline/engines/cluster.py on the engine that needs no Java: Beam's portable job service and an SDK worker pool.

(The Flink cluster, with its TaskManager killed mid-job, is ``test_flink_cluster.py`` in ``make test-slow``.)
"""

import os

import pytest

from pipeline.engines import cluster
from pipeline.engines.beam import free_port


@pytest.mark.timeout(300)
def test_the_portable_engine_starts_keeps_its_temporary_files_in_its_scratch_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDET_HOME", str(tmp_path / "home"))
    scratch = cluster.scratch_dir(cluster.state_dir("portable"))
    os.makedirs(scratch)
    open(os.path.join(scratch, "left-by-a-killed-worker"), "w").close()
    state = cluster.up("portable", job_port=free_port(), worker_pool_port=free_port())
    try:
        assert "left-by-a-killed-worker" not in os.listdir(scratch)  # `up` empties what an earlier engine left
        assert cluster.up("portable") == state  # idempotent
        pids = {name: entry["pid"] for name, entry in state["processes"].items()}
        assert sorted(pids) == ["job-service", "worker-pool"] and all(map(cluster.alive, pids.values()))
        for pid in pids.values():  # the SDK workers they start inherit it
            with open(f"/proc/{pid}/environ", "rb") as handle:
                assert f"TMPDIR={scratch}".encode() in handle.read().split(b"\0")
        assert "not a distributed engine" in cluster.render_status(cluster.status("portable"))
    finally:
        stopped = cluster.down("portable")
    assert stopped and not any(map(cluster.alive, [state["supervisor"], *pids.values()]))
    assert not os.path.exists(scratch)
    assert cluster.read_state("portable") is None and cluster.down("portable") is False
