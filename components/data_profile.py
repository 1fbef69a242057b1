"""What BoxGate learns about a span beyond geometry: image fingerprints and distributions (TFX-free).

* **Leakage and duplicates.** Every image's bytes are fingerprinted (sha256). The same image in
  train and eval, in the new train split and an earlier accepted span's eval split, or in the new
  eval split and an earlier accepted span's train split (a model warm-started or trained on a window
  has seen it, so its evaluation would flatter it), is leakage: the gate stops. The same image twice
  inside one split is a duplicate: reported, not fatal.
* **Drift against the previous accepted span.** Per span: the class distribution, and histograms of
  box size (square root of the normalised area), box aspect (log2 of width / height), boxes per image
  and image size (longer side, pixels). The class distribution is compared by L-infinity distance
  (TFDV's categorical drift comparator), the histograms by Jensen-Shannon divergence (base 2, in
  [0, 1]; TFDV's numeric one). Beyond a threshold the gate stops (or warns), naming the feature
  and both distributions.

A span's profile is stored beside its accepted-span registry entry, so the next span is compared
with the last one that passed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

BINS = {
    "box_size": np.linspace(0.0, 1.0, 11),  # sqrt(box area / image area)
    "box_aspect": np.linspace(-3.0, 3.0, 13),  # log2(width / height)
    "boxes_per_image": np.array([0, 1, 2, 3, 5, 8, 13, 21, 34, 1e9]),
    "image_size": np.array([0, 128, 256, 384, 512, 768, 1024, 2048, 4096, 1e9]),
}


def fingerprint(encoded: bytes) -> str:
    return hashlib.sha256(encoded).hexdigest()[:32]


class SplitProfile:
    """Accumulates one split: fingerprints (-> source ids) and the raw values of the histograms."""

    def __init__(self) -> None:
        self.images: Dict[str, List[str]] = {}
        self.labels: Dict[int, int] = {}
        self.values: Dict[str, List[float]] = {name: [] for name in BINS}

    def add(self, encoded: bytes, source_id: str, height: int, width: int, boxes: Sequence[Sequence[float]],
            labels: Sequence[int]) -> None:
        """One example: its image bytes, id, size and normalised boxes (ymin, xmin, ymax, xmax)."""
        self.images.setdefault(fingerprint(encoded), []).append(source_id)
        for label in labels:
            self.labels[int(label)] = self.labels.get(int(label), 0) + 1
        for ymin, xmin, ymax, xmax in boxes:
            h, w = max(ymax - ymin, 1e-6), max(xmax - xmin, 1e-6)
            self.values["box_size"].append(math.sqrt(h * w))
            self.values["box_aspect"].append(math.log2((w * width) / (h * height)))
        self.values["boxes_per_image"].append(len(boxes))
        self.values["image_size"].append(max(height, width))

    def duplicates(self) -> List[List[str]]:
        return [ids for ids in self.images.values() if len(ids) > 1]

    def distributions(self) -> Dict[str, List[float]]:
        """Normalised histograms (and the class distribution under ``classes``)."""
        out = {}
        for name, edges in BINS.items():
            counts, _ = np.histogram(np.clip(self.values[name], edges[0], edges[-1]), bins=edges)
            out[name] = (counts / max(counts.sum(), 1)).round(6).tolist()
        total = sum(self.labels.values())
        out["classes"] = {str(k): round(v / total, 6) for k, v in sorted(self.labels.items())}  # {} for no boxes
        return out


def leaks(train_images: Mapping[str, Sequence[str]], eval_images: Mapping[str, Sequence[str]],
          where: str) -> List[Dict]:
    """Train images whose bytes also occur among the eval images (both: fingerprint -> source ids)."""
    return [{"train": list(ids), "eval": list(eval_images[key]), "in": where}
            for key, ids in train_images.items() if key in eval_images]


def l_infinity(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    return max((abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q)), default=0.0)


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence of two histograms, base 2 (0: equal, 1: disjoint)."""
    p, q = np.asarray(p), np.asarray(q)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def drift(current: Mapping[str, object], previous: Mapping[str, object], thresholds: Mapping[str, float],
          previous_span: Optional[int] = None) -> List[Dict]:
    """Features whose distribution moved beyond its threshold: ``{feature, distance, threshold, measure,
    current, previous}`` each."""
    found = []
    for feature, threshold in thresholds.items():
        if feature not in current or feature not in previous:
            continue
        if feature == "classes":
            distance, measure = l_infinity(current[feature], previous[feature]), "L-infinity"
        else:
            distance, measure = jensen_shannon(current[feature], previous[feature]), "Jensen-Shannon"
        if distance > threshold:
            found.append({"feature": feature, "measure": measure, "distance": round(distance, 4),
                          "threshold": threshold, "current": current[feature], "previous": previous[feature],
                          "previous_span": previous_span})
    return found


def judge(findings: Dict, profiles: Mapping[str, SplitProfile], earlier: Sequence[Mapping], thresholds: Mapping,
          action: str, min_examples: int, max_listed: int = 50) -> Dict:
    """Adds duplicates, leaks and drift to the gate's ``findings``; returns the span's profile to keep.

    Args:
        profiles: this span's split profiles (``train``, ``eval``).
        earlier: the kept profiles of earlier accepted spans, newest first (``{"span", "eval_images",
            "train_images", "train_distributions", "train_examples"}``).
        thresholds: feature -> largest distance (``classes`` L-infinity, others Jensen-Shannon).
        action: ``"stop"`` or ``"warn"`` on drift.
        min_examples: drift is judged only when both spans have this many training examples.
    """
    findings["duplicates"] = {split: p.duplicates()[:max_listed] for split, p in profiles.items() if p.duplicates()}
    train, evaluation = profiles.get("train"), profiles.get("eval")
    both = train is not None and evaluation is not None
    found = leaks(train.images, evaluation.images, "this span's eval split") if both else []
    for record in earlier:
        if train is not None and record.get("eval_images"):
            found += leaks(train.images, record["eval_images"], f"accepted span {record['span']}'s eval split")
        if evaluation is not None and record.get("train_images"):
            found += leaks(record["train_images"], evaluation.images,
                           f"this span's eval split, trained on in accepted span {record['span']}")
    findings["leaks"] = found[:max_listed]
    findings["drift_action"] = action
    current = train.distributions() if train is not None else {}
    examples = len(train.values["image_size"]) if train is not None else 0
    if earlier and train is not None:
        previous = earlier[0]
        if min(examples, previous.get("train_examples", 0)) >= min_examples:
            findings["drift"] = drift(current, previous["train_distributions"], thresholds, previous["span"])
        else:
            findings["drift_note"] = (f"drift not judged: fewer than {min_examples} training examples in this span "
                                      f"({examples}) or span {previous['span']} ({previous.get('train_examples')})")
    return {"eval_images": evaluation.images if evaluation is not None else {},
            "train_images": train.images if train is not None else {}, "train_distributions": current,
            "train_examples": examples}
