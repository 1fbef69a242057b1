"""The blessing rules of CompareWithBaseline, TFX-free: a candidate is blessed when it is good and nothing regressed.

Every number here is COCO's mAP as pycocotools computes it on the eval split: the mean over the classes that have
eval boxes, so a class absent from the eval split is left out (and named), never counted as 0.

* value: mAP@0.5 >= ``min_map50``;
* change: mAP@0.5 is at most ``max_map50_drop`` below the served model's, on the same eval split;
* per class: no class with at least ``min_class_boxes`` eval boxes loses more than ``max_class_ap50_drop``
  of AP@0.5 against the served model (an average that rises can hide one class that collapsed).

Each failed rule adds a reason naming the rule, the threshold and the numbers compared.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence

SOURCE = "pycocotools, eval split"


def boxes_per_class(truth: Sequence[Mapping[str, Any]], names: Mapping[int, str]) -> Dict[str, int]:
    """Eval boxes per class name, every class of ``names`` included (0 for a class absent from the split)."""
    counts = Counter(int(label) for image in truth for label in image["labels"])
    return {name: counts.get(label, 0) for label, name in sorted(names.items())}


def shown(value: float, bound: float) -> str:
    """``value`` with the fewest decimals (3 to 6) that do not print it equal to ``bound`` when it is not."""
    for decimals in range(3, 7):
        text = f"{value:.{decimals}f}"
        if value == bound or float(text) != bound:
            return text
    return repr(value)


def decide(candidate: Dict[str, Any], baseline: Optional[Dict[str, Any]], class_boxes: Mapping[str, int],
           min_map50: float, max_map50_drop: float, max_class_ap50_drop: float,
           min_class_boxes: int) -> Dict[str, Any]:
    """The verdict: ``blessed``, ``reasons`` (empty when blessed) and the numbers behind them.

    Args:
        candidate, baseline: ``{"AP50", "AP", "per_class_AP50": {name: AP@0.5}}`` from pycocotools on the same eval
            split (``per_class_AP50`` holds the classes with eval boxes only); the baseline None when nothing is
            served yet.
        class_boxes: eval boxes per class name, 0 for the classes absent from the split.
    """
    absent = sorted(name for name, boxes in class_boxes.items() if not boxes)
    judged = [name for name, boxes in class_boxes.items() if boxes]
    scope = f"{SOURCE}: mean over {len(judged)} class{'es' if len(judged) != 1 else ''} with eval boxes" + (
        f", {', '.join(map(repr, absent))} without eval boxes left out" if absent else "")
    verdict: Dict[str, Any] = {"candidate_map50": candidate["AP50"], "candidate_map": candidate["AP"],
                               "classes_without_eval_boxes": absent, "map_definition": scope}
    reasons: List[str] = []
    rules: List[Dict[str, Any]] = []  # each rule applied, with its numbers: the model card's decision table

    def apply(name: str, key: str, value: str, threshold: Any, against: str, passed: bool, reason: str) -> None:
        rules.append({"name": name, "key": key, "value": value, "threshold": threshold, "against": against,
                      "passed": passed})
        if not passed:
            reasons.append(reason)

    if not judged:
        reasons.append("the eval split has no boxes: there is nothing to judge the candidate by")
    else:
        apply("value: mAP@0.5 at least min_map50", "min_map50", f"{candidate['AP50']:.4f}", min_map50, "the bar",
              candidate["AP50"] >= min_map50,
              f"mAP@0.5 {shown(candidate['AP50'], min_map50)} is below the value threshold {min_map50} "
              f"(min_map50; {scope})")
    if baseline is not None:
        verdict.update(baseline_map50=baseline["AP50"], baseline_map=baseline["AP"])
        change = candidate["AP50"] - baseline["AP50"]
        if judged:
            apply("change: mAP@0.5 against the served model", "max_map50_drop", f"{change:+.4f}",
                  f"{-max_map50_drop:+.3f}", "served", change >= -max_map50_drop,
                  f"mAP@0.5 {candidate['AP50']:.3f} vs served {baseline['AP50']:.3f}: a change of "
                  f"{shown(change, -max_map50_drop)}, below the least allowed "
                  f"{-max_map50_drop:+.3f} (max_map50_drop; {SOURCE})")
        per_class = {}
        for name in judged:
            mine, theirs = candidate["per_class_AP50"].get(name), baseline["per_class_AP50"].get(name)
            if mine is None or theirs is None:
                continue
            boxes = class_boxes[name]
            per_class[name] = {"candidate": mine, "baseline": theirs, "eval_boxes": boxes}
            sure = boxes >= min_class_boxes
            apply(f"class {name!r}: AP@0.5 against the served model"
                  + ("" if sure else f" (under {min_class_boxes} eval boxes: not judged)"), f"class:{name}",
                  f"{mine - theirs:+.4f}", f"{-max_class_ap50_drop:+.3f}", "served",
                  not sure or mine - theirs >= -max_class_ap50_drop,
                  f"class {name!r} AP@0.5 {mine:.3f} vs served {theirs:.3f} ({boxes} eval boxes): a "
                  f"change of {shown(mine - theirs, -max_class_ap50_drop)}, below the least allowed "
                  f"{-max_class_ap50_drop:+.3f} (max_class_ap50_drop; {SOURCE})")
        verdict["per_class_ap50"] = per_class
    verdict["rules"] = rules
    verdict.update(blessed=not reasons, reasons=reasons)
    return verdict


def rule_table(verdict: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The rules :func:`decide` applied, as rows for the model card (``name``, ``key``, ``value``, ``threshold``,
    ``against``, ``passed``), with the served version each was compared with named."""
    served = verdict.get("baseline_model")  # set whenever a rule compared with the served model
    return [{**rule, "against": served if rule["against"] == "served" else rule["against"]}
            for rule in verdict["rules"]]
