"""COCO instances JSON -> seed records."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


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


def _read_json(path: str) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); is it a COCO instances file?") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a COCO instances file, its top level is a {type(data).__name__}")
    return data


def _fields(entry: object, keys: tuple, what: str, path: str) -> tuple:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {what} is {entry!r}, not an object")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise ValueError(f"{path}: {what} lacks {', '.join(repr(k) for k in missing)}")
    return tuple(entry[key] for key in keys)


def load_coco_records(annotation_file: str, image_dir: str, include_crowd: bool = False,
                      allow_outside: bool = False) -> Tuple[List[dict], Dict[int, str], ImportSummary]:
    """Reads a COCO instances JSON into seed records.

    Category ids are mapped to 0-based ids in increasing order of the COCO
    id (COCO's 1..90 with gaps become 0..79). Boxes ``[x, y, w, h]`` become
    ``[y_min, x_min, y_max, x_max]`` pixels, clipped to the image size the
    JSON states (COCO boxes overhang it by rounding). Crowd boxes, boxes
    with no area left and annotations whose ``image_id`` names no image are
    left out and counted in the summary (with their annotation ids). Each
    record carries the COCO image id as ``source_id``.

    Args:
        annotation_file: path of ``instances_*.json``.
        image_dir: directory holding the images' ``file_name``s; a
            ``file_name`` that leads outside it is refused.
        include_crowd: keep ``iscrowd`` boxes as ordinary boxes.
        allow_outside: accept ``file_name``s outside ``image_dir`` (trusted annotations only).

    Returns:
        (records, label map 0-based id -> name, import summary).

    Raises:
        ValueError: naming the file and the entry: not JSON, not a COCO instances file,
            an entry without a required key, an image outside ``image_dir``.
    """
    coco = _read_json(annotation_file)
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise ValueError(f"{annotation_file}: not a COCO instances file, it has no {key!r} list")
    for i, category in enumerate(coco["categories"]):
        _fields(category, ("id", "name"), f"category entry {i}", annotation_file)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    to_label = {c["id"]: i for i, c in enumerate(categories)}
    label_map = {i: c["name"] for i, c in enumerate(categories)}
    image_ids = set()
    for i, image in enumerate(coco["images"]):
        image_ids.add(_fields(image, ("id",), f"image entry {i}", annotation_file)[0])
    summary = ImportSummary()
    per_image: Dict[int, List[dict]] = {}
    for i, annotation in enumerate(coco["annotations"]):
        where = f"annotation {annotation.get('id', f'#{i}') if isinstance(annotation, dict) else f'#{i}'}"
        image_id, = _fields(annotation, ("image_id",), where, annotation_file)
        if image_id not in image_ids:
            summary.skip("no_image", annotation.get("id", f"#{i}"))
            continue
        per_image.setdefault(image_id, []).append(annotation)

    records = []
    for image in sorted(coco["images"], key=lambda im: im["id"]):
        where = f"image {image['id']}"
        file_name, height, width = _fields(image, ("file_name", "height", "width"), where, annotation_file)
        height, width = float(height), float(width)
        boxes, labels = [], []
        for annotation in per_image.get(image["id"], []):
            box_where = f"annotation {annotation.get('id')} of image {image['id']}"
            bbox, category = _fields(annotation, ("bbox", "category_id"), box_where, annotation_file)
            if annotation.get("iscrowd", 0) and not include_crowd:
                summary.skip("crowd", annotation.get("id"))
                continue
            if category not in to_label:
                raise ValueError(f"{annotation_file}: {box_where} has category_id {category}, which 'categories' "
                                 f"does not list")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError(f"{annotation_file}: {box_where} has bbox {bbox!r}; expected [x, y, width, height]")
            x, y, w, h = (float(v) for v in bbox)
            y_min, x_min = min(max(y, 0.0), height), min(max(x, 0.0), width)
            y_max, x_max = min(max(y + h, 0.0), height), min(max(x + w, 0.0), width)
            if y_max <= y_min or x_max <= x_min:
                summary.skip("no_area", annotation.get("id"))
                continue
            label = to_label[category]
            boxes.append([y_min, x_min, y_max, x_max])
            labels.append({"id": label, "name": label_map[label]})
        path = resolve_image(image_dir, file_name, f"{annotation_file}: {where}", allow_outside)
        records.append({"image_path": path, "bboxes": boxes, "labels": labels, "source_id": str(image["id"])})
        summary.images += 1
        summary.boxes += len(boxes)
    return records, label_map, summary
