"""CompareWithBaseline's executor on tiny real artifacts (tests/components/tiny_artifacts.py): it picks the newest
whole served version as the baseline, reads both models' figures from pycocotools through their serving signatures,
lets each rule refuse on its own, and writes the verdict TFX's resolver and the Pusher read."""

import json
import os

import pytest
from tfx.types import standard_artifacts
from tiny_artifacts import NAMES, artifact, detections_count, eval_records, examples_artifact, execute, save_echo

from components.baseline_blessing import CompareWithBaseline, class_names

RULES = dict(min_map50=0.5, max_map50_drop=0.01, max_class_ap50_drop=0.1, min_class_boxes=10)
SOURCE = "pycocotools, eval split"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("blessing")
    records = eval_records()
    examples = examples_artifact(str(root / "examples"), {"train": records[:2], "eval": records})
    models = {}
    for name, kwargs in {"perfect": {}, "no_disc": {"keep": (0,)}, "half": {"every": 2}}.items():
        model = artifact(standard_artifacts.Model, str(root / "models" / name))
        model.id = len(models) + 1
        save_echo(os.path.join(model.uri, "Format-Serving"), **kwargs)
        models[name] = model
    assert detections_count(os.path.join(models["half"].uri, "Format-Serving"), records).tolist() == [1] * 12
    return root, examples, models


def judge(world, tmp_path, candidate, served=None, **rules):
    """Runs the executor with ``candidate`` against a serving directory holding ``served`` (a model's name)."""
    root, examples, models = world
    serving = tmp_path / "serving"
    serving.mkdir(parents=True)
    if served:
        save_echo(str(serving / "1700000001"), **{"perfect": {}, "half": {"every": 2}}[served])
        os.makedirs(serving / "1700000002" / "variables")  # newer, but cut short: never the baseline
        os.makedirs(serving / ".tfdet-push-1700000003-0abc")  # a staging folder: not a version at all
    blessing = artifact(standard_artifacts.ModelBlessing, str(tmp_path / "blessing"))
    execute(CompareWithBaseline, {"examples": examples, "model": models[candidate]}, {"blessing": blessing},
            {"serving_dir": str(serving), "num_classes": 2, **{**RULES, **rules}, "split": "eval"})
    verdict = json.load(open(tmp_path / "blessing" / "comparison.json"))
    marker = "BLESSED" if verdict["blessed"] else "NOT_BLESSED"
    assert sorted(os.listdir(tmp_path / "blessing")) == sorted([marker, "comparison.json", "detections.json",
                                                             "evaluation.json"])
    assert blessing.get_int_custom_property("blessed") == int(verdict["blessed"])
    assert blessing.get_string_custom_property("current_model") == models[candidate].uri
    assert blessing.get_int_custom_property("current_model_id") == models[candidate].id
    return verdict, blessing, serving


def test_the_first_model_is_judged_by_the_value_rule_alone(world, tmp_path):
    verdict, blessing, _ = judge(world, tmp_path, "perfect")
    assert verdict["blessed"] and verdict["reasons"] == [] and verdict["baseline_model"] is None
    assert verdict["candidate_map50"] == 1.0 and verdict["candidate_map"] == 1.0
    assert verdict["map_definition"] == f"{SOURCE}: mean over 2 classes with eval boxes"
    assert not blessing.has_custom_property("baseline_model")


def test_the_baseline_is_the_newest_whole_version_and_an_equal_candidate_passes(world, tmp_path):
    verdict, blessing, serving = judge(world, tmp_path, "perfect", served="perfect")
    assert verdict["blessed"] and verdict["baseline_model"] == str(serving / "1700000001")
    assert blessing.get_string_custom_property("baseline_model") == str(serving / "1700000001")
    assert verdict["per_class_ap50"] == {name: {"candidate": 1.0, "baseline": 1.0, "eval_boxes": 12}
                                         for name in ("square", "disc")}  # named from the model's label map


def test_the_value_rule_refuses_alone(world, tmp_path):
    verdict, _, _ = judge(world, tmp_path, "half", min_map50=0.9, max_map50_drop=1.0, max_class_ap50_drop=1.0,
                          served="perfect")
    (reason,) = verdict["reasons"]
    assert not verdict["blessed"] and reason == (
        f"mAP@0.5 {verdict['candidate_map50']:.3f} is below the value threshold 0.9 (min_map50; {SOURCE}: mean over "
        f"2 classes with eval boxes)")
    assert 0.45 < verdict["candidate_map50"] < 0.55  # half of each class found, at full precision


def test_the_change_rule_refuses_alone(world, tmp_path):
    verdict, _, _ = judge(world, tmp_path, "half", min_map50=0.0, max_map50_drop=0.1, max_class_ap50_drop=1.0,
                          served="perfect")
    (reason,) = verdict["reasons"]
    change = verdict["candidate_map50"] - 1.0
    assert reason == (f"mAP@0.5 {verdict['candidate_map50']:.3f} vs served 1.000: a change of {change:.3f}, below the "
                      f"least allowed -0.100 (max_map50_drop; {SOURCE})")


def test_the_per_class_rule_refuses_alone_naming_the_class(world, tmp_path):
    verdict, _, _ = judge(world, tmp_path, "no_disc", min_map50=0.0, max_map50_drop=1.0, served="perfect")
    (reason,) = verdict["reasons"]
    assert reason == (f"class 'disc' AP@0.5 0.000 vs served 1.000 (12 eval boxes): a change of -1.000, below the least "
                      f"allowed -0.100 (max_class_ap50_drop; {SOURCE})")
    fewer = judge(world, tmp_path / "fewer", "no_disc", min_map50=0.0, max_map50_drop=1.0, min_class_boxes=13,
                  served="perfect")[0]
    assert fewer["blessed"]  # 12 eval boxes: under min_class_boxes, the class is not judged alone


def test_a_worse_model_is_refused_by_every_rule_at_once(world, tmp_path):
    verdict, _, _ = judge(world, tmp_path, "no_disc", served="perfect", min_map50=0.6)
    assert [reason.split(" (")[-1].split(";")[0] for reason in verdict["reasons"]] == [
        "min_map50", "max_map50_drop", "max_class_ap50_drop"]


def test_class_names_come_from_the_models_label_map_or_are_its_ids(tmp_path):
    assert class_names(save_echo(str(tmp_path / "named")), 3) == {**NAMES, 2: "2"}
    assert class_names(save_echo(str(tmp_path / "anonymous"), names=None), 2) == {0: "0", 1: "1"}
