"""The sample outputs the docs show are what the code prints: each is rebuilt here from its numbers through the
function that prints it, and must equal the docs' text line for line."""

import os
import re

from components.blessing_rules import decide
from pipeline.operations.served import render_status
from pipeline.operations.summary import render

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def block_after(doc: str, marker: str) -> list:
    """The lines of the first fenced block after ``marker`` in ``doc``."""
    text = open(os.path.join(REPO, doc)).read()
    rest = text[text.index(marker):]
    return re.search(r"^```\w*\n(.*?)^```$", rest, re.S | re.M).group(1).rstrip("\n").splitlines()


def test_the_readmes_run_summary():
    shown = block_after("README.md", "`make run` in a fresh clone")
    out = "/tmp/fresh/tfx_pipeline_output"
    summary = {"examples": {"train": 960, "eval": 120}, "anomalies": {"train": [], "eval": []},
               "gate": {"passed": True, "examples_checked": {"train": 960, "eval": 120}},
               "training": {"steps": 1500, "first_loss": 1.377, "last_loss": 0.388, "warm_started_from": None,
                            "initialisation": None},
               "comparison": {"candidate_map50": 0.827, "candidate_map": 0.596}, "blessed": True,
               "model_card": f"{out}/tfdet/ModelCard/card/12/model_card.html",
               "pushed": True, "pushed_model": f"{out}/serving_model/tfdet/1796624409",
               "batch_inference": {"images_in": 40, "scored": 40, "refused": 0, "detections": 2999,
                                   "uri": f"{out}/tfdet/BatchDetections/detections/13"}}
    printed = render(summary, seconds=1038).splitlines()
    start = shown.index("=== tfdet pipeline summary ===") + 1
    assert shown[start:start + len(printed)] == printed


def test_the_refusal_sample():
    shown = block_after("docs/pipeline.md", "**Refusals.**")
    names = ["square", "disc", "triangle", "star", "ring"]
    verdict = decide({"AP50": 0.041, "AP": 0.02, "per_class_AP50": dict.fromkeys(names, 0.041)},
                     {"AP50": 0.003, "AP": 0.001, "per_class_AP50": dict.fromkeys(names, 0.003)},
                     dict.fromkeys(names, 30), min_map50=0.5, max_map50_drop=0.01, max_class_ap50_drop=0.1,
                     min_class_boxes=10)
    verdict.update(max_map50_drop=0.01)
    printed = render({"blessed": False, "comparison": verdict}).splitlines()
    verdict_lines = ("blessed:", "  not blessed:")
    assert [line for line in shown if line.startswith(verdict_lines)] == [
        line for line in printed if line.startswith(verdict_lines)]


def test_the_status_sample():
    shown = block_after("docs/pipeline.md", "**What is served, and what made it.**")

    def entry(version, at, steps, spans, warm, served, rollback=None):
        found = {"version": version, "pushed_at": at,
                 "training": {"model_config": "tiny", "steps": steps, "spans": spans, "warm_started_from": warm,
                              "initialisation": None, "code": {"version": "0.1.0", "commit": "unknown"}},
                 "blessing": {"candidate_map50": served[0], "baseline_map50": served[1]},
                 "model_card": f"/tmp/demo/out/serving_model/tfdet/{version}/assets.extra/model_card.html"}
        return {**found, "rollback_of": rollback} if rollback else found

    entries = [entry(1796148253, "2026-12-01 18:09:03", 20, [1], None, (0.012, None), "v1796147953"),
               entry(1796148252, "2026-12-01 18:04:12", 20, [2, 1], "/tmp/demo/out/serving_model/tfdet/1796147953",
                     (0.032, 0.002)),
               entry(1796147953, "2026-12-01 17:59:13", 20, [1], None, (0.012, None))]
    assert render_status(entries, "/tmp/demo/out/serving_model/tfdet").splitlines() == shown
