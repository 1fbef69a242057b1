"""Two pipeline runs at once on one output root -- ``make test-slow``: while the first runs, a second refuses at once
naming it, a third with ``--wait`` starts when the first is done; the MLMD database, the accepted-span registry and
the serving directory stay consistent (one span registered once, one version, every execution complete or cached)."""

import json
import os
import subprocess
import sys
import time

import pytest
from learnable_data import write_span  # tests/ is on the path (its conftest)
from ml_metadata.proto import metadata_store_pb2

from pipeline.configs import output_layout
from pipeline.operations.run_lock import LOCK_FILE, holder
from pipeline.operations.served import _store
from tfdet.export.serving import versions

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["--model-config", "tiny", "--num-classes", "2", "--train-steps", "20", "--min-map50", "0", "--seed", "0",
        "--beam", "in-memory"]


def start(data_root, output_root, *extra):
    return subprocess.Popen([sys.executable, "-m", "pipeline.local_runner", "--data-root", str(data_root),
                             "--output-root", str(output_root), *ARGS, *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(1800)
def test_a_second_run_refuses_a_third_waits_and_the_outputs_stay_consistent(tmp_path):
    data_root, output_root = tmp_path / "data", tmp_path / "out"
    write_span(str(data_root), 1)
    first = start(data_root, output_root)
    deadline = time.monotonic() + 120
    while not holder(str(output_root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert holder(str(output_root))["pid"] == first.pid
    second = start(data_root, output_root)
    assert second.wait(120) == 2  # at once: the first is still training
    (line,) = second.stderr.read().strip().splitlines()
    assert line.startswith(f"error: another run holds {output_root / LOCK_FILE}: pid {first.pid} on ")
    assert first.poll() is None
    third = start(data_root, output_root, "--wait")
    first_out, _ = first.communicate(timeout=1500)
    third_out, third_err = third.communicate(timeout=600)
    assert first.returncode == 0 and third.returncode == 0, third_out[-2000:] + third_err[-2000:]
    layout = output_layout(str(output_root))
    store = _store(layout["metadata_path"])
    states = {e.last_known_state for e in store.get_executions()}
    assert states <= {metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED}, states
    assert metadata_store_pb2.Execution.CACHED in states  # the third ran after the first, on its outputs
    registry = os.path.join(layout["pipeline_root"], "accepted_spans")
    assert sorted(os.listdir(registry)) == ["span-1.json", "span-1.profile.json"]
    assert json.load(open(os.path.join(registry, "span-1.json")))["examples_checked"] == {"train": 48, "eval": 16}
    assert len(versions(layout["serving_model_dir"])) == 1
    assert sorted(os.listdir(layout["serving_model_dir"])) == [os.path.basename(versions(
        layout["serving_model_dir"])[0])]
    assert holder(str(output_root)) is None
