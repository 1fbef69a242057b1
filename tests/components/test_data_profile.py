import numpy as np
import pytest

from components.box_checks import failure_message, new_report, passed
from components.data_profile import (
    BINS,
    THIS_SPAN,
    SplitProfile,
    _bin_counts,
    fingerprint,
    fingerprint_findings,
    jensen_shannon,
    judge,
    l_infinity,
)

THRESHOLDS = {"classes": 0.2, "box_size": 0.15, "box_aspect": 0.15, "boxes_per_image": 0.15, "image_size": 0.25}


def profile(count=1, size=(100, 100), boxes=((0.1, 0.1, 0.3, 0.3),), labels=(0,)):
    split = SplitProfile()
    for _ in range(count):
        split.add(*size, list(boxes), list(labels))
    return split


def here(split, *ids):
    return [(THIS_SPAN, split, source_id) for source_id in ids]


def test_an_image_in_train_and_eval_is_a_leak_that_stops_the_gate():
    duplicates, leaks = fingerprint_findings(here("train", "t3", "t2") + here("eval", "e1"))
    assert leaks == [((0, 0, 0), {"train": ["t2", "t3"], "eval": ["e1"], "in": "this span's eval split"})]
    assert duplicates == [("train", ["t2", "t3"])]  # reported, not fatal on its own
    findings = {**new_report(3), "leaks": [leak for _, leak in leaks], "leak_count": 1}
    assert not passed(findings)
    assert "Leakage: train image(s) t2, t3 have the same bytes as eval image(s) e1 of this span's eval split." in \
        failure_message(findings)
    assert fingerprint_findings(here("train", "t1", "t2")) == ([("train", ["t1", "t2"])], [])
    assert fingerprint_findings(here("train", "t1") + here("eval", "e1", "e2"))[0] == [("eval", ["e1", "e2"])]
    assert fingerprint_findings(here("train", "t1")) == ([], [])  # once: nothing to say


def test_an_earlier_spans_eval_image_in_the_new_train_is_a_leak():
    _, leaks = fingerprint_findings([(4, "eval", "span4-e7")] + here("train", "n1"))
    assert leaks == [((1, -4, 0), {"train": ["n1"], "eval": ["span4-e7"], "in": "accepted span 4's eval split"})]
    assert fingerprint_findings([(4, "eval", "span4-e7"), (4, "eval", "span4-e8")]) == ([], [])  # not this span's


def test_an_earlier_spans_train_image_in_the_new_eval_is_a_leak():
    """The served model (and any window) trained on it: evaluating the candidate there would flatter it."""
    _, leaks = fingerprint_findings([(2, "train", "span2-t4")] + here("eval", "e3"))
    assert leaks == [((1, -2, 1), {"train": ["span2-t4"], "eval": ["e3"],
                                   "in": "this span's eval split, trained on in accepted span 2"})]
    findings = {**new_report(3), "leaks": [leaks[0][1]]}
    assert not passed(findings)
    assert ("Leakage: train image(s) span2-t4 have the same bytes as eval image(s) e3 of this span's eval split, "
            "trained on in accepted span 2.") in failure_message(findings)
    # an earlier span's train image in the new train split, or its eval image in the new eval split, is no leak
    assert fingerprint_findings([(2, "train", "a"), (2, "eval", "b")] + here("train", "c")) == ([], [
        ((1, -2, 0), {"train": ["c"], "eval": ["b"], "in": "accepted span 2's eval split"})])
    assert fingerprint_findings([(2, "eval", "b")] + here("eval", "c")) == ([], [])


def test_every_leak_of_one_image_is_listed_this_spans_first_then_newest_span_first():
    _, leaks = fingerprint_findings([(1, "eval", "s1-e"), (3, "train", "s3-t"), (3, "eval", "s3-e")]
                                    + here("train", "t") + here("eval", "e"))
    assert [order for order, _ in leaks] == sorted(order for order, _ in leaks)
    assert [leak["in"] for _, leak in leaks] == [
        "this span's eval split", "accepted span 3's eval split", "this span's eval split, trained on in accepted "
        "span 3", "accepted span 1's eval split"]


def test_distances_by_hand():
    assert l_infinity({"0": 0.5, "1": 0.5}, {"0": 0.9, "1": 0.1}) == pytest.approx(0.4)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: 1 in base 2
    assert jensen_shannon([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25); 0.5 KL(p||m) + 0.5 KL(q||m)
    expected = 0.5 * np.log2(1 / 0.75) + 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25))
    assert jensen_shannon([1, 0], [0.5, 0.5]) == pytest.approx(expected)


def test_a_drifted_span_stops_the_gate_naming_the_feature_and_both_distributions():
    before = profile(120, boxes=((0.1, 0.1, 0.2, 0.2),))
    after = profile(120, boxes=((0.1, 0.1, 0.9, 0.9),))
    earlier = [{"span": 1, "train_distributions": before.distributions(), "train_examples": 120}]
    findings = new_report(3)
    judge(findings, {"train": after, "eval": profile()}, earlier, THRESHOLDS, "stop", 100)
    (moved,) = findings["drift"]
    assert (moved["feature"], moved["measure"], moved["distance"], moved["previous_span"]) == (
        "box_size", "Jensen-Shannon", 1.0, 1)
    assert not passed(findings)
    assert failure_message(findings).startswith("Drift: box_size moved 1.0 (Jensen-Shannon) from span 1, more than "
                                                "0.15: now [")
    warned = new_report(3)
    judge(warned, {"train": after, "eval": profile()}, earlier, THRESHOLDS, "warn", 100)
    assert warned["drift"] and passed(warned)  # reported, the run goes on
    small = new_report(3)
    judge(small, {"train": after, "eval": profile()}, earlier, THRESHOLDS, "stop", 500)
    assert small["drift"] == [] and small["drift_note"].startswith("drift not judged: fewer than 500")


