"""The blessing rules of CompareWithBaseline, TFX-free: a candidate is blessed only when nothing regressed.

* value: the Evaluator (TFMA) found mAP@0.5 >= ``min_map50``;
* change: mAP@0.5 is at most ``max_map50_drop`` below the served model's, on the same eval split;
* per class: no class with at least ``min_class_boxes`` eval boxes loses more than ``max_class_ap50_drop``
  of AP@0.5 against the served model (an average that rises can hide one class that collapsed).

Each failed rule adds a reason naming the threshold and both numbers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence


def boxes_per_class(truth: Sequence[Mapping[str, Any]], names: Mapping[int, str]) -> Dict[str, int]:
    counts = Counter(int(label) for image in truth for label in image["labels"])
    return {names.get(label, str(label)): count for label, count in sorted(counts.items())}


def decide(value_threshold_passed: bool, candidate: Dict[str, Any], baseline: Optional[Dict[str, Any]],
           class_boxes: Mapping[str, int], min_map50: float, max_map50_drop: float, max_class_ap50_drop: float,
           min_class_boxes: int) -> Dict[str, Any]:
    """The verdict: ``blessed``, ``reasons`` (empty when blessed) and the numbers behind them.

    Args:
        candidate, baseline: ``{"AP50", "AP", "per_class_AP50": {name: AP@0.5}}`` (pycocotools), the
            baseline None when nothing is served yet.
        class_boxes: eval boxes per class name.
    """
    reasons: List[str] = []
    if not value_threshold_passed:
        reasons.append(f"mAP@0.5 {candidate['AP50']:.3f} is below the value threshold {min_map50} (TFMA Evaluator)")
    verdict: Dict[str, Any] = {"candidate_map50": candidate["AP50"], "candidate_map": candidate["AP"]}
    if baseline is not None:
        verdict.update(baseline_map50=baseline["AP50"], baseline_map=baseline["AP"])
        change = candidate["AP50"] - baseline["AP50"]
        if change < -max_map50_drop:
            reasons.append(f"mAP@0.5 {candidate['AP50']:.3f} vs served {baseline['AP50']:.3f}: a change of "
                           f"{change:+.3f}, below the least allowed {-max_map50_drop:+.3f} (max_map50_drop)")
        per_class = {}
        for name, boxes in class_boxes.items():
            mine, theirs = candidate["per_class_AP50"].get(name), baseline["per_class_AP50"].get(name)
            if mine is None or theirs is None:
                continue
            per_class[name] = {"candidate": mine, "baseline": theirs, "eval_boxes": boxes}
            if boxes >= min_class_boxes and mine - theirs < -max_class_ap50_drop:
                reasons.append(f"class {name!r} AP@0.5 {mine:.3f} vs served {theirs:.3f} ({boxes} eval boxes): a "
                               f"change of {mine - theirs:+.3f}, below the least allowed {-max_class_ap50_drop:+.3f} "
                               f"(max_class_ap50_drop)")
        verdict["per_class_ap50"] = per_class
    verdict.update(blessed=not reasons, reasons=reasons)
    return verdict
