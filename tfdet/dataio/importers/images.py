"""A folder of images without annotations -> seed records without boxes (``tfdet convert images``), for the
pipeline's batch inference."""

from __future__ import annotations

import argparse
import os
from typing import List

from tfdet.dataio.importers.common import Imported, Importer
from tfdet.registry import IMPORTERS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def unlabelled_records(image_dir: str) -> List[dict]:
    """Converter records without boxes for every JPEG / PNG below ``image_dir`` (sorted; the source_id is the
    path relative to ``image_dir``)."""
    if not os.path.isdir(image_dir):
        raise ValueError(f"--images {image_dir!r} is not a directory")
    records = []
    for folder, _, names in sorted(os.walk(image_dir)):
        for name in sorted(names):
            if name.lower().endswith(IMAGE_SUFFIXES):
                path = os.path.join(folder, name)
                records.append({"image_path": os.path.abspath(path), "bboxes": [], "labels": [],
                                "source_id": os.path.relpath(path, image_dir)})
    if not records:
        raise ValueError(f"no {', '.join(IMAGE_SUFFIXES)} files below {image_dir!r}")
    return records


@IMPORTERS.register("images")
class ImagesImporter(Importer):
    """``tfdet convert images --images DIR``."""

    help = "a folder of images without annotations (for batch inference)"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--images", required=True, help="directory searched recursively for .jpg, .jpeg, .png")

    @staticmethod
    def load(args: argparse.Namespace) -> Imported:
        records = unlabelled_records(args.images)
        return Imported(records, summary=f"images: {len(records)} files without annotations in {args.images}")
