"""What BoxGate learns about a span beyond geometry: image fingerprints and distributions (TFX-free).

* **Leakage and duplicates.** Every image's bytes are fingerprinted (sha256). The same image in
  train and eval, in the new train split and an earlier accepted span's eval split, or in the new
  eval split and an earlier accepted span's train split (a model warm-started or trained on a window
  has seen it, so its evaluation would flatter it), is leakage: the gate stops. The same image twice
  inside one split is a duplicate: reported, not fatal. :func:`fingerprint_findings` judges all the
  places one fingerprint occurs (BoxGate's Beam scan groups them by fingerprint, components/box_scan.py).
* **Drift against the previous accepted span.** Per span: the class distribution, and histograms of
  box size (square root of the normalised area), box aspect (log2 of width / height), boxes per image
  and image size (longer side, pixels), counted by :class:`SplitProfile` (a combiner's accumulator).
  The class distribution is compared by L-infinity distance (TFDV's categorical drift comparator), the
  histograms by Jensen-Shannon divergence (base 2, in [0, 1]; TFDV's numeric one). Beyond a threshold
  the gate stops (or warns), naming the feature and both distributions.

A span's profile (its distributions and where its fingerprints are kept) is stored beside its
accepted-span registry entry, so the next span is compared with the last one that passed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

BINS = {
    "box_size": np.linspace(0.0, 1.0, 11),  # sqrt(box area / image area)
    "box_aspect": np.linspace(-3.0, 3.0, 13),  # log2(width / height)
    "boxes_per_image": np.array([0, 1, 2, 3, 5, 8, 13, 21, 34, 1e9]),
    "image_size": np.array([0, 128, 256, 384, 512, 768, 1024, 2048, 4096, 1e9]),
}
THIS_SPAN = None  # the span of an occurrence of an image in the data being gated (others carry their span number)


def fingerprint(encoded: bytes) -> str:
    return hashlib.sha256(encoded).hexdigest()[:32]


def _bin_counts(values: Sequence[float], edges: np.ndarray) -> np.ndarray:
    """``np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0]``: the last bin holds its right edge."""
    clipped = np.clip(np.asarray(values, np.float64), edges[0], edges[-1])
    index = np.minimum(np.searchsorted(edges, clipped, side="right") - 1, len(edges) - 2)
    return np.bincount(index, minlength=len(edges) - 1).astype(np.int64)


class SplitProfile:
    """The counts behind one split's distributions: examples, labels, and a histogram per :data:`BINS` feature.

    Counts add up, so profiles of parts of a split :meth:`merge` into the split's (a Beam combiner's accumulator).
    """

    def __init__(self) -> None:
        self.examples = 0
        self.labels: Dict[int, int] = {}
        self.counts: Dict[str, np.ndarray] = {name: np.zeros(len(edges) - 1, np.int64) for name, edges in BINS.items()}

    def add(self, height: int, width: int, boxes: Sequence[Sequence[float]], labels: Sequence[int]) -> SplitProfile:
        """One example: its size and normalised boxes (ymin, xmin, ymax, xmax) with their labels."""
        self.examples += 1
        for label in labels:
            self.labels[int(label)] = self.labels.get(int(label), 0) + 1
        sizes, aspects = [], []
        for ymin, xmin, ymax, xmax in boxes:
            h, w = max(ymax - ymin, 1e-6), max(xmax - xmin, 1e-6)
            sizes.append(math.sqrt(h * w))
            aspects.append(math.log2((w * width) / (h * height)))
        for name, values in (("box_size", sizes), ("box_aspect", aspects), ("boxes_per_image", [len(boxes)]),
                             ("image_size", [max(height, width)])):
            if values:
                self.counts[name] += _bin_counts(values, BINS[name])
        return self

    def merge(self, other: SplitProfile) -> SplitProfile:
        self.examples += other.examples
        for label, count in other.labels.items():
            self.labels[label] = self.labels.get(label, 0) + count
        for name in self.counts:
            self.counts[name] += other.counts[name]
        return self

    def distributions(self) -> Dict[str, object]:
        """Normalised histograms (and the class distribution under ``classes``)."""
        out = {name: (counts / max(counts.sum(), 1)).round(6).tolist() for name, counts in self.counts.items()}
        total = sum(self.labels.values())
        out["classes"] = {str(k): round(v / total, 6) for k, v in sorted(self.labels.items())}  # {} for no boxes
        return out


def _leak(train: List[str], evaluation: List[str], where: str) -> Dict:
    return {"train": train, "eval": evaluation, "in": where}


def fingerprint_findings(occurrences: Iterable[Tuple[Optional[int], str, str]]) -> Tuple[List[Tuple], List[Tuple]]:
    """Duplicates and leaks among the places one image (one fingerprint) occurs.

    Args:
        occurrences: ``(span, split, source_id)`` each; ``span`` is :data:`THIS_SPAN` for the data being gated,
            else an earlier accepted span.

    Returns:
        ``(duplicates, leaks)``: ``(split, source ids)`` for each split of this span holding the image more than
        once, and ``(order, leak)`` for each leak (``leak``: ``{train, eval, in}``; ``order`` sorts them as the
        report lists them: this span's own first, then the earlier spans newest first).
    """
    ids: Dict[Tuple[Optional[int], str], List[str]] = {}
    for span, split, source_id in occurrences:
        ids.setdefault((span, split), []).append(source_id)
    ids = {key: sorted(found) for key, found in ids.items()}
    duplicates = [(split, found) for (span, split), found in sorted(ids.items(), key=lambda item: item[0][1])
                  if span is THIS_SPAN and len(found) > 1]
    train, evaluation = ids.get((THIS_SPAN, "train"), []), ids.get((THIS_SPAN, "eval"), [])
    leaks = []
    if train and evaluation:
        leaks.append(((0, 0, 0), _leak(train, evaluation, "this span's eval split")))
    for span in sorted({span for span, _ in ids if span is not THIS_SPAN}, reverse=True):
        if train and ids.get((span, "eval")):
            leaks.append(((1, -span, 0), _leak(train, ids[(span, "eval")], f"accepted span {span}'s eval split")))
        if evaluation and ids.get((span, "train")):
            leaks.append(((1, -span, 1), _leak(ids[(span, "train")], evaluation,
                                               f"this span's eval split, trained on in accepted span {span}")))
    return duplicates, leaks


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
          action: str, min_examples: int) -> Dict:
    """Adds the drift of this span's training split to the gate's ``findings``; returns the span's profile to keep.

    Args:
        profiles: this span's split profiles (``train``, ``eval``).
        earlier: the kept profiles of earlier accepted spans, newest first (``{"span", "train_distributions",
            "train_examples"}``).
        thresholds: feature -> largest distance (``classes`` L-infinity, others Jensen-Shannon).
        action: ``"stop"`` or ``"warn"`` on drift.
        min_examples: drift is judged only when both spans have this many training examples.
    """
    findings["drift_action"] = action
    train = profiles.get("train")
    current = train.distributions() if train is not None else {}
    examples = train.examples if train is not None else 0
    if earlier and train is not None:
        previous = earlier[0]
        if min(examples, previous.get("train_examples") or 0) >= min_examples:
            findings["drift"] = drift(current, previous["train_distributions"], thresholds, previous["span"])
        else:
            findings["drift_note"] = (f"drift not judged: fewer than {min_examples} training examples in this span "
                                      f"({examples}) or span {previous['span']} ({previous.get('train_examples')})")
    return {"train_distributions": current, "train_examples": examples}
