"""pipeline/operations/console.py: the shutdown noise of TensorFlow processes is dropped from the runner's stderr, and
nothing else is; Beam's wait for its job server is kept off the console."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BLOCK = ("Exception ignored in: <function AtomicFunction.__del__ at 0x7f00>\n"
         "Traceback (most recent call last):\n"
         '  File "atomic_function.py", line 291, in __del__\n'
         "TypeError: 'NoneType' object is not subscriptable\n")


def run_filtered(child_writes: str) -> str:
    """stderr of a process that installs the filter and starts a child (as Beam starts its workers) writing
    ``child_writes`` to the stderr it inherits."""
    child = f"import sys; sys.stderr.write({child_writes!r})"
    program = "\n".join([
        "import subprocess, sys", f"sys.path.insert(0, {REPO!r})",
        "from pipeline.operations.console import drop_from_stderr", "drop_from_stderr()",
        "print('parent before', file=sys.stderr)", f"subprocess.run([sys.executable, '-c', {child!r}])",
        "print('parent after', file=sys.stderr)"])
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stderr


def test_the_tensorflow_shutdown_block_is_dropped_and_everything_else_kept():
    assert run_filtered(f"kept 1\n{BLOCK}{BLOCK}kept 2\n") == "parent before\nkept 1\nkept 2\nparent after\n"


def test_a_block_that_does_not_end_as_expected_is_passed_through():
    unfinished = BLOCK.splitlines(keepends=True)[0] + "".join(f"line {i}\n" for i in range(12))
    printed = run_filtered(unfinished)
    assert printed == "parent before\n" + unfinished + "parent after\n"


def test_beams_wait_for_its_job_server_is_kept_off_the_console_unless_verbose():
    """Beam warns through the root logger while a slow job server starts (Flink's); the quiet console drops that and
    nothing else, --verbose keeps it."""
    program = "\n".join([
        "import logging, sys", f"sys.path.insert(0, {REPO!r})", "logging.basicConfig(format='%(message)s')",
        "from pipeline.operations.console import quiet_console", "quiet_console(verbose=sys.argv[1] == 'verbose')",
        "logging.log(logging.WARNING, 'Waiting for grpc channel to be ready at %s.', 'localhost:8099')",
        "logging.warning('a real warning')"])
    printed = {mode: subprocess.run([sys.executable, "-c", program, mode], capture_output=True, text=True,
                                    check=True).stderr for mode in ("quiet", "verbose")}
    assert printed["quiet"] == "a real warning\n"
    assert printed["verbose"] == "Waiting for grpc channel to be ready at localhost:8099.\na real warning\n"
