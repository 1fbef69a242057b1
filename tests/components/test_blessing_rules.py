import pytest

from components.blessing_rules import boxes_per_class, decide, shown

THRESHOLDS = dict(min_map50=0.5, max_map50_drop=0.01, max_class_ap50_drop=0.1, min_class_boxes=10)


def metrics(ap50, per_class):
    return {"AP50": ap50, "AP": ap50 / 2, "per_class_AP50": per_class}


def test_a_better_average_does_not_hide_a_collapsed_class():
    served = metrics(0.60, {"cat": 0.80, "dog": 0.40, "eel": 0.90})
    candidate = metrics(0.66, {"cat": 0.95, "dog": 0.60, "eel": 0.45})  # the mean rose, eel fell by 0.45
    verdict = decide(candidate, served, {"cat": 50, "dog": 40, "eel": 12}, **THRESHOLDS)
    assert not verdict["blessed"]
    assert verdict["reasons"] == ["class 'eel' AP@0.5 0.450 vs served 0.900 (12 eval boxes): a change of -0.450, "
                                  "below the least allowed -0.100 (max_class_ap50_drop; pycocotools, eval split)"]
    assert verdict["per_class_ap50"]["eel"] == {"candidate": 0.45, "baseline": 0.9, "eval_boxes": 12}
    # with too few eval boxes a class is not judged alone
    assert decide(candidate, served, {"cat": 50, "dog": 40, "eel": 9}, **THRESHOLDS)["blessed"]
    # a drop of exactly the allowed amount passes; a hair more does not
    edge = metrics(0.66, {"cat": 0.95, "dog": 0.60, "eel": 0.80})
    assert decide(edge, served, {"cat": 50, "dog": 40, "eel": 12}, **THRESHOLDS)["blessed"]
    assert not decide(metrics(0.66, {"cat": 0.95, "dog": 0.60, "eel": 0.7999}), served,
                      {"cat": 50, "dog": 40, "eel": 12}, **THRESHOLDS)["blessed"]


def test_value_and_change_thresholds_name_the_numbers_compared_and_their_source():
    served = metrics(0.70, {"cat": 0.7})
    verdict = decide(metrics(0.42, {"cat": 0.42}), served, {"cat": 30}, **THRESHOLDS)
    assert verdict["reasons"] == [
        "mAP@0.5 0.420 is below the value threshold 0.5 (min_map50; pycocotools, eval split: mean over 1 class with "
        "eval boxes)",
        "mAP@0.5 0.420 vs served 0.700: a change of -0.280, below the least allowed -0.010 (max_map50_drop; "
        "pycocotools, eval split)",
        "class 'cat' AP@0.5 0.420 vs served 0.700 (30 eval boxes): a change of -0.280, below the least allowed "
        "-0.100 (max_class_ap50_drop; pycocotools, eval split)"]
    first = decide(metrics(0.55, {"cat": 0.55}), None, {"cat": 30}, **THRESHOLDS)
    assert first["blessed"] and first["reasons"] == [] and "baseline_map50" not in first
    assert decide(metrics(0.5, {"cat": 0.5}), None, {"cat": 30}, **THRESHOLDS)["blessed"]  # the bar itself passes


