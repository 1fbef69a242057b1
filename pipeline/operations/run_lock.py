"""One pipeline run at a time per output root: the runs share its MLMD database, span registry and serving directory.

``python -m pipeline.local_runner`` holds ``<output root>/run.lock`` for the whole run: an exclusive ``flock`` that the
kernel releases when the process ends however it ends (so a lock whose process is gone is never in the way), and the
holder's pid, host, start time and command written in the file for whoever finds it taken. ``rollback`` takes it too;
``status`` only reads it, to say that a run is in progress.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from typing import Any, Dict, Optional

LOCK_FILE = "run.lock"


class RunInProgress(RuntimeError):
    """Another process holds the output root; the message names it."""


def _describe(holder: Optional[Dict[str, Any]], path: str) -> str:
    if not holder:
        return f"another process holds {path}"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (f"another run holds {path}: pid {holder.get('pid')} on {holder.get('host')}, started {started} "
            f"({holder.get('command', '?')})")


def holder(output_root: str) -> Optional[Dict[str, Any]]:
    """Who holds the lock of ``output_root`` now (pid, host, started, command), or None when it is free."""
    path = os.path.join(output_root, LOCK_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(handle.read() or "{}")
            except ValueError:
                return {}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


class RunLock:
    """``with RunLock(output_root, wait=False):`` -- the output root for this process alone.

    Raises :class:`RunInProgress` at once when another process holds it, or, with ``wait``, blocks until it is free
    (``timeout`` seconds at most, None for ever).
    """

    def __init__(self, output_root: str, wait: bool = False, timeout: Optional[float] = None,
                 command: Optional[str] = None) -> None:
        self.path = os.path.join(output_root, LOCK_FILE)
        self.wait, self.timeout = wait, timeout
        self.command = command or " ".join(["python", *sys.argv])
        self._handle = None

    def __enter__(self) -> RunLock:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        handle = open(self.path, "a+")
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait or (deadline is not None and time.monotonic() > deadline):
                    handle.seek(0)
                    try:
                        found = json.loads(handle.read() or "{}")
                    except ValueError:
                        found = {}
                    handle.close()
                    raise RunInProgress(_describe(found, self.path)) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                 "command": self.command}))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc_info) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
