"""model_card's page from known figures: every number shown is the one given, every picture embedded and whole."""

import base64
import io
import re

import numpy as np
from card_checks import cells
from detection_scene import FOUND, NAMES, TRUTH
from PIL import Image

from tfdet.evaluation.report import detection_report
from tfdet.reporting.card import model_card


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 120), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def embedded_images(page: str):
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)]


def card(**parts):
    report = detection_report(TRUTH, FOUND, 3, NAMES)
    images = {0: png((90, 90, 90)), 1: png((30, 60, 90))}
    return report, model_card("a card", report, TRUTH, FOUND, images, NAMES, min_class_boxes=2, **parts)


def test_the_figures_shown_are_the_reports():
    report, page = card(training={"facts": {"seed": 3}, "losses": {"loss": [2.0, 1.5, 1.2]}})
    assert cells(page, "data-figure") == {"AP50": "0.5000", "AP": f"{report['AP']:.4f}",
                                          "AR100": f"{report['AR100']:.4f}"}
    assert cells(page, "data-class-ap50") == {"cat": "1.0000", "dog": "0.0000", "eel": "-"}
    # limits: cat's single box is under the bar of 2, eel has none
    assert "not judged on their own: cat." in page and "not counted as 0): eel." in page
    assert 'id="verdict">Trained outside the pipeline' in page  # no blessing was asked of it
    pictures = embedded_images(page)
    # the PR curves, the losses, the worst and best images (2 images with errors: both worst; none left as best)
    assert len(pictures) == 4 and all(p.size[0] > 50 and np.asarray(p).std() > 0 for p in pictures)
    assert "image 0: 2 true boxes, 1 found, 1 wrong class, 0 missed, 1 spurious" in page


def test_a_refused_card_leads_with_its_reasons_and_shows_each_rule():
    rules = [{"name": "value: mAP@0.5 at least min_map50", "key": "min_map50", "value": "0.5000", "threshold": 0.6,
              "against": "the bar", "passed": False}]
    reason = "mAP@0.5 0.500 is below the value threshold 0.6 (min_map50; pycocotools, eval split)"
    _, page = card(decision={"blessed": False, "reasons": [reason], "rules": rules})
    body = page[page.index("<body>"):]
    assert body.index('<div class="refused" id="verdict"><b>Refused: not served.</b>') < body.index("<h2>")
    assert f'<li class="reason">{reason}</li>' in page
    assert cells(page, "data-rule") == {"min_map50": "0.5000"} and "REFUSES" in page