def test_a_class_absent_from_the_eval_split_is_left_out_not_counted_as_zero():
    """The tree-crown case: three classes, an eval split holding only one of them. COCO's mean over the classes with
    eval boxes is 0.51, which meets a 0.5 bar; the absent classes are named, not averaged in as 0."""
    candidate = metrics(0.51, {"Tree": 0.51})  # pycocotools' per-class list has the classes with eval boxes only
    verdict = decide(candidate, None, {"Alive": 0, "Dead": 0, "Tree": 900}, **THRESHOLDS)
    assert verdict["blessed"] and verdict["classes_without_eval_boxes"] == ["Alive", "Dead"]
    assert verdict["map_definition"] == ("pycocotools, eval split: mean over 1 class with eval boxes, 'Alive', 'Dead' "
                                         "without eval boxes left out")
    refused = decide(metrics(0.49, {"Tree": 0.49}), None, {"Alive": 0, "Dead": 0, "Tree": 900}, **THRESHOLDS)
    assert refused["reasons"] == [
        "mAP@0.5 0.490 is below the value threshold 0.5 (min_map50; pycocotools, eval split: mean over 1 class with "
        "eval boxes, 'Alive', 'Dead' without eval boxes left out)"]
    # served and candidate compared on the classes present only: the absent ones cannot regress
    served = metrics(0.45, {"Tree": 0.45})
    assert decide(candidate, served, {"Alive": 0, "Dead": 0, "Tree": 900}, **THRESHOLDS)["per_class_ap50"] == {
        "Tree": {"candidate": 0.51, "baseline": 0.45, "eval_boxes": 900}}


def test_an_eval_split_without_boxes_blesses_nothing():
    verdict = decide({"AP50": -1.0, "AP": -1.0, "per_class_AP50": {}}, None, {"cat": 0}, **THRESHOLDS)
    assert verdict["reasons"] == ["the eval split has no boxes: there is nothing to judge the candidate by"]


def test_a_number_just_below_the_bar_is_never_printed_as_the_bar():
    verdict = decide(metrics(0.49996, {"cat": 0.49996}), None, {"cat": 30}, **THRESHOLDS)
    assert verdict["reasons"][0].startswith("mAP@0.5 0.49996 is below the value threshold 0.5 ")
    assert shown(0.4996, 0.5) == "0.4996" and shown(0.42, 0.5) == "0.420" and shown(0.5, 0.5) == "0.500"
    assert shown(-0.0101, -0.01) == "-0.0101" and shown(0.2, -0.01) == "0.200"
    assert shown(0.4999999999, 0.5) == repr(0.4999999999) and shown(0.49999994, 0.5) == "0.49999994"


@pytest.mark.parametrize("labels, expected", [
    ([[0, 1, 1], [], [1]], {"cat": 1, "dog": 3, "eel": 0}),
    ([[], []], {"cat": 0, "dog": 0, "eel": 0}),
])
def test_boxes_per_class_counts_the_eval_truth_with_absent_classes_as_zero(labels, expected):
    truth = [{"labels": image} for image in labels]
    assert boxes_per_class(truth, {0: "cat", 1: "dog", 2: "eel"}) == expected


def test_the_verdict_records_the_numbers_compared():
    verdict = decide(metrics(0.62, {"cat": 0.7, "dog": 0.54}), metrics(0.6, {"cat": 0.7, "dog": 0.5}),
                     {"cat": 20, "dog": 20}, **THRESHOLDS)
    assert {k: verdict[k] for k in ("candidate_map50", "candidate_map", "baseline_map50", "baseline_map")} == {
        "candidate_map50": 0.62, "candidate_map": 0.31, "baseline_map50": 0.6, "baseline_map": 0.3}
    assert verdict["map_definition"] == "pycocotools, eval split: mean over 2 classes with eval boxes"


def test_a_drop_of_exactly_the_allowed_amount_passes_and_a_hair_more_is_shown_precisely():
    # 0.25 and 0.5 are exact in binary: the change is exactly -0.25
    at_the_edge = dict(THRESHOLDS, min_map50=0.0, max_map50_drop=0.25, max_class_ap50_drop=0.25)
    assert decide(metrics(0.5, {"cat": 0.5}), metrics(0.75, {"cat": 0.75}), {"cat": 30}, **at_the_edge)["blessed"]
    small = decide(metrics(0.55, {"cat": 0.55}), metrics(0.555, {"cat": 0.555}), {"cat": 30}, **THRESHOLDS)
    assert small["blessed"]  # a drop within max_map50_drop (0.01) is allowed
    verdict = decide(metrics(0.5, {"cat": 0.5}), metrics(0.5101, {"cat": 0.6001}), {"cat": 30}, **THRESHOLDS)
    assert verdict["reasons"] == [
        "mAP@0.5 0.500 vs served 0.510: a change of -0.0101, below the least allowed -0.010 (max_map50_drop; "
        "pycocotools, eval split)",
        "class 'cat' AP@0.5 0.500 vs served 0.600 (30 eval boxes): a change of -0.1001, below the least allowed "
        "-0.100 (max_class_ap50_drop; pycocotools, eval split)"]


