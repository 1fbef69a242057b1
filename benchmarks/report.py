"""Where the benchmark scripts put their results: printed as JSON and written to benchmarks/results/."""

import json
import os
from typing import Any, Dict

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def save(filename: str, result: Dict[str, Any], show: bool = True) -> str:
    """Writes ``result`` to benchmarks/results/``filename`` (printing it first when ``show``); returns the path."""
    if show:
        print(json.dumps(result, indent=2))
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, filename)
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2)
    return path
