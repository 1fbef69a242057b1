"""What every peers worker shares, whatever its environment: its arguments, the training batch's ground truth,
the inference clock and the one JSON line it prints."""

import argparse
import json
import statistics
import time
import traceback
from typing import Callable

# the fixed training batch's ground truth, the same for every system: (ymin, xmin, ymax, xmax) pixels and
# class ids of three objects, in each of the batch's two images
BOXES = [[40, 40, 200, 220], [250, 100, 400, 300], [10, 300, 120, 500]]
CLASSES = [1, 5, 7]


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


def report(result: dict, measure: Callable[[], None]) -> None:
    """Runs ``measure`` (which fills ``result``) and prints ``result`` as one JSON line; a worker that fails still
    prints one, with the error's first line and the traceback's end."""
    try:
        measure()
    except Exception as error:  # a system that fails is a result too
        result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
        result["traceback"] = traceback.format_exc()[-1500:]
    print(json.dumps(result))
