"""What every importer shares: the summary of what it kept and left out, image paths that cannot escape their folder,
JSON files read with a clear error, required fields checked by name, and the importer contract the ``tfdet convert``
command builds its subcommands from (:class:`Importer`, registered in :data:`IMPORTERS`)."""

from __future__ import annotations

import abc
import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class ImportSummary:
    """What an importer kept and left out, per reason (``skipped_boxes``), and which annotations."""

    images: int = 0
    boxes: int = 0
    skipped_boxes: Dict[str, int] = field(default_factory=dict)
    skipped_ids: Dict[str, List[str]] = field(default_factory=dict)

    def skip(self, reason: str, annotation_id: Optional[object] = None) -> None:
        self.skipped_boxes[reason] = self.skipped_boxes.get(reason, 0) + 1
        if annotation_id is not None:
            self.skipped_ids.setdefault(reason, []).append(str(annotation_id))


def resolve_image(image_dir: str, name: str, where: str, allow_outside: bool = False) -> str:
    """``image_dir/name``, refusing names that escape ``image_dir`` (``../x``, absolute paths, symlinks out).

    Annotation files come from elsewhere: a file name must not make the converter read any file on the
    host into the TFRecords. ``allow_outside`` lifts the check for trusted annotations.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: the image file name is {name!r}; expected a file name")
    path = os.path.join(image_dir, name)
    if allow_outside:
        return path
    root = os.path.realpath(image_dir)
    if os.path.isabs(name) or not os.path.realpath(path).startswith(root + os.sep):
        raise ValueError(f"{where}: image file {name!r} lies outside the image folder {image_dir}; move the image "
                         f"into it, or allow it explicitly (allow_outside=True, --allow-outside-images) if the "
                         f"annotations are trusted")
    return path


def read_json(path: str, what: str = "a COCO instances file") -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); is it {what}?") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not {what}, its top level is a {type(data).__name__}")
    return data


def fields(entry: object, keys: tuple, what: str, path: str) -> tuple:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {what} is {entry!r}, not an object")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise ValueError(f"{path}: {what} lacks {', '.join(repr(k) for k in missing)}")
    return tuple(entry[key] for key in keys)


@dataclass
class Imported:
    """What an importer returns: seed records, the label map (id -> name) when the format names its classes, the
    number of classes when only the user knows it, and one line saying what was read."""

    records: List[dict]
    label_map: Optional[Dict[int, str]] = None
    num_classes: Optional[int] = None
    summary: str = ""


class Importer(abc.ABC):
    """One annotation format for ``tfdet convert NAME``: its options and how it reads them.

    Register a subclass with ``@IMPORTERS.register("name")`` in one file of this package; ``tfdet convert`` lists
    it, with its options, and its help text.
    """

    help = ""

    @staticmethod
    @abc.abstractmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The format's own options (the shard options every importer shares are added by the command)."""

    @staticmethod
    @abc.abstractmethod
    def load(args: argparse.Namespace) -> Imported:
        """Reads the input the options name."""


def summary_line(name: str, summary: ImportSummary) -> str:
    """``NAME: 12 images, 30 boxes, left out ...``, with the annotations that name an image the file does not list."""
    line = f"{name}: {summary.images} images, {summary.boxes} boxes, left out {summary.skipped_boxes or 'none'}"
    missing = summary.skipped_ids.get("no_image")
    if missing:
        line += (f"\n  {len(missing)} annotation(s) name an image_id the file does not list: "
                 f"{', '.join(missing[:10])}")
    return line
