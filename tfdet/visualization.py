"""Drawing detections on images (Pillow): for ``tfdet predict``, TensorBoard and the benchmarks."""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Colour = Tuple[int, int, int]
TRUTH_COLOUR: Colour = (40, 230, 40)
# distinct colours for classes (tab10-like); class i uses PALETTE[i % len]
PALETTE: Tuple[Colour, ...] = ((230, 60, 50), (40, 120, 230), (250, 160, 20), (160, 60, 200), (20, 190, 190),
                               (230, 90, 170), (140, 100, 60), (120, 120, 120), (180, 200, 30), (60, 60, 160))


def class_colour(label: int) -> Colour:
    return PALETTE[int(label) % len(PALETTE)]


def draw_detections(image: Image.Image, boxes: np.ndarray, scores: Optional[np.ndarray] = None,
                    classes: Optional[np.ndarray] = None, class_names: Optional[Mapping[int, str]] = None,
                    score_thr: float = 0.0, truth: Optional[np.ndarray] = None, width: int = 2) -> Image.Image:
    """Draws boxes on a copy of ``image``.

    Args:
        image: a Pillow image (any mode; drawn on as RGB).
        boxes: [K, 4] (ymin, xmin, ymax, xmax) in the image's pixels.
        scores, classes: [K]; boxes scoring below ``score_thr`` are left out. Each box is labelled
            ``"<class name> 0.87"`` in its class colour.
        class_names: id -> name (default: the id).
        truth: [N, 4] true boxes, drawn green without labels, under the detections.
        width: line width in pixels.

    Returns:
        The drawn RGB copy.
    """
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for ymin, xmin, ymax, xmax in np.asarray(truth if truth is not None else np.zeros((0, 4))).reshape(-1, 4):
        draw.rectangle([xmin, ymin, xmax, ymax], outline=TRUTH_COLOUR, width=width)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores)
    classes = np.zeros(len(boxes), np.int64) if classes is None else np.asarray(classes)
    for (ymin, xmin, ymax, xmax), score, label in zip(boxes, scores, classes):
        if score < score_thr:
            continue
        colour = class_colour(label)
        draw.rectangle([xmin, ymin, xmax, ymax], outline=colour, width=width)
        text = f"{(class_names or {}).get(int(label), str(int(label)))} {score:.2f}"
        left, top, right, bottom = draw.textbbox((xmin, ymin), text, font=font)
        top_y = max(0.0, ymin - (bottom - top) - 2)
        draw.rectangle([xmin, top_y, xmin + (right - left) + 4, top_y + (bottom - top) + 2], fill=colour)
        draw.text((xmin + 2, top_y), text, fill=(255, 255, 255), font=font)
    return canvas
