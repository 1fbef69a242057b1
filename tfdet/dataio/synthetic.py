"""The embedded default dataset: deterministic synthetic detection images.

Five shape classes (rectangle, ellipse, triangle, cross, ring) in random
colours, sizes (about 12 to 190 px) and aspect ratios, overlapping one
another, on gradient, striped, noisy or flat backgrounds with unlabelled
clutter (lines, dots, thin outlines); about one image in twelve has no
object. The same seed always gives the same pixels and boxes.

Layout written by :func:`generate_default_dataset`::

    <root>/<name>/images/span-<N>/{train,eval,unlabelled}/000000.jpg   the images
    <root>/<name>/span-<N>/{train,eval,unlabelled}-XXXXX-of-YYYYY.tfrecord
    <root>/<name>/span-<N>/{train,eval,unlabelled}-report.json, label_map.json, manifest.json

The ``unlabelled`` split (``num_unlabelled`` > 0) holds images without boxes: the new images a
deployment scores by batch inference (the pipeline's BulkInferrer).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

CLASSES: Tuple[str, ...] = ("rectangle", "ellipse", "triangle", "cross", "ring")
GENERATOR_VERSION = 1
# unlabelled images per span in the pipeline's default data (`make run` scores them with BulkInferrer)
DEFAULT_NUM_UNLABELLED = 40
Box = List[float]


def _background(rng: np.random.RandomState, height: int, width: int) -> Image.Image:
    kind = rng.randint(4)
    base = rng.randint(0, 256, size=3).astype(np.float32)
    if kind == 0:  # linear gradient between two colours
        other = rng.randint(0, 256, size=3).astype(np.float32)
        t = np.linspace(0.0, 1.0, width if rng.rand() < 0.5 else height, dtype=np.float32)
        line = base[None, :] * (1 - t[:, None]) + other[None, :] * t[:, None]
        pixels = np.broadcast_to(line[None], (height, width, 3)) if len(t) == width else \
            np.broadcast_to(line[:, None], (height, width, 3))
    elif kind == 1:  # stripes
        other = rng.randint(0, 256, size=3).astype(np.float32)
        period = rng.randint(8, 40)
        stripes = ((np.arange(width) // period) % 2).astype(np.float32)
        pixels = np.where(stripes[None, :, None] > 0, base, other) * np.ones((height, 1, 1), np.float32)
    elif kind == 2:  # coloured noise
        pixels = base + rng.normal(0.0, 40.0, size=(height, width, 3))
    else:  # flat
        pixels = np.broadcast_to(base, (height, width, 3))
    pixels = np.asarray(pixels, np.float32) + rng.normal(0.0, 6.0, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _contrasting_colour(rng: np.random.RandomState, image: Image.Image, box: Sequence[int]) -> Tuple[int, int, int]:
    x0, y0, x1, y1 = box
    under = np.asarray(image.crop((x0, y0, x1 + 1, y1 + 1)), np.float32).reshape(-1, 3).mean(0)
    for _ in range(20):
        colour = rng.randint(0, 256, size=3)
        if np.abs(colour - under).sum() > 160:
            break
    return tuple(int(c) for c in colour)


def _clutter(rng: np.random.RandomState, draw: ImageDraw.ImageDraw, height: int, width: int) -> None:
    for _ in range(rng.randint(0, 12)):
        colour = tuple(int(c) for c in rng.randint(0, 256, size=3))
        x, y = int(rng.randint(width)), int(rng.randint(height))
        kind = rng.randint(3)
        if kind == 0:
            end = (x + rng.randint(-60, 60), y + rng.randint(-60, 60))
            draw.line([x, y, *end], fill=colour, width=int(rng.randint(1, 3)))
        elif kind == 1:
            r = int(rng.randint(1, 4))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:  # a thin outline arc: shape-like but not an object
            r = int(rng.randint(6, 30))
            draw.arc([x - r, y - r, x + r, y + r], int(rng.randint(0, 180)), int(rng.randint(200, 300)), fill=colour)


def _draw_object(rng, draw: ImageDraw.ImageDraw, label: int, box: Sequence[int], colour) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    name = CLASSES[label]
    if name == "rectangle":
        draw.rectangle([x0, y0, x1, y1], fill=colour)
    elif name == "ellipse":
        draw.ellipse([x0, y0, x1, y1], fill=colour)
    elif name == "triangle":  # apex on the top edge, base on the bottom edge
        apex = x0 + int(rng.randint(0, w + 1))
        draw.polygon([(apex, y0), (x1, y1), (x0, y1)], fill=colour)
    elif name == "cross":
        tx, ty = max(2, w // 3) // 2, max(2, h // 3) // 2
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle([x0, cy - ty, x1, cy + ty], fill=colour)
        draw.rectangle([cx - tx, y0, cx + tx, y1], fill=colour)
    else:  # ring
        draw.ellipse([x0, y0, x1, y1], outline=colour, width=max(3, min(w, h) // 5))


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def synthesize_image(rng: np.random.RandomState, sizes: Tuple[int, int] = (224, 385)
                     ) -> Tuple[Image.Image, List[Box], List[int]]:
    """One random image with its boxes ([y_min, x_min, y_max, x_max] pixels) and class ids; its height and width
    are drawn from ``[sizes[0], sizes[1])``."""
    height, width = int(rng.randint(*sizes)), int(rng.randint(*sizes))
    image = _background(rng, height, width)
    draw = ImageDraw.Draw(image)
    _clutter(rng, draw, height, width)
    count = 0 if rng.rand() < 1 / 12 else int(rng.randint(1, 7))
    boxes: List[Box] = []
    labels: List[int] = []
    placed: List[List[int]] = []
    for _ in range(count * 4):  # attempts; heavy overlaps are re-drawn
        if len(placed) == count:
            break
        label = int(rng.randint(len(CLASSES)))
        size = float(np.exp(rng.uniform(np.log(12), np.log(0.5 * min(height, width)))))
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))) if label in (0, 1) else \
            float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
        w = max(10, int(round(size * np.sqrt(aspect))))
        h = max(10, int(round(size / np.sqrt(aspect))))
        if w >= width or h >= height:
            continue
        x0, y0 = int(rng.randint(0, width - w)), int(rng.randint(0, height - h))
        box = [x0, y0, x0 + w - 1, y0 + h - 1]  # inclusive pixel corners, as PIL draws them
        if any(_iou(box, other) > 0.3 for other in placed):
            continue
        _draw_object(rng, draw, label, box, _contrasting_colour(rng, image, box))
        placed.append(box)
        boxes.append([float(y0), float(x0), float(y0 + h), float(x0 + w)])
        labels.append(label)
    return image, boxes, labels


def generate_records(image_dir: str, num_images: int, seed: int) -> List[dict]:
    """Draws ``num_images`` images into ``image_dir`` and returns their seed records."""
    os.makedirs(image_dir, exist_ok=True)
    rng = np.random.RandomState(seed)
    records = []
    for i in range(num_images):
        image, boxes, labels = synthesize_image(rng)
        path = os.path.join(image_dir, f"{i:06d}.jpg")
        image.save(path, format="JPEG", quality=92)
        records.append({
            "image_path": os.path.abspath(path),
            "bboxes": boxes,
            "labels": [{"id": label, "name": CLASSES[label]} for label in labels],
        })
    return records


def generate_default_dataset(
    root: str = "data",
    name: str = "default",
    spans: Sequence[int] = (1,),
    num_train: int = 960,
    num_eval: int = 120,
    num_shards: int = 4,
    num_unlabelled: int = 0,
    seed: int = 0,
    force: bool = False,
    show_progress: bool = False,
) -> Dict[int, str]:
    """Generates (or reuses) the default dataset and converts it to TFRecords.

    A span is regenerated only when it is missing, was made with other
    arguments, or ``force`` is set.

    Args:
        root: data root directory.
        name: dataset name (a directory under ``root``).
        spans: span numbers to write; each span draws new images.
        num_train, num_eval: images per split and span.
        num_shards: TFRecord shards per split.
        num_unlabelled: images of the ``unlabelled`` split (boxes left out;
            seed ``seed + 1000 * N + 2``); 0 writes none.
        seed: base seed; span N uses ``seed + 1000 * N`` (+1 for eval).
        force: regenerate even when an identical span exists.
        show_progress: show the converter's progress bars.

    Returns:
        Span number -> the span's TFRecord directory.
    """
    from tfdet.dataio.converter import convert_dataset_to_tfrecord
    from tfdet.dataio.label_map import label_map_path
    from tfdet.dataio.spans import span_dir

    out = {}
    for span in spans:
        span_folder = span_dir(os.path.join(root, name), span)
        manifest = {"generator_version": GENERATOR_VERSION, "span": span, "num_train": num_train,
                    "num_eval": num_eval, "num_shards": num_shards, "seed": seed, "classes": list(CLASSES)}
        if num_unlabelled:
            manifest["num_unlabelled"] = num_unlabelled
        manifest_path = os.path.join(span_folder, "manifest.json")
        out[span] = span_folder
        if not force and os.path.exists(manifest_path):
            with open(manifest_path) as handle:
                if json.load(handle) == manifest:
                    continue
        if os.path.exists(label_map_path(span_folder)):
            os.remove(label_map_path(span_folder))
        for split, count, offset in (("train", num_train, 0), ("eval", num_eval, 1),
                                     ("unlabelled", num_unlabelled, 2)):
            if not count:
                continue
            image_dir = os.path.join(span_dir(os.path.join(root, name, "images"), span), split)
            records = generate_records(image_dir, count, seed + 1000 * span + offset)
            if split == "unlabelled":
                records = [dict(record, bboxes=[], labels=[]) for record in records]
            convert_dataset_to_tfrecord(records, num_shards=num_shards, output_dir=span_folder, prefix=split,
                                        num_classes=len(CLASSES), show_progress=show_progress)
        with open(manifest_path, "w") as handle:
            json.dump(manifest, handle, indent=2)
    return out
