import numpy as np
import pytest

from components.box_checks import failure_message, new_report, passed
from components.data_profile import SplitProfile, fingerprint, jensen_shannon, judge, l_infinity

THRESHOLDS = {"classes": 0.2, "box_size": 0.15, "box_aspect": 0.15, "boxes_per_image": 0.15, "image_size": 0.25}


def profile(images, size=(100, 100), boxes=((0.1, 0.1, 0.3, 0.3),), labels=(0,)):
    split = SplitProfile()
    for source_id, data in images:
        split.add(data, source_id, *size, list(boxes), list(labels))
    return split


def test_an_image_in_train_and_eval_is_a_leak_that_stops_the_gate():
    train = profile([("t1", b"image-a"), ("t2", b"image-b"), ("t3", b"image-b")])
    evaluation = profile([("e1", b"image-b"), ("e2", b"image-c")])
    findings = new_report(3)
    judge(findings, {"train": train, "eval": evaluation}, [], THRESHOLDS, "stop", 100)
    assert findings["leaks"] == [{"train": ["t2", "t3"], "eval": ["e1"], "in": "this span's eval split"}]
    assert findings["duplicates"] == {"train": [["t2", "t3"]]}  # reported, not fatal on its own
    assert not passed(findings)
    assert "Leakage: train image(s) t2, t3 have the same bytes as eval image(s) e1 of this span's eval split." in \
        failure_message(findings)
    clean = new_report(3)
    judge(clean, {"train": profile([("t1", b"a"), ("t2", b"a")]), "eval": profile([("e1", b"c")])}, [],
          THRESHOLDS, "stop", 100)
    assert passed(clean) and clean["duplicates"] == {"train": [["t1", "t2"]]}


def test_an_earlier_spans_eval_image_in_the_new_train_is_a_leak():
    earlier = [{"span": 4, "eval_images": {fingerprint(b"old-eval"): ["span4-e7"]}, "train_distributions": {},
                "train_examples": 0}]
    findings = new_report(3)
    judge(findings, {"train": profile([("n1", b"old-eval")]), "eval": profile([("n2", b"new")])}, earlier,
          THRESHOLDS, "stop", 100)
    assert findings["leaks"] == [{"train": ["n1"], "eval": ["span4-e7"], "in": "accepted span 4's eval split"}]


def test_an_earlier_spans_train_image_in_the_new_eval_is_a_leak():
    """The served model (and any window) trained on it: evaluating the candidate there would flatter it."""
    earlier = [{"span": 2, "eval_images": {}, "train_images": {fingerprint(b"seen"): ["span2-t4"]},
                "train_distributions": {}, "train_examples": 0}]
    findings = new_report(3)
    kept = judge(findings, {"train": profile([("n1", b"new")]), "eval": profile([("e3", b"seen")])}, earlier,
                 THRESHOLDS, "stop", 100)
    assert findings["leaks"] == [{"train": ["span2-t4"], "eval": ["e3"],
                                  "in": "this span's eval split, trained on in accepted span 2"}]
    assert not passed(findings)
    assert ("Leakage: train image(s) span2-t4 have the same bytes as eval image(s) e3 of this span's eval split, "
            "trained on in accepted span 2.") in failure_message(findings)
    assert kept["train_images"] == {fingerprint(b"new"): ["n1"]}  # kept for the spans after this one


def test_distances_by_hand():
    assert l_infinity({"0": 0.5, "1": 0.5}, {"0": 0.9, "1": 0.1}) == pytest.approx(0.4)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: 1 in base 2
    assert jensen_shannon([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25); 0.5 KL(p||m) + 0.5 KL(q||m)
    expected = 0.5 * np.log2(1 / 0.75) + 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25))
    assert jensen_shannon([1, 0], [0.5, 0.5]) == pytest.approx(expected)


def test_a_drifted_span_stops_the_gate_naming_the_feature_and_both_distributions():
    before = profile([(f"a{i}", bytes([i])) for i in range(120)], boxes=((0.1, 0.1, 0.2, 0.2),))
    after = profile([(f"b{i}", bytes([i, 1])) for i in range(120)], boxes=((0.1, 0.1, 0.9, 0.9),))
    earlier = [{"span": 1, "eval_images": {}, "train_distributions": before.distributions(), "train_examples": 120}]
    findings = new_report(3)
    judge(findings, {"train": after, "eval": profile([("e", b"e")])}, earlier, THRESHOLDS, "stop", 100)
    (moved,) = findings["drift"]
    assert (moved["feature"], moved["measure"], moved["distance"], moved["previous_span"]) == (
        "box_size", "Jensen-Shannon", 1.0, 1)
    assert not passed(findings)
    assert failure_message(findings).startswith("Drift: box_size moved 1.0 (Jensen-Shannon) from span 1, more than "
                                                "0.15: now [")
    warned = new_report(3)
    judge(warned, {"train": after, "eval": profile([("e", b"e")])}, earlier, THRESHOLDS, "warn", 100)
    assert warned["drift"] and passed(warned)  # reported, the run goes on
    small = new_report(3)
    judge(small, {"train": after, "eval": profile([("e", b"e")])}, earlier, THRESHOLDS, "stop", 500)
    assert small["drift"] == [] and small["drift_note"].startswith("drift not judged: fewer than 500")