def test_a_class_with_exactly_min_class_boxes_is_judged():
    served, candidate = metrics(0.6, {"cat": 0.9}), metrics(0.6, {"cat": 0.5})
    assert not decide(candidate, served, {"cat": 10}, **THRESHOLDS)["blessed"]  # 10 boxes: min_class_boxes
    assert decide(candidate, served, {"cat": 9}, **THRESHOLDS)["blessed"]


def test_a_class_the_served_model_was_not_scored_on_is_skipped_and_the_others_still_judged():
    served = metrics(0.6, {"dog": 0.9})  # scored before 'cat' had eval boxes
    candidate = metrics(0.6, {"cat": 0.7, "dog": 0.4})
    verdict = decide(candidate, served, {"cat": 30, "dog": 30}, **THRESHOLDS)
    assert set(verdict["per_class_ap50"]) == {"dog"}
    assert [r.split(" AP@0.5")[0] for r in verdict["reasons"]] == ["class 'dog'"]  # cat skipped, dog still judged
    refused = decide(metrics(0.4, {"cat": 0.4, "dog": 0.4}), None, {"cat": 30, "dog": 30}, **THRESHOLDS)
    assert refused["reasons"] == ["mAP@0.5 0.400 is below the value threshold 0.5 (min_map50; pycocotools, eval "
                                  "split: mean over 2 classes with eval boxes)"]


def test_the_rule_table_is_what_decide_applied_and_names_the_served_version():
    from components.blessing_rules import rule_table

    served = metrics(0.60, {"cat": 0.80, "dog": 0.40, "eel": 0.90})
    candidate = metrics(0.66, {"cat": 0.95, "dog": 0.60, "eel": 0.45})
    verdict = decide(candidate, served, {"cat": 50, "dog": 40, "eel": 9}, **{**THRESHOLDS, "min_class_boxes": 10})
    verdict["baseline_model"] = "/serving/tfdet/7"
    rows = rule_table(verdict)
    assert [(r["key"], r["value"], r["threshold"], r["passed"]) for r in rows] == [
        ("min_map50", "0.6600", 0.5, True), ("max_map50_drop", "+0.0600", "-0.010", True),
        ("class:cat", "+0.1500", "-0.100", True), ("class:dog", "+0.2000", "-0.100", True),
        ("class:eel", "-0.4500", "-0.100", True)]  # eel fell, but with 9 eval boxes it is not judged alone
    assert [r["name"] for r in rows] == [  # the model card's decision table shows these words
        "value: mAP@0.5 at least min_map50", "change: mAP@0.5 against the served model",
        "class 'cat': AP@0.5 against the served model", "class 'dog': AP@0.5 against the served model",
        "class 'eel': AP@0.5 against the served model (under 10 eval boxes: not judged)"]
    assert [r["against"] for r in rows] == ["the bar"] + ["/serving/tfdet/7"] * 4
    refused = decide(candidate, served, {"cat": 50, "dog": 40, "eel": 12}, **THRESHOLDS)
    failing = [r for r in rule_table(refused) if not r["passed"]]
    assert [r["key"] for r in failing] == ["class:eel"] and len(refused["reasons"]) == 1
    assert [r["against"] for r in rule_table(decide(candidate, None, {"cat": 5}, **THRESHOLDS))] == ["the bar"]
