from components.blessing_rules import boxes_per_class, decide

THRESHOLDS = dict(min_map50=0.5, max_map50_drop=0.01, max_class_ap50_drop=0.1, min_class_boxes=10)


def metrics(ap50, per_class):
    return {"AP50": ap50, "AP": ap50 / 2, "per_class_AP50": per_class}


def test_a_better_average_does_not_hide_a_collapsed_class():
    served = metrics(0.60, {"cat": 0.80, "dog": 0.40, "eel": 0.90})
    candidate = metrics(0.66, {"cat": 0.95, "dog": 0.60, "eel": 0.45})  # the mean rose, eel fell by 0.45
    verdict = decide(True, candidate, served, {"cat": 50, "dog": 40, "eel": 12}, **THRESHOLDS)
    assert not verdict["blessed"]
    assert verdict["reasons"] == ["class 'eel' AP@0.5 0.450 vs served 0.900 (12 eval boxes): a change of -0.450, "
                                  "below the least allowed -0.100 (max_class_ap50_drop)"]
    assert verdict["per_class_ap50"]["eel"] == {"candidate": 0.45, "baseline": 0.9, "eval_boxes": 12}
    # with too few eval boxes a class is not judged alone
    assert decide(True, candidate, served, {"cat": 50, "dog": 40, "eel": 9}, **THRESHOLDS)["blessed"]


def test_value_and_change_thresholds_name_both_numbers():
    served = metrics(0.70, {"cat": 0.7})
    verdict = decide(False, metrics(0.42, {"cat": 0.42}), served, {"cat": 30}, **THRESHOLDS)
    assert verdict["reasons"][:2] == [
        "mAP@0.5 0.420 is below the value threshold 0.5 (TFMA Evaluator)",
        "mAP@0.5 0.420 vs served 0.700: a change of -0.280, below the least allowed -0.010 (max_map50_drop)"]
    first = decide(True, metrics(0.55, {"cat": 0.55}), None, {"cat": 30}, **THRESHOLDS)
    assert first["blessed"] and first["reasons"] == [] and "baseline_map50" not in first


def test_boxes_per_class_counts_the_eval_truth():
    truth = [{"labels": [0, 1, 1]}, {"labels": []}, {"labels": [1]}]
    assert boxes_per_class(truth, {0: "cat", 1: "dog"}) == {"cat": 1, "dog": 3}
