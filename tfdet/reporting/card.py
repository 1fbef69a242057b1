"""The model card: one self-contained HTML page (plots and images embedded, nothing fetched when it is opened) saying
what was trained, on what, how good it is, and -- in the pipeline -- why it was served or refused.

:func:`model_card` builds it for the pipeline (components/model_card.py) and for ``tfdet report`` alike, from plain
dicts:

* ``evaluation``: :func:`tfdet.evaluation.report.detection_report` (the numbers the blessing decided on);
* ``ground_truth``, ``detections``, ``images``: the eval split's true boxes, the model's detections and the encoded
  images, from which the worst and best images are drawn;
* ``training``: what the Trainer (or ``tfdet train``) recorded: config name and overrides, seed, steps, losses per
  epoch and term, seconds, initialisation;
* ``data``: spans, examples and boxes per class and split, box-size and aspect histograms, drift and the gate's
  findings (pipeline only);
* ``decision``: each blessing rule with its number, threshold and baseline, the verdict and its reasons (pipeline);
* ``lineage``: the parent version, rollbacks, the code's commit and the packages' versions.

Jinja2 renders ``model_card.html.j2``; matplotlib draws the plots (Model Card Toolkit does not install beside TFX
1.16: docs/pipeline.md says why this was chosen instead).
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

TEMPLATE = "model_card.html.j2"


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curves_plot(curves: Mapping[str, Mapping[str, List[float]]]) -> Optional[str]:
    """Each class's precision-recall curve at IoU 0.5, as a base64 PNG (None without curves)."""
    if not curves:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    for name, curve in curves.items():
        axis.plot(curve["recall"], curve["precision"], label=name)
    axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall, IoU 0.5")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def losses_plot(losses: Mapping[str, Sequence[float]]) -> Optional[str]:
    """The training losses per epoch (each term the head names), as a base64 PNG."""
    losses = {name: values for name, values in losses.items() if values}
    if not losses:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    for name, values in losses.items():
        axis.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None, label=name)
    axis.set(xlabel="epoch", ylabel="loss", title="training loss")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def histograms_plot(histograms: Mapping[str, Mapping[str, Any]]) -> Optional[str]:
    """Histograms (``{title: {"edges": [...], "splits": {split: shares}}}``), side by side, as a base64 PNG."""
    if not histograms:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(histograms), figsize=(4.2 * len(histograms), 3.2), squeeze=False)
    for axis, (title, histogram) in zip(axes[0], histograms.items()):
        edges = np.asarray(histogram["edges"], np.float64)
        centres = np.arange(len(edges) - 1)
        width = 0.8 / max(len(histogram["splits"]), 1)
        for i, (split, shares) in enumerate(histogram["splits"].items()):
            axis.bar(centres + i * width, shares, width=width, label=split)
        axis.set_xticks(centres + 0.4 - width / 2)
        axis.set_xticklabels([f"{edges[j]:g}" for j in range(len(edges) - 1)], rotation=60, fontsize=7)
        axis.set(title=title, ylabel="share")
        axis.legend(fontsize=7)
    return _png(figure)


def drawn_images(ids: Sequence[int], ground_truth: Sequence[Mapping[str, Any]],
                 detections: Sequence[Mapping[str, Any]], images: Mapping[int, bytes],
                 names: Mapping[int, str], score_thr: float) -> List[Dict[str, str]]:
    """The eval images ``ids`` with their true boxes (green) and detections scoring ``score_thr`` or more, as base64
    PNGs with a caption of their errors."""
    from PIL import Image

    from tfdet.evaluation.report import match_image
    from tfdet.visualization import draw_detections

    truth_by_id = {int(t["image_id"]): t for t in ground_truth}
    found_by_id = {int(d["image_id"]): d for d in detections}
    out = []
    for image_id in ids:
        truth, found = truth_by_id[image_id], found_by_id.get(image_id)
        picture = Image.open(io.BytesIO(images[image_id])).convert("RGB")
        boxes = np.asarray(found["boxes"]).reshape(-1, 4) if found else np.zeros([0, 4])
        scores = np.asarray(found["scores"]) if found else np.zeros([0])
        classes = np.asarray(found["classes"]) if found else np.zeros([0])
        drawn = draw_detections(picture, boxes, scores, classes, names, score_thr=score_thr,
                                truth=np.asarray(truth["boxes"]).reshape(-1, 4))
        drawn.thumbnail((420, 420))
        buffer = io.BytesIO()
        drawn.save(buffer, format="PNG")
        matched = match_image(truth, found or {"boxes": boxes, "scores": scores, "classes": classes}, score_thr)
        right = sum(a == b for a, b in matched["pairs"])
        caption = (f"image {image_id}: {len(truth['labels'])} true boxes, {right} found, "
                   f"{len(matched['pairs']) - right} wrong class, {len(matched['missed'])} missed, "
                   f"{len(matched['spurious'])} spurious")
        out.append({"png": base64.b64encode(buffer.getvalue()).decode(), "caption": caption})
    return out


def model_card(title: str, evaluation: Mapping[str, Any], ground_truth: Sequence[Mapping[str, Any]],
               detections: Sequence[Mapping[str, Any]], images: Mapping[int, bytes], names: Mapping[int, str],
               training: Optional[Mapping[str, Any]] = None, data: Optional[Mapping[str, Any]] = None,
               decision: Optional[Mapping[str, Any]] = None, lineage: Optional[Mapping[str, Any]] = None,
               min_class_boxes: int = 10) -> str:
    """The card's HTML (see the module docstring for what each argument holds). ``images`` needs only the worst
    and best images' bytes (:func:`tfdet.evaluation.report.worst_and_best` of ``evaluation["images"]``)."""
    import jinja2

    from tfdet.evaluation.report import CONFIDENT, worst_and_best

    chosen = worst_and_best({int(k): v for k, v in evaluation.get("images", {}).items()})
    drawn = {kind: drawn_images(ids, ground_truth, detections, images, names, CONFIDENT)
             for kind, ids in chosen.items()}
    boxes = evaluation.get("eval_boxes", {})
    limits = {"few_boxes": sorted(name for name, count in boxes.items() if 0 < count < min_class_boxes),
              "absent": sorted(name for name, count in boxes.items() if not count), "min_class_boxes": min_class_boxes}
    plots = {"pr": pr_curves_plot(evaluation.get("pr_curves", {})),
             "losses": losses_plot((training or {}).get("losses", {})),
             "histograms": histograms_plot((data or {}).get("histograms", {}))}
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.dirname(os.path.abspath(__file__))),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.get_template(TEMPLATE).render(
        title=title, evaluation=evaluation, training=training or {}, data=data or {}, decision=decision or {},
        lineage=lineage or {}, limits=limits, plots=plots, drawn=drawn, confident=CONFIDENT)


def write_card(path: str, html: str) -> str:
    """Writes the card atomically (a local path or a remote store); returns ``path``."""
    from tfdet.files import write_text

    return write_text(path, html)