def test_the_profile_histograms_and_class_shares_by_hand():
    split = SplitProfile()
    # 100 x 200 image; box A 0.25 x 0.25 of the image (size sqrt(0.0625) = 0.25, aspect log2(50 / 25) = 1),
    # box B a sliver beyond the aspect range (log2 of 64 clipped to the last bin), labels 2 and 0
    split.add(100, 200, [(0.0, 0.0, 0.25, 0.25), (0.0, 0.0, 0.01, 0.32)], [2, 0])
    split.add(5000, 300, [], [])  # no boxes; a longer side beyond the last image-size edge
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
    split.add(100, 100, [(0.0, 0.0, 0.64, 0.01)], [0])
    found = split.distributions()
    assert found["box_aspect"] == [1.0] + [0.0] * 11 and found["image_size"] == [1.0] + [0.0] * 8  # one: 1.0
    split.add(300, 300, [(0.0, 0.0, 0.5, 0.5)], [1])
    split.add(600, 600, [(0.0, 0.0, 0.5, 0.5)], [2])
    thirds = split.distributions()
    assert thirds["image_size"] == [0.333333, 0.0, 0.333333, 0.0, 0.333333, 0.0, 0.0, 0.0, 0.0]  # 100, 300, 600 px
    assert thirds["classes"] == {"0": 0.333333, "1": 0.333333, "2": 0.333333}
    split.add(600, 600, [(0.0, 0.0, 0.5, 0.5)] * 3, [2, 2, 2])
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


def test_profiles_of_parts_merge_into_the_whole_and_match_numpys_histogram():
    rng = np.random.default_rng(0)
    whole, first, second = SplitProfile(), SplitProfile(), SplitProfile()
    for index in range(200):
        y, x = rng.uniform(0, 0.5, 2)
        h, w = rng.uniform(0.001, 0.5, 2)
        size = (int(rng.integers(1, 5000)), int(rng.integers(1, 5000)))
        boxes = [(y, x, y + h, x + w)] * int(rng.integers(0, 40))
        labels = [int(rng.integers(0, 4))] * len(boxes)
        whole.add(*size, boxes, labels)
        (first if index % 3 else second).add(*size, boxes, labels)
    merged = first.merge(second)
    assert merged.examples == whole.examples == 200 and merged.labels == whole.labels
    for name in BINS:
        np.testing.assert_array_equal(merged.counts[name], whole.counts[name])
    values = rng.uniform(-5, 5, 1000).tolist() + [-3.0, 3.0, 0.0, 2.5]  # the edges themselves too
    np.testing.assert_array_equal(
        SplitProfile().counts["box_aspect"] + np.histogram(np.clip(values, -3, 3), BINS["box_aspect"])[0],
        _bin_counts(values, BINS["box_aspect"]))


def test_judge_keeps_the_profile_and_judges_drift_from_min_examples_on():
    earlier = [{"span": 1, "train_distributions": profile().distributions(), "train_examples": 2}]
    train = profile(2)
    findings = new_report(3)
    kept = judge(findings, {"train": train, "eval": profile()}, earlier, THRESHOLDS, "stop", 2)
    assert findings["drift"] == [] and "drift_note" not in findings  # 2 examples each: judged (min_examples 2)
    assert kept == {"train_distributions": train.distributions(), "train_examples": 2}
    small = new_report(3)
    judge(small, {"train": train}, earlier, THRESHOLDS, "stop", 3)
    assert small["drift_note"] == ("drift not judged: fewer than 3 training examples in this span (2) or span 1 (2)")


def test_judge_with_no_train_split_judges_no_drift():
    earlier = [{"span": 1, "train_distributions": profile().distributions(), "train_examples": 120}]
    findings = new_report(3)
    kept = judge(findings, {"eval": profile()}, earlier, THRESHOLDS, "stop", 100)
    assert findings["drift"] == [] and "drift_note" not in findings  # no training data: nothing to drift
    assert kept == {"train_distributions": {}, "train_examples": 0}


def test_an_accepted_span_recorded_without_its_example_count_is_not_judged_for_drift():
    before = profile(3, boxes=((0.1, 0.1, 0.2, 0.2),))
    after = profile(3, boxes=((0.1, 0.1, 0.9, 0.9),))
    earlier = [{"span": 1, "train_distributions": before.distributions()}]
    findings = new_report(3)
    judge(findings, {"train": after, "eval": profile()}, earlier, THRESHOLDS, "stop", 1)
    assert findings["drift"] == [] and findings["drift_note"] == (
        "drift not judged: fewer than 1 training examples in this span (3) or span 1 (None)")