def test_the_profile_histograms_and_class_shares_by_hand():
    split = SplitProfile()
    # 100 x 200 image; box A 0.25 x 0.25 of the image (size sqrt(0.0625) = 0.25, aspect log2(50 / 25) = 1),
    # box B a sliver beyond the aspect range (log2 of 64 clipped to the last bin), labels 2 and 0
    split.add(b"one", "a", 100, 200, [(0.0, 0.0, 0.25, 0.25), (0.0, 0.0, 0.01, 0.32)], [2, 0])
    split.add(b"two", "b", 5000, 300, [], [])  # no boxes; a longer side beyond the last image-size edge
    found = split.distributions()
    assert found["classes"] == {"0": 0.5, "2": 0.5}
    assert found["box_size"] == [0.5, 0.0, 0.5] + [0.0] * 7  # sqrt(0.0032) = 0.057 in [0, 0.1); 0.25 in [0.2, 0.3)
    assert found["box_aspect"] == [0.0] * 8 + [0.5, 0.0, 0.0, 0.5]  # log2(2) = 1 in [1, 1.5); log2(64) -> [2.5, 3]
    assert found["boxes_per_image"] == [0.5, 0.0, 0.5] + [0.0] * 6  # 0 boxes, 2 boxes
    assert found["image_size"] == [0.0, 0.5] + [0.0] * 6 + [0.5]  # 200 in [128, 256); 5000 in the last bin
    assert SplitProfile().distributions()["classes"] == {}  # no boxes: no class shares, not a division by zero


def test_histograms_clip_below_the_first_edge_and_round_to_6_places():
    split = SplitProfile()
    # a box 64 times taller than wide: log2(1 / 64) = -6, below the aspect range, counts in the first bin
    split.add(b"one", "a", 100, 100, [(0.0, 0.0, 0.64, 0.01)], [0])
    found = split.distributions()
    assert found["box_aspect"] == [1.0] + [0.0] * 11 and found["image_size"] == [1.0] + [0.0] * 8  # one: 1.0
    split.add(b"two", "b", 300, 300, [(0.0, 0.0, 0.5, 0.5)], [1])
    split.add(b"three", "c", 600, 600, [(0.0, 0.0, 0.5, 0.5)], [2])
    thirds = split.distributions()
    assert thirds["image_size"] == [0.333333, 0.0, 0.333333, 0.0, 0.333333, 0.0, 0.0, 0.0, 0.0]  # 100, 300, 600 px
    assert thirds["classes"] == {"0": 0.333333, "1": 0.333333, "2": 0.333333}
    split.add(b"four", "d", 600, 600, [(0.0, 0.0, 0.5, 0.5)] * 3, [2, 2, 2])
    assert split.distributions()["classes"] == {"0": 0.166667, "1": 0.166667, "2": 0.666667}  # counted, not seen


def test_fingerprints_are_the_sha256_prefix_of_the_bytes():
    assert fingerprint(b"abc") == "ba7816bf8f01cfea414140de5dae2223"


def test_distances_at_their_edges():
    assert l_infinity({"0": 1.0}, {"1": 1.0}) == 1.0  # a class on one side only counts in full
    assert l_infinity({"0": 1.0}, {"0": 0.8, "1": 0.2}) == pytest.approx(0.2)  # a missing class has share 0
    assert l_infinity({"0": 0.8, "1": 0.2}, {"0": 1.0}) == pytest.approx(0.2)
    assert l_infinity({}, {}) == 0.0
    assert jensen_shannon([0, 0], [1, 0]) == 0.0 and jensen_shannon([1, 0], [0, 0]) == 0.0  # nothing to compare
    assert jensen_shannon([2, 2], [1, 1]) == pytest.approx(0.0)  # counts are normalised first
    assert jensen_shannon([3, 1], [1, 3]) == pytest.approx(jensen_shannon([0.75, 0.25], [0.25, 0.75]))


