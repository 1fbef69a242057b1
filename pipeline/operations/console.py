"""A readable console for pipeline runs: one line per component as it starts and as it ends.

TFX, Beam, absl and TensorFlow log hundreds of lines per run. :func:`quiet_console` keeps them out
of the terminal (``--verbose`` lets them through) and prints instead::

    19:02:11  ImportExampleGen ...
    19:02:14  ImportExampleGen  COMPLETE  3.1 s
    19:02:14  StatisticsGen ...
    19:02:15  StatisticsGen     CACHED    0.4 s

It reads the LocalDagRunner's own log records ("Component X is running." / "is finished." / "A
cached execution ... is used."); a component whose run raises is reported FAILED by :meth:`failed`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import Optional, TextIO, Tuple

# Beam logs this through the root logger, as a warning once its job server has taken more than a few seconds to
# start (Flink's does on a busy machine): a wait, not a fault
ROOT_NOISE = ("Waiting for grpc channel to be ready at",)
NOISY_LOGGERS = ("absl", "apache_beam", "tensorflow", "tfx", "ml_metadata", "tensorflow_transform",
                 "tensorflow_data_validation", "tensorflow_model_analysis", "py.warnings", "h5py", "matplotlib")


class ComponentProgress(logging.Handler):
    """A logging handler that turns the runner's component records into progress lines."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        super().__init__(logging.INFO)
        self.stream = stream or sys.stdout
        self.current: Optional[str] = None
        self.started = 0.0
        self.cached = False
        self.lines = []

    def _print(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')}  {text}"
        self.lines.append(line)
        print(line, file=self.stream, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Component ") and message.endswith(" is running."):
            self.current, self.started, self.cached = message[len("Component "):-len(" is running.")], \
                time.perf_counter(), False
            self._print(f"{self.current} ...")
        elif message.startswith("A cached execution ") and message.endswith(" is used."):
            self.cached = True
        elif message.startswith("Component ") and message.endswith(" is finished.") and self.current:
            self._end("CACHED" if self.cached else "COMPLETE")

    def _end(self, status: str) -> None:
        self._print(f"{self.current:22s} {status:9s} {time.perf_counter() - self.started:.1f} s")
        self.current = None

    def failed(self) -> None:
        """Reports the running component as FAILED (call it when the run raised)."""
        if self.current:
            self._end("FAILED")


class DropRootNoise(logging.Filter):
    """Drops the root logger's records that start with one of :data:`ROOT_NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ROOT_NOISE)


def quiet_console(verbose: bool = False) -> ComponentProgress:
    """Installs the progress lines; without ``verbose`` third-party logging is kept off the terminal.

    Returns the handler (its :meth:`ComponentProgress.failed` marks a failing component).
    """
    progress = ComponentProgress()
    absl = logging.getLogger("absl")
    absl.setLevel(logging.INFO)
    absl.addHandler(progress)
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # Beam's worker processes read it too
        absl.propagate = False
        logging.getLogger().addFilter(DropRootNoise())
        for name in NOISY_LOGGERS[1:]:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.INFO)  # the runner's records still reach the handler
            absl_logging.set_stderrthreshold(absl_logging.ERROR)
        except ImportError:  # pragma: no cover - absl comes with TFX
            pass
    return progress


# A TensorFlow process that exits while holding tf.functions (Beam's DirectRunner workers do) prints this block for
# each of them: Python has already torn down the module that AtomicFunction.__del__ needs. It is harmless.
SHUTDOWN_NOISE = ("Exception ignored in: <function AtomicFunction.__del__",
                  "TypeError: 'NoneType' object is not subscriptable")
_LONGEST_BLOCK = 8  # lines; a block that does not end by then is passed through as it came
_filtering = []


def drop_from_stderr(block: Tuple[str, str] = SHUTDOWN_NOISE) -> None:
    """Routes this process's stderr (file descriptor 2, which its child processes inherit) through a thread that
    drops every block of lines from one starting with ``block[0]`` to the next starting with ``block[1]``.

    Once per process; stderr is restored and drained at exit.
    """
    if _filtering:
        return
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    real = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    start, end = (text.encode() for text in block)

    def pump() -> None:
        out = os.fdopen(real, "wb", buffering=0)
        held = []
        with os.fdopen(read_fd, "rb") as reader:
            for line in reader:
                if held or line.startswith(start):
                    held.append(line)
                    if line.startswith(end):
                        held = []
                    elif len(held) > _LONGEST_BLOCK:
                        out.write(b"".join(held))
                        held = []
                    continue
                out.write(line)
        out.write(b"".join(held))

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    _filtering.append(thread)

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes this process's end of the pipe; children that outlive it keep theirs
        thread.join(timeout=2.0)

    atexit.register(restore)
