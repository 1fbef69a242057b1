"""BoxGate's scan as a Beam pipeline (components/box_scan.py + box_gate.gate), on Beam's DirectRunner in this
process: every problem kind, leakage within the span and against an earlier one, duplicates, drift and the report's
counts, against what the data was made to hold (tests/components/gate_data.py)."""

import json
import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from gate_data import NUM_CLASSES, PROBLEM_EXAMPLES, earlier_span, example, png, write_span, write_split

from components import box_checks, box_scan
from components.box_gate import gate
from components.data_profile import fingerprint

THRESHOLDS = {"classes": 0.2, "box_size": 0.15, "box_aspect": 0.15, "boxes_per_image": 0.15, "image_size": 0.25}


def in_process() -> beam.Pipeline:
    return beam.Pipeline(options=PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"]))


def run_gate(uri, report_dir, registry_dir="", span=2, max_listed=50, decode_images=True, splits=("train", "eval")):
    return gate(uri, list(splits), str(report_dir / "no-anomalies"), span, str(report_dir), NUM_CLASSES,
                registry_dir, THRESHOLDS, "stop", 100, max_listed, decode_images, in_process())


@pytest.fixture(scope="module")
def span_with_everything(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    records = write_span(str(root / "examples"))
    registry = root / "registry"
    os.makedirs(registry)
    earlier = earlier_span(str(root / "earlier"))
    with open(registry / "span-1.json", "w") as handle:
        json.dump({"span": 1, "version": 0, "uri": "x", "examples_checked": {"train": 150}}, handle)
    with open(registry / "span-1.profile.json", "w") as handle:
        json.dump(earlier, handle)
    outcome = run_gate(str(root / "examples"), root / "report", str(registry))
    return root, records, outcome


def test_every_problem_kind_is_counted_and_its_example_named(span_with_everything):
    _, _, outcome = span_with_everything
    findings = outcome["findings"]
    assert findings["examples_checked"] == {"train": 141, "eval": 22}
    assert findings["bad_examples"] == 7 and findings["problems"] == {kind: 1 for kind in PROBLEM_EXAMPLES.values()}
    assert findings["offending"] == [{"split": "train", "source_id": source_id, "problems": [kind]}
                                     for source_id, kind in sorted(PROBLEM_EXAMPLES.items())]
    assert not findings["passed"] and findings["empty_splits"] == []


def test_leaks_within_the_span_and_against_the_earlier_one_and_duplicates(span_with_everything):
    _, _, outcome = span_with_everything
    findings = outcome["findings"]
    assert findings["leaks"] == [
        {"train": ["leak-t"], "eval": ["leak-e"], "in": "this span's eval split"},
        {"train": ["old-eval-again"], "eval": ["old-eval-3"], "in": "accepted span 1's eval split"},
        {"train": ["old-train-7"], "eval": ["old-train-again"],
         "in": "this span's eval split, trained on in accepted span 1"}]
    assert findings["leak_count"] == 3
    assert findings["duplicates"] == {"train": [["dup-a", "dup-b"]]} and findings["duplicate_count"] == {"train": 1}


def test_drift_against_the_earlier_span_is_judged_on_the_sound_training_examples(span_with_everything):
    _, _, outcome = span_with_everything
    findings, kept = outcome["findings"], outcome["profile"]
    assert kept["train_examples"] == 134  # 141 minus the 7 bad ones
    # the earlier span is 90 % class 0; this one has none: classes 1 and 2 (the four plain examples are class 1)
    shares = kept["train_distributions"]["classes"]
    assert shares == {"1": round(69 / 134, 6), "2": round(65 / 134, 6)}
    classes = next(moved for moved in findings["drift"] if moved["feature"] == "classes")
    assert classes["distance"] == 0.9 and classes["previous_span"] == 1
    assert {moved["feature"] for moved in findings["drift"]} == {"classes", "box_size", "box_aspect", "image_size"}


def test_the_report_and_the_fingerprints_the_next_span_reads_are_written(span_with_everything):
    root, records, outcome = span_with_everything
    with open(root / "report" / "report.json") as handle:
        assert json.load(handle) == outcome["findings"]
    kept = outcome["profile"]["fingerprints"]
    assert kept == {split: str(root / "report" / "fingerprints" / f"{split}-*.jsonl") for split in ("train", "eval")}
    import glob

    lines = [json.loads(line) for path in glob.glob(kept["eval"]) for line in open(path)]
    assert sorted(source_id for _, source_id in lines) == sorted(
        [f"e{i:03d}" for i in range(20)] + ["leak-e", "old-train-again"])
    assert [key for key, source_id in lines if source_id == "leak-e"] == [fingerprint(png(7001))]
    train = [json.loads(line)[1] for path in glob.glob(kept["train"]) for line in open(path)]
    assert len(train) == 134 and not set(train) & set(PROBLEM_EXAMPLES)  # the sound examples only


def test_a_clean_span_passes_and_an_empty_or_missing_split_does_not(tmp_path):
    write_split(str(tmp_path / "ex"), "train", [example(f"t{i}", png(i)) for i in range(5)])
    write_split(str(tmp_path / "ex"), "eval", [example(f"e{i}", png(100 + i)) for i in range(3)])
    clean = run_gate(str(tmp_path / "ex"), tmp_path / "r1")["findings"]
    assert clean["passed"] and clean["examples_checked"] == {"train": 5, "eval": 3} and clean["leaks"] == []
    write_split(str(tmp_path / "ex2"), "train", [example(f"t{i}", png(i)) for i in range(5)])
    write_split(str(tmp_path / "ex2"), "eval", [])  # files with no example in them
    empty = run_gate(str(tmp_path / "ex2"), tmp_path / "r2", splits=("train", "eval", "test"))["findings"]
    assert empty["empty_splits"] == ["eval", "test"] and not empty["passed"]
    assert empty["examples_checked"] == {"train": 5, "eval": 0, "test": 0}


def test_lists_are_bounded_counts_are_not_and_decode_images_is_honoured(tmp_path):
    inverted = [example(f"bad-{i:02d}", b"not an image", boxes=((0.5, 0.1, 0.2, 0.4),)) for i in range(12)]
    leaked = [example(f"t{i:02d}", png(i)) for i in range(9)]
    write_split(str(tmp_path / "ex"), "train", inverted + leaked)
    write_split(str(tmp_path / "ex"), "eval", [example(f"e{i:02d}", png(i)) for i in range(9)])
    findings = run_gate(str(tmp_path / "ex"), tmp_path / "r", max_listed=5, decode_images=False)["findings"]
    assert findings["problems"] == {"box_inverted": 12}  # the bytes were not looked at
    assert [o["source_id"] for o in findings["offending"]] == [f"bad-{i:02d}" for i in range(5)]
    assert findings["leak_count"] == 9 and [leak["train"] for leak in findings["leaks"]] == [
        [f"t{i:02d}"] for i in range(5)]
    assert box_checks.failure_message(findings).count("Leakage:") == 5 and "... 4 more leaked images." in \
        box_checks.failure_message(findings)


def test_read_scan_of_a_scan_without_examples(tmp_path):
    with in_process() as pipeline:
        box_scan.build(pipeline, {"train": str(tmp_path / "none" / "*")}, 3, True, 50, [], str(tmp_path))
    findings = box_checks.new_report(3)
    assert box_scan.read_scan(str(tmp_path), ["train"], findings, 50) == {}
    assert findings["empty_splits"] == ["train"]
