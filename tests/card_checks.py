"""What a model card must show, checked in a real browser (tests/browser.py) against the files it was made from."""

import html
import re
from typing import Any, Dict, Mapping, Optional

import numpy as np
from browser import open_page
from PIL import Image


def cells(dom: str, attribute: str) -> Dict[str, str]:
    """``{attribute value: cell text}`` of every element carrying ``attribute`` in the rendered DOM."""
    return {html.unescape(key): html.unescape(text).strip()
            for key, text in re.findall(rf'{attribute}="([^"]*)"[^>]*>([^<]*)<', dom)}


def check_card(card_path: str, out_dir: str, comparison: Mapping[str, Any], evaluation: Mapping[str, Any],
               gate: Optional[Mapping[str, Any]] = None, names: Optional[Mapping[int, str]] = None) -> Dict[str, Any]:
    """Opens the card in headless Chromium and asserts: no console error or failed load; every image embedded and
    decoded; a screenshot that is not blank; the figures equal the blessing's files (``comparison.json``, its
    ``evaluation.json`` candidate) and the gate's report; a refused card leads with the refusal and its reasons."""
    page = open_page(card_path, out_dir)
    assert page["errors"] == [], page["errors"]
    raw = open(card_path).read()
    assert not re.search(r'(src|href)="(?!data:)', raw), "the card refers to something it does not embed"
    assert page["images"] and all(i["src"].startswith("data:image/png;base64,") and i["width"] > 0
                                  for i in page["images"]), page["images"]
    alts = [i["alt"] for i in page["images"]]
    assert "precision-recall curves" in alts and "worst image" in alts and "best image" in alts, alts
    shot = np.asarray(Image.open(page["screenshot"]).convert("L"), np.float64)
    assert shot.std() > 20 and (shot < 200).mean() > 0.02, "the screenshot is blank"
    dom = page["dom"]
    figures = cells(dom, "data-figure")
    assert figures["AP50"] == f"{comparison['candidate_map50']:.4f}" == f"{evaluation['AP50']:.4f}"
    assert figures["AP"] == f"{comparison['candidate_map']:.4f}"
    assert cells(dom, "data-class-ap50") == {
        name: f"{evaluation['per_class_AP50'][name]:.4f}" if name in evaluation["per_class_AP50"] else "-"
        for name in evaluation["eval_boxes"]}
    assert cells(dom, "data-rule") == {rule["key"]: rule["value"] for rule in comparison["rules"]}
    if gate is not None:
        assert cells(dom, "data-examples") == {split: str(n) for split, n in gate["examples_checked"].items()}
        boxes = cells(dom, "data-boxes")
        for split, profile in gate["profiles"].items():
            for label, count in profile["labels"].items():
                assert boxes[f"{split}:{names[int(label)]}"] == str(count), (split, label)
    verdict = dom[dom.index("<body>"):]
    first = re.search(r'<div class="(\w+)" id="verdict">', verdict)
    assert first and first.start() < verdict.index("<h2>"), "the verdict is not at the top"
    if comparison["blessed"]:
        assert first.group(1) == "served"
    else:
        assert first.group(1) == "refused"
        shown = [html.unescape(r) for r in re.findall(r'<li class="reason">([^<]*)</li>', dom)]
        assert shown == comparison["reasons"]
    return page
