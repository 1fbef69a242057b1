"""tfdet: one-stage object detection in TensorFlow, from your annotations to a served model.

    tfdet convert coco|voc|records|images ...   annotations -> validated TFRecords
    tfdet generate --root data                  the embedded default dataset
    tfdet inspect "data/default/span-1/train-*.tfrecord"
    tfdet models                                the zoo
    tfdet train CONFIG --data ... --work-dir runs/x [--load-from DETECTOR] [--seed N]
    tfdet predict MODEL IMAGES... --out DIR
    tfdet evaluate MODEL --data ...
    tfdet report MODEL --data ... --out card.html   the model card
    tfdet export MODEL --format saved_model|tflite --out ...
    tfdet weights list|fetch|convert

``tfdet <command> --help`` shows each command's options and examples.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter (CUDA, TensorRT, oneDNN)
warnings.filterwarnings("ignore", message=".*non-supported Python version.*")

from tfdet.cli import data, models, weights  # noqa: E402
from tfdet.cli.data import inspect_records  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    summary, usage = __doc__.split("\n\n")[:2]
    epilog = "commands:\n" + usage.replace("    tfdet", "  tfdet") + "\n\n" + __doc__.split("\n\n")[2]
    parser = argparse.ArgumentParser(prog="tfdet", description=summary, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (data, models, weights):
        module.add_commands(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``tfdet`` command."""
    args = _parser().parse_args(argv)
    import tfdet  # noqa: F401  (selects tf_keras before TensorFlow loads)
    from tfdet.dataio.annotations import RecordError
    from tfdet.dataio.workers import WorkerError
    from tfdet.weights import FetchError

    try:
        return args.handler(args)
    except (RecordError, WorkerError, FetchError, FileNotFoundError, ValueError, KeyError) as error:
        print(f"tfdet {args.command}: error: {error}", file=sys.stderr)
        return 2


__all__ = ["inspect_records", "main"]

if __name__ == "__main__":
    sys.exit(main())
