"""Spans a tiny detector learns in a few dozen steps: red squares (class 0) and blue discs (class 1) on grey.

The end-to-end tests need data on which training really works within their budget, so that a real blessing bar
(mAP@0.5 >= 0.5) passes a trained model and refuses an untrained or mislabelled one.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from tfdet.dataio.converter import convert_dataset_to_tfrecord
from tfdet.dataio.spans import span_dir

CLASSES = ("square", "disc")
SIZE = 128


def draw_image(rng: np.random.RandomState, path: str, only_class: Optional[int] = None) -> Dict:
    """One image with 1-3 non-overlapping objects 24-44 px wide; returns its record (boxes in pixels, y first)."""
    image = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.randint(90, 150, 3)))
    draw = ImageDraw.Draw(image)
    boxes: List[List[float]] = []
    labels = []
    for _ in range(rng.randint(1, 4)):
        for _attempt in range(20):
            side = int(rng.randint(24, 45))
            y, x = (int(v) for v in rng.randint(0, SIZE - side, 2))
            box = [y, x, y + side, x + side]
            if all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in boxes):
                break
        else:
            continue
        label = int(rng.randint(0, 2)) if only_class is None else only_class
        shape = [box[1], box[0], box[3] - 1, box[2] - 1]
        if label == 0:
            draw.rectangle(shape, fill=(220, 30, 30))
        else:
            draw.ellipse(shape, fill=(30, 30, 220))
        boxes.append([float(v) for v in box])
        labels.append({"id": label, "name": CLASSES[label]})
    image.save(path)
    return {"image_path": path, "bboxes": boxes, "labels": labels, "source_id": os.path.basename(path)}


def write_span(data_root: str, span: int, num_train: int = 48, num_eval: int = 16, num_unlabelled: int = 0,
               seed: Optional[int] = None, only_class: Optional[int] = None, swap_train_labels: bool = False,
               eval_extra: Sequence[Dict] = ()) -> Dict[str, List[Dict]]:
    """Writes ``span-<span>/{train,eval,unlabelled}-*.tfrecord`` under ``data_root``; returns each split's records.

    Args:
        only_class: draw only this class (a drifted span).
        swap_train_labels: train boxes carry the other class's label (a mislabelled span; the pixels are sound).
        eval_extra: records added to the eval split as they are (e.g. an image trained on before: a leak).
    """
    rng = np.random.RandomState(1000 * span if seed is None else seed)
    folder = span_dir(data_root, span)
    images = os.path.join(data_root, "images", f"span-{span}")
    os.makedirs(images, exist_ok=True)
    written = {}
    for split, count in (("train", num_train), ("eval", num_eval), ("unlabelled", num_unlabelled)):
        if not count:
            continue
        records = [draw_image(rng, os.path.join(images, f"{split}-{i:03d}.png"), only_class) for i in range(count)]
        if split == "unlabelled":
            records = [dict(r, bboxes=[], labels=[]) for r in records]
        if split == "train" and swap_train_labels:
            records = [dict(r, labels=[{"id": 1 - x["id"], "name": CLASSES[1 - x["id"]]} for x in r["labels"]])
                       for r in records]
        if split == "eval":
            records += list(eval_extra)
        convert_dataset_to_tfrecord(records, num_shards=2, output_dir=folder, prefix=split,
                                    num_classes=len(CLASSES), show_progress=False)
        written[split] = records
    return written
