"""Seed records as a JSON list or JSON lines -> seed records (``tfdet convert records``)."""

from __future__ import annotations

import argparse
import json
from typing import List

from tfdet.dataio.importers.common import Imported, Importer
from tfdet.registry import IMPORTERS


def read_seed_records(path: str) -> List[dict]:
    """The records of ``path``: a JSON list, or one JSON object per line."""
    with open(path) as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@IMPORTERS.register("records")
class RecordsImporter(Importer):
    """``tfdet convert records --input records.jsonl [--num-classes N]``."""

    help = "seed records as a JSON list or JSON lines"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--input", required=True)
        parser.add_argument("--num-classes", type=int, default=None)

    @staticmethod
    def load(args: argparse.Namespace) -> Imported:
        records = read_seed_records(args.input)
        return Imported(records, num_classes=args.num_classes, summary=f"records: {len(records)} in {args.input}")
