"""What every peers worker shares, whatever its environment: its arguments, the inference clock, the error record."""

import argparse
import statistics
import time
import traceback
from typing import Callable


def worker_arguments() -> argparse.Namespace:
    """--precision, --mode infer|train, --size, --num-classes, --repeats (and --model, --set for tfdet's worker)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="retinanet_resnet50_fpn", help="tfdet's worker only")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--mode", choices=("infer", "train"), required=True)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--num-classes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="tfdet's worker only")
    return parser.parse_args()


def median_seconds(detect: Callable, image, repeats: int, fetch: Callable) -> float:
    """Median wall time of ``fetch(detect(image))`` (``fetch`` forces the result to the host) over ``repeats``
    calls after two warm-up calls (tracing)."""
    for _ in range(2):
        fetch(detect(image))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fetch(detect(image))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def record_failure(result: dict, error: Exception) -> None:
    """A worker that fails still prints a result: the error's first line and the traceback's end."""
    result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
    result["traceback"] = traceback.format_exc()[-1500:]
