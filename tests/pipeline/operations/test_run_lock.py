"""pipeline/operations/run_lock.py and its use by the local runner: one run at a time per output root, a stale lock
never in the way, status and rollback honouring it -- with real processes holding the lock."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.local_runner import main
from pipeline.operations.run_lock import LOCK_FILE, RunInProgress, RunLock, holder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HOLD = ("import sys, time; sys.path.insert(0, {repo!r}); from pipeline.operations.run_lock import RunLock\n"
        "with RunLock({root!r}, command='the holder'):\n"
        "    print('held', flush=True); time.sleep(float(sys.argv[1]))\n")


def hold(root, seconds=60.0):
    """A process that holds the output root's lock for ``seconds``; returns once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD.format(repo=REPO, root=str(root)), str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_holder_is_refused_at_once_naming_the_first(tmp_path):
    first = hold(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(RunInProgress) as refused:
            with RunLock(str(tmp_path)):
                pass
        assert time.monotonic() - started < 2
        message = str(refused.value)
        assert message.startswith(f"another run holds {tmp_path / LOCK_FILE}: pid {first.pid} on ")
        assert message.endswith("(the holder)")
        assert holder(str(tmp_path))["pid"] == first.pid
    finally:
        first.kill()
        first.wait()


def test_a_lock_whose_process_died_is_free_and_waiting_takes_it_when_it_is(tmp_path):
    first = hold(tmp_path)
    os.kill(first.pid, signal.SIGKILL)  # no clean-up: the kernel drops the flock with the process
    first.wait()
    assert holder(str(tmp_path)) is None
    with RunLock(str(tmp_path)) as lock:
        assert json.load(open(lock.path))["pid"] == os.getpid()
    second = hold(tmp_path, seconds=2.0)
    started = time.monotonic()
    with RunLock(str(tmp_path), wait=True):
        waited = time.monotonic() - started
    second.wait()
    assert 0.5 < waited < 10  # blocked until the holder let go, then ran
    with pytest.raises(RunInProgress):
        with RunLock(str(tmp_path)):
            with RunLock(str(tmp_path), wait=True, timeout=0.5):
                pass


def test_the_runner_refuses_a_second_run_with_exit_2_and_rollback_too(tmp_path, capsys):
    first = hold(tmp_path)
    try:
        assert main(["--output-root", str(tmp_path), "--data-root", str(tmp_path / "data")]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"error: another run holds {tmp_path / LOCK_FILE}: pid {first.pid} on ")
        assert error.endswith("(the holder): wait for it to finish, or pass --wait to start when it has")
        os.makedirs(tmp_path / "metadata" / "tfdet")
        (tmp_path / "metadata" / "tfdet" / "metadata.db").write_bytes(b"")
        assert main(["rollback", "--output-root", str(tmp_path), "--to", "1"]) == 2
        assert capsys.readouterr().err.startswith(f"rollback: another run holds {tmp_path / LOCK_FILE}: pid "
                                                  f"{first.pid}")
    finally:
        first.kill()
        first.wait()
