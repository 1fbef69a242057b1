"""BoxGate's executor on tiny real artifacts, with its scan on Beam's DirectRunner in this process: a sound span is
registered with its profile and report; a bad one raises naming what is wrong, keeps its report where TFX will not
delete it, and never enters the registry; the schema anomalies ExampleValidator found stop it too."""

import json
import os

import pytest
from gate_data import example, png
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import standard_artifacts
from tiny_artifacts import artifact, examples_artifact, execute

from components.box_gate import BoxGate, BoxGateReport
from tfdet.dataio import spans

PARAMETERS = {"num_classes": 3, "drift_thresholds": json.dumps({"classes": 0.2}), "drift_action": "stop",
              "min_drift_examples": 100, "max_listed": 50, "decode_images": 1}


def gate(tmp_path, splits, span=1, anomalies=None, name="run"):
    examples = examples_artifact(str(tmp_path / name / "examples"), splits, span=span)
    found = artifact(standard_artifacts.ExampleAnomalies, str(tmp_path / name / "anomalies"))
    for split, described in (anomalies or {}).items():
        proto = anomalies_pb2.Anomalies()
        for feature, text in described.items():
            proto.anomaly_info[feature].description = text
        os.makedirs(os.path.join(found.uri, f"Split-{split}"))
        with open(os.path.join(found.uri, f"Split-{split}", "SchemaDiff.pb"), "wb") as handle:
            handle.write(proto.SerializeToString())
    report = artifact(BoxGateReport, str(tmp_path / "BoxGate" / "report" / name))
    execute(BoxGate, {"examples": examples, "anomalies": found}, {"report": report},
            {**PARAMETERS, "registry_dir": str(tmp_path / "registry")})
    return report


def sound(prefix, count=6, seed=0):
    return [example(f"{prefix}{i}", png(seed + i)) for i in range(count)]


def test_a_sound_span_is_reported_and_registered_with_its_profile(tmp_path):
    report = gate(tmp_path, {"train": sound("t"), "eval": sound("e", 3, seed=50)})
    found = json.load(open(os.path.join(report.uri, "report.json")))
    assert found["passed"] and found["examples_checked"] == {"train": 6, "eval": 3}
    assert (found["num_classes"], found["thresholds"], found["drift_action"]) == (3, {"classes": 0.2}, "stop")
    for split, count in (("train", 6), ("eval", 3)):  # each split's profile, as the model card draws it
        profile = found["profiles"][split]
        assert (profile["examples"], profile["labels"]) == (count, {"1": count})
        assert sorted(profile["distributions"]) == ["box_aspect", "box_size", "boxes_per_image", "classes",
                                                    "image_size"]
        assert profile["distributions"]["classes"] == {"1": 1.0}
    assert report.get_int_custom_property("passed") == 1 and report.get_int_custom_property("bad_examples") == 0
    (entry,) = spans.accepted(str(tmp_path / "registry"))
    assert entry["span"] == 1 and entry["examples_checked"] == {"train": 6, "eval": 3}
    profile = spans.profile(str(tmp_path / "registry"), 1)
    assert profile["train_examples"] == 6 and profile["fingerprints"] == {
        split: os.path.join(report.uri, "fingerprints", f"{split}-*.jsonl") for split in ("train", "eval")}


def test_a_bad_span_raises_keeps_its_report_and_is_not_registered(tmp_path):
    bad = [example("bent", png(9), boxes=((0.5, 0.1, 0.2, 0.4),))]
    with pytest.raises(RuntimeError) as stopped:
        gate(tmp_path, {"train": sound("t") + bad, "eval": sound("e", 3, seed=50)})
    kept = tmp_path / "BoxGate" / "failed_reports" / "report-run.json"  # beside TFX's report/<execution>/
    message = str(stopped.value)
    assert message.startswith("BoxGate stopped the pipeline: 1 of 10 examples have bad boxes or images: box_inverted "
                              "1 (a box has ymin >= ymax or xmin >= xmax). First offenders: train source_id 'bent' "
                              "(box_inverted).")
    assert message.endswith(f"Full report: {kept}")
    assert json.load(open(kept))["offending"] == [{"split": "train", "source_id": "bent", "problems": ["box_inverted"]}]
    assert spans.accepted(str(tmp_path / "registry")) == []


def test_schema_anomalies_and_a_leak_against_an_accepted_span_stop_the_gate(tmp_path):
    gate(tmp_path, {"train": sound("t"), "eval": sound("e", 3, seed=50)}, name="first")
    with pytest.raises(RuntimeError) as stopped:  # span 2's train split holds span 1's eval image e0
        gate(tmp_path, {"train": sound("n", seed=200) + [example("again", png(50))], "eval": sound("f", 3, seed=300)},
             span=2, anomalies={"eval": {"image/height": "Column dropped"}}, name="second")
    message = str(stopped.value)
    assert "Schema anomalies in split eval: image/height: Column dropped." in message
    assert ("Leakage: train image(s) again have the same bytes as eval image(s) e0 of accepted span 1's eval split."
            in message)
    assert [entry["span"] for entry in spans.accepted(str(tmp_path / "registry"))] == [1]


def test_a_span_run_again_is_judged_against_the_spans_before_it_not_its_first_run(tmp_path):
    first = {"train": [example(f"a{i}", png(i), labels=(0,)) for i in range(120)], "eval": sound("e", 3, seed=500)}
    gate(tmp_path, first, span=1, name="first")
    corrected = {"train": [example(f"b{i}", png(1000 + i), labels=(1,)) for i in range(120)],
                 "eval": sound("e", 3, seed=600)}
    with pytest.raises(RuntimeError, match="Drift: classes moved 1.0"):  # as a later span it drifts from span 1
        gate(tmp_path, corrected, span=2, name="later")
    # as span 1's data corrected (every box now class 1) and checked anew, nothing came before it to drift from
    report = gate(tmp_path, corrected, span=1, name="again")
    assert json.load(open(os.path.join(report.uri, "report.json")))["drift"] == []


def test_span_and_version_are_read_as_example_gen_records_them_or_as_properties():
    from components.box_gate import _int_property

    recorded = standard_artifacts.Examples()
    recorded.set_int_custom_property("span", 4)  # TFX 1.16's ExampleGen
    older = standard_artifacts.Examples()
    older.span, older.version = 3, 2  # the artifact type's own properties
    assert (_int_property(recorded, "span"), _int_property(older, "span"), _int_property(older, "version")) == (4, 3, 2)
    assert _int_property(standard_artifacts.Examples(), "version") == 0
