"""Where the benchmark scripts put their results: printed as JSON and written to benchmarks/results/, with the code
and machine they measured."""

import datetime
import json
import os
import subprocess
from typing import Any, Dict

from tfdet.files import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = ("tfdet", "components", "models", "pipeline", "benchmarks", "setup.py", "requirements.lock")


def provenance() -> Dict[str, Any]:
    """The commit measured, whether the measured code differed from it, the date and the core count."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = [line for line in git("status", "--porcelain", "--", *CODE).splitlines()
               if "benchmarks/results/" not in line]
    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown", "uncommitted_changes": bool(changed),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count()}


# taken when a script imports this module, as its run begins: a long run may outlive the commit it measured
STARTED = provenance()


def save(filename: str, result: Dict[str, Any], show: bool = True) -> str:
    """Writes ``result`` with the :func:`provenance` of the run's start and the time it finished to
    benchmarks/results/``filename`` (printing it first when ``show``), atomically; returns the path."""
    finished = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = {**result, "measured": {**STARTED, "finished": finished}}
    if show:
        print(json.dumps(result, indent=2))
    # atomically: a script that saves as it goes (trees.py's state) must not leave a cut file when stopped mid-write
    return write_json(os.path.join(RESULTS, filename), result)