def test_drift_is_more_than_the_threshold_and_only_features_both_spans_have():
    from components.data_profile import drift

    at_the_edge = drift({"classes": {"0": 0.75, "1": 0.25}}, {"classes": {"0": 0.5, "1": 0.5}}, {"classes": 0.25})
    assert at_the_edge == []  # a distance equal to the threshold is allowed
    moved = drift({"classes": {"0": 0.8, "1": 0.2}, "box_size": [1, 0]}, {"classes": {"0": 0.5, "1": 0.5}},
                  {"classes": 0.25, "box_size": 0.1}, previous_span=3)
    assert moved == [{"feature": "classes", "measure": "L-infinity", "distance": 0.3, "threshold": 0.25,
                      "current": {"0": 0.8, "1": 0.2}, "previous": {"0": 0.5, "1": 0.5}, "previous_span": 3}]
    # a feature one span lacks is skipped, not the end of the list; distances are rounded to 4 places
    thirds = drift({"classes": {"0": 1.0}, "image_size": [1, 0]}, {"classes": {"0": 2 / 3, "1": 1 / 3}},
                   {"image_size": 0.1, "classes": 0.2})
    assert [(d["feature"], d["distance"]) for d in thirds] == [("classes", 0.3333)]
    js = drift({"box_size": [0.9, 0.1]}, {"box_size": [0.1, 0.9]}, {"box_size": 0.1})
    assert js[0]["measure"] == "Jensen-Shannon" and js[0]["distance"] == round(jensen_shannon([0.9, 0.1],
                                                                                            [0.1, 0.9]), 4)


def test_judge_gathers_every_leak_keeps_the_profile_and_judges_drift_from_min_examples_on():
    seen_train = {fingerprint(b"old-train"): ["s1-t1"]}
    earlier = [{"span": 1, "eval_images": {fingerprint(b"old-eval"): ["s1-e1"]}, "train_images": seen_train,
                "train_distributions": profile([("x", b"x")]).distributions(), "train_examples": 2}]
    train = profile([("t1", b"same"), ("t2", b"old-eval")])
    evaluation = profile([("e1", b"same"), ("e2", b"old-train")])
    findings = new_report(3)
    kept = judge(findings, {"train": train, "eval": evaluation}, earlier, THRESHOLDS, "stop", 2)
    assert [leak["in"] for leak in findings["leaks"]] == [
        "this span's eval split", "accepted span 1's eval split",
        "this span's eval split, trained on in accepted span 1"]  # all three, none overwritten
    assert findings["drift"] == [] and "drift_note" not in findings  # 2 examples each: judged (min_examples 2)
    assert kept == {"eval_images": evaluation.images, "train_images": train.images,
                    "train_distributions": train.distributions(), "train_examples": 2}
    small = new_report(3)
    judge(small, {"train": train, "eval": evaluation}, earlier, THRESHOLDS, "stop", 3)
    assert small["drift_note"] == ("drift not judged: fewer than 3 training examples in this span (2) or span 1 (2)")
    many = new_report(3)
    images = [(f"t{i}", f"img-{i}".encode()) for i in range(60)]
    judge(many, {"train": profile(images), "eval": profile(images)}, [], THRESHOLDS, "stop", 100)
    assert len(many["leaks"]) == 50  # listed up to max_listed (50 by default); the gate still stops
    only_train = new_report(3)
    kept = judge(only_train, {"train": train}, [], THRESHOLDS, "stop", 2)
    assert kept["eval_images"] == {} and kept["train_examples"] == 2


def test_judge_with_no_train_split_checks_the_eval_split_alone():
    earlier = [{"span": 1, "eval_images": {fingerprint(b"old-eval"): ["s1-e1"]},
                "train_images": {fingerprint(b"old-train"): ["s1-t1"]}, "train_distributions": {},
                "train_examples": 120}]
    evaluation = profile([("e1", b"old-train"), ("e2", b"new")])
    findings = new_report(3)
    kept = judge(findings, {"eval": evaluation}, earlier, THRESHOLDS, "stop", 100)
    assert findings["leaks"] == [{"train": ["s1-t1"], "eval": ["e1"],
                                  "in": "this span's eval split, trained on in accepted span 1"}]
    assert findings["drift"] == [] and "drift_note" not in findings  # no training data: nothing to drift
    assert kept == {"eval_images": evaluation.images, "train_images": {}, "train_distributions": {},
                    "train_examples": 0}


def test_an_accepted_span_recorded_without_its_example_count_is_not_judged_for_drift():
    before = profile([(f"a{i}", bytes([i])) for i in range(3)], boxes=((0.1, 0.1, 0.2, 0.2),))
    after = profile([(f"b{i}", bytes([i, 1])) for i in range(3)], boxes=((0.1, 0.1, 0.9, 0.9),))
    earlier = [{"span": 1, "eval_images": {}, "train_distributions": before.distributions()}]
    findings = new_report(3)
    judge(findings, {"train": after, "eval": profile([("e", b"e")])}, earlier, THRESHOLDS, "stop", 1)
    assert findings["drift"] == [] and findings["drift_note"] == (
        "drift not judged: fewer than 1 training examples in this span (3) or span 1 (None)")
