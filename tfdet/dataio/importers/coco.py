"""COCO instances JSON -> seed records (``tfdet convert coco``)."""

from __future__ import annotations

import argparse
from typing import Dict, List, Tuple

from tfdet.dataio.importers.common import (
    Imported,
    Importer,
    ImportSummary,
    fields,
    read_json,
    resolve_image,
    summary_line,
)
from tfdet.registry import IMPORTERS


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
    coco = read_json(annotation_file)
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise ValueError(f"{annotation_file}: not a COCO instances file, it has no {key!r} list")
    for i, category in enumerate(coco["categories"]):
        fields(category, ("id", "name"), f"category entry {i}", annotation_file)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    to_label = {c["id"]: i for i, c in enumerate(categories)}
    label_map = {i: c["name"] for i, c in enumerate(categories)}
    image_ids = set()
    for i, image in enumerate(coco["images"]):
        image_ids.add(fields(image, ("id",), f"image entry {i}", annotation_file)[0])
    summary = ImportSummary()
    per_image: Dict[int, List[dict]] = {}
    for i, annotation in enumerate(coco["annotations"]):
        where = f"annotation {annotation.get('id', f'#{i}') if isinstance(annotation, dict) else f'#{i}'}"
        image_id, = fields(annotation, ("image_id",), where, annotation_file)
        if image_id not in image_ids:
            summary.skip("no_image", annotation.get("id", f"#{i}"))
            continue
        per_image.setdefault(image_id, []).append(annotation)

    records = []
    for image in sorted(coco["images"], key=lambda im: im["id"]):
        where = f"image {image['id']}"
        file_name, height, width = fields(image, ("file_name", "height", "width"), where, annotation_file)
        height, width = float(height), float(width)
        boxes, labels = [], []
        for annotation in per_image.get(image["id"], []):
            box_where = f"annotation {annotation.get('id')} of image {image['id']}"
            bbox, category = fields(annotation, ("bbox", "category_id"), box_where, annotation_file)
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


@IMPORTERS.register("coco")
class CocoImporter(Importer):
    """``tfdet convert coco --annotations instances.json --images DIR``."""

    help = "a COCO instances JSON"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--annotations", required=True)
        parser.add_argument("--images", required=True, help="directory of the images")
        parser.add_argument("--include-crowd", action="store_true")
        parser.add_argument("--allow-outside-images", action="store_true",
                            help="accept file_names outside --images (trusted annotations only)")

    @staticmethod
    def load(args: argparse.Namespace) -> Imported:
        records, label_map, summary = load_coco_records(args.annotations, args.images, args.include_crowd,
                                                        args.allow_outside_images)
        return Imported(records, label_map, summary=summary_line("COCO", summary))
