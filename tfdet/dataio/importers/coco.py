"""COCO instances JSON -> seed records."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass
class ImportSummary:
    """What an importer kept and left out, per reason."""

    images: int = 0
    boxes: int = 0
    skipped_boxes: Dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped_boxes[reason] = self.skipped_boxes.get(reason, 0) + 1


def load_coco_records(annotation_file: str, image_dir: str, include_crowd: bool = False,
                      ) -> Tuple[List[dict], Dict[int, str], ImportSummary]:
    """Reads a COCO instances JSON into seed records.

    Category ids are mapped to 0-based ids in increasing order of the COCO
    id (COCO's 1..90 with gaps become 0..79). Boxes ``[x, y, w, h]`` become
    ``[y_min, x_min, y_max, x_max]`` pixels, clipped to the image size the
    JSON states (COCO boxes overhang it by rounding). Crowd boxes and boxes
    with no area left are left out and counted in the summary. Each record
    carries the COCO image id as ``source_id``.

    Args:
        annotation_file: path of ``instances_*.json``.
        image_dir: directory holding the images' ``file_name``s.
        include_crowd: keep ``iscrowd`` boxes as ordinary boxes.

    Returns:
        (records, label map 0-based id -> name, import summary).

    Raises:
        ValueError: if the file is not a COCO instances JSON, naming what is missing.
    """
    with open(annotation_file) as handle:
        coco = json.load(handle)
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"{annotation_file}: not a COCO instances file, it has no {key!r} list")
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    to_label = {c["id"]: i for i, c in enumerate(categories)}
    label_map = {i: c["name"] for i, c in enumerate(categories)}
    per_image: Dict[int, List[dict]] = {}
    for annotation in coco["annotations"]:
        per_image.setdefault(annotation["image_id"], []).append(annotation)

    summary = ImportSummary()
    records = []
    for image in sorted(coco["images"], key=lambda im: im["id"]):
        height, width = float(image["height"]), float(image["width"])
        boxes, labels = [], []
        for annotation in per_image.get(image["id"], []):
            if annotation.get("iscrowd", 0) and not include_crowd:
                summary.skip("crowd")
                continue
            if annotation["category_id"] not in to_label:
                raise ValueError(f"{annotation_file}: annotation {annotation.get('id')} has category_id "
                                 f"{annotation['category_id']}, which 'categories' does not list")
            x, y, w, h = (float(v) for v in annotation["bbox"])
            y_min, x_min = min(max(y, 0.0), height), min(max(x, 0.0), width)
            y_max, x_max = min(max(y + h, 0.0), height), min(max(x + w, 0.0), width)
            if y_max <= y_min or x_max <= x_min:
                summary.skip("no_area")
                continue
            label = to_label[annotation["category_id"]]
            boxes.append([y_min, x_min, y_max, x_max])
            labels.append({"id": label, "name": label_map[label]})
        records.append({"image_path": os.path.join(image_dir, image["file_name"]), "bboxes": boxes,
                        "labels": labels, "source_id": str(image["id"])})
        summary.images += 1
        summary.boxes += len(boxes)
    return records, label_map, summary
