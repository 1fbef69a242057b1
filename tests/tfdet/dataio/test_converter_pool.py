"""The converter's guarantees on real-sized inputs: the process-pool path, cleanup, kills, damaged files."""

import gzip
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys

import pytest

from tfdet.cli import inspect_records
from tfdet.dataio.annotations import RecordError
from tfdet.dataio.converter import _INLINE_BELOW
from tfdet.dataio.pipeline import pipeline
from tfdet.dataio.tfrecord_files import DamagedRecordFile, check_record_file
from tfdet.dataio.tfrecord_utilts import convert_dataset_to_tfrecord

POOL_RECORDS = 2 * _INLINE_BELOW + 6
BAD_AT = 45


def record(path, boxes=(), labels=()):
    return {"image_path": path, "bboxes": [list(b) for b in boxes],
            "labels": [{"id": i, "name": n} for i, n in labels]}


@pytest.fixture
def inputs(tmp_path, image_factory):
    """A good record per index, and one bad record per error code of the converter's table."""
    good = [image_factory(f"good{i}.png", 40 + i % 7, 60) for i in range(POOL_RECORDS)]
    text = tmp_path / "text.jpg"
    text.write_bytes(b"not an image")
    image = image_factory("bad.png", 100, 200)
    bad = {
        "missing_file": record(str(tmp_path / "missing.png")),
        "unreadable_file": record(str(tmp_path)),
        "undecodable_image": record(str(text)),
        "box_outside_image": record(image, [(0, 0, 50, 300)], [(0, "cat")]),
        "box_inverted": record(image, [(50, 10, 20, 40)], [(0, "cat")]),
        "box_zero_area": record(image, [(10, 10, 10, 40)], [(0, "cat")]),
        "box_not_finite": record(image, [(math.nan, 0, 10, 10)], [(0, "cat")]),
        "box_looks_normalised": record(image, [(0.1, 0.1, 0.5, 0.5)], [(0, "cat")]),
        "label_out_of_range": record(image, [(1, 1, 9, 9)], [(5, "eel")]),
        "label_conflict": record(image, [(1, 1, 9, 9)], [(0, "dog")]),
        "malformed_record": {"image_path": image, "bboxes": [[1, 1, 9, 9]]},
    }
    return [record(p, [(1, 2, 20, 30)], [(0, "cat")]) for p in good], bad


def test_record_errors_cross_process_boundaries_intact():
    error = RecordError(17, "/data/a.jpg", "box_inverted", "box 0 is inverted")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.index, copy.image_path, copy.code, copy.detail, str(copy)) == (
        17, "/data/a.jpg", "box_inverted", "box 0 is inverted", "record 17 (/data/a.jpg): box 0 is inverted")


@pytest.mark.timeout(240)
def test_every_bad_input_class_raises_the_same_error_through_the_pool(tmp_path, inputs):
    good, bad = inputs
    for code, bad_record in bad.items():
        records = good[:BAD_AT] + [bad_record] + good[BAD_AT + 1:]
        errors = []
        for workers in (1, 2):
            out = tmp_path / f"{code}-{workers}"
            with pytest.raises(RecordError) as caught:
                convert_dataset_to_tfrecord(records, 3, str(out), num_classes=3, num_workers=workers,
                                            show_progress=False)
            errors.append((caught.value.code, caught.value.index, str(caught.value)))
            assert os.listdir(out) == [], f"{code}: a failed conversion left files"
        assert errors[0] == errors[1], code
        assert errors[0][:2] == (code, BAD_AT)


@pytest.mark.timeout(240)
def test_skip_mode_counts_and_bytes_are_the_same_through_the_pool(tmp_path, inputs):
    good, bad = inputs
    records = list(good)
    for offset, bad_record in enumerate(bad.values()):
        records.insert(3 + 6 * offset, bad_record)
    reports = [convert_dataset_to_tfrecord(records, 4, str(tmp_path / f"w{workers}"), num_classes=3,
                                           num_workers=workers, on_error="skip", show_progress=False)
               for workers in (1, 2)]
    inline, pooled = (report.to_dict() for report in reports)
    for report in (inline, pooled):
        report.pop("seconds"), report.pop("shards")
    assert inline == pooled
    assert (reports[1].records_seen, reports[1].written, reports[1].rejected) == (len(records), len(good), len(bad))
    assert sorted(reports[1].rejected_by_reason) == sorted(bad)
    for left, right in zip(reports[0].shards, reports[1].shards):
        assert open(left, "rb").read() == open(right, "rb").read()


@pytest.mark.timeout(120)
def test_a_generator_input_with_a_bad_record_does_not_hang(tmp_path, inputs):
    good, bad = inputs

    def records():
        yield from good[:10]
        yield bad["box_inverted"]
        yield from good[10:]

    with pytest.raises(RecordError, match=r"^record 10 \(.*bad.png\): box 0 \[50, 10, 20, 40\] is inverted"):
        convert_dataset_to_tfrecord(records(), 2, str(tmp_path / "gen"), show_progress=False)
    report = convert_dataset_to_tfrecord(records(), 2, str(tmp_path / "gen"), on_error="skip", show_progress=False)
    assert (report.records_seen, report.written, report.rejected) == (len(good) + 1, len(good), 1)


def test_cleanup_touches_only_this_prefix(tmp_path, image_factory):
    path = image_factory("a.png", 10, 10)
    out = tmp_path / "out"
    convert_dataset_to_tfrecord([record(path)] * 2, 2, str(out), prefix="train-hard")
    convert_dataset_to_tfrecord([record(path)] * 3, 3, str(out), prefix="train")
    # leftovers of killed conversions: one of this prefix, one of another
    (out / "train-00000-of-00007.tfrecord.tmp").write_bytes(b"partial")
    (out / "train-hard-00001-of-00004.tfrecord.tmp").write_bytes(b"partial")
    report = convert_dataset_to_tfrecord([record(path)] * 2, 2, str(out), prefix="train")
    assert sorted(os.listdir(out)) == [
        "label_map.json",
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
        "train-hard-00000-of-00002.tfrecord", "train-hard-00001-of-00002.tfrecord",
        "train-hard-00001-of-00004.tfrecord.tmp", "train-hard-report.json", "train-report.json"]
    assert report.replaced == ["train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
                               "train-00002-of-00003.tfrecord", "train-00000-of-00007.tfrecord.tmp"]
    with open(out / "train-report.json") as handle:
        assert json.load(handle)["replaced"] == report.replaced
    source = dict(name="InputReadRecordFiles", pattern_file=str(out / "train-hard-*.tfrecord"))
    hard = [example["image_id"] for example in pipeline([source]).as_numpy_iterator()]
    assert sorted(hard) == [b"train-hard-0", b"train-hard-1"]


def test_prefix_must_be_a_plain_name(tmp_path):
    with pytest.raises(ValueError, match=r"prefix must be a plain file-name prefix .* got '\.\./train'"):
        convert_dataset_to_tfrecord([], 1, str(tmp_path), prefix="../train")


KILLED_CONVERSION = """
import sys, time
from tfdet.dataio.converter import convert_dataset_to_tfrecord
paths = sys.argv[2:]
def records():
    for i, path in enumerate(paths):
        print(i, flush=True)
        time.sleep(0.02)
        yield {"image_path": path, "bboxes": [[1, 2, 20, 30]], "labels": [{"id": i % 2, "name": "ab"[i % 2]}]}
convert_dataset_to_tfrecord(records(), 3, sys.argv[1], prefix="train", num_workers=2, show_progress=False)
print("finished", flush=True)
"""


@pytest.mark.timeout(180)
def test_a_killed_conversion_is_repaired_by_a_rerun(tmp_path, image_factory):
    paths = [image_factory(f"k{i}.png", 30 + i % 5, 40) for i in range(150)]
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", KILLED_CONVERSION, str(out)] + paths,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    for line in process.stdout:
        if line.strip() == "60":
            break
    os.killpg(process.pid, signal.SIGKILL)  # the converter and its workers
    process.wait(30)
    left = sorted(os.listdir(out))
    assert left and all(name.endswith(".tfrecord.tmp") for name in left), left  # nothing a *.tfrecord glob takes

    def rerun(folder):
        return convert_dataset_to_tfrecord(
            [{"image_path": p, "bboxes": [[1, 2, 20, 30]], "labels": [{"id": i % 2, "name": "ab"[i % 2]}]}
             for i, p in enumerate(paths)], 3, str(folder), prefix="train", num_workers=2, show_progress=False)

    repaired, clean = rerun(out), rerun(tmp_path / "clean")
    assert repaired.replaced == left
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "clean"))
    for name in os.listdir(out):
        if name.endswith(".tfrecord") or name == "label_map.json":
            assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert (repaired.written, repaired.examples_per_shard) == (clean.written, clean.examples_per_shard) == (
        150, [50, 50, 50])


def test_a_cut_short_shard_is_named_before_reading(tmp_path, image_factory):
    path = image_factory("a.png", 10, 10)
    report = convert_dataset_to_tfrecord([record(path)] * 4, 2, str(tmp_path / "out"))
    assert check_record_file(report.shards[0]) == 2
    data = open(report.shards[1], "rb").read()
    with open(report.shards[1], "wb") as handle:
        handle.write(data[:-10])
    with pytest.raises(DamagedRecordFile) as error:
        pipeline([dict(name="InputReadRecordFiles", pattern_file=str(tmp_path / "out" / "*.tfrecord"))])
    size = len(data) // 2
    assert str(error.value) == (
        f"{report.shards[1]}: record 1 at byte {size} needs {size} bytes but the file ends after {size - 10}; "
        f"the file is damaged (cut short by an interrupted copy or conversion?): copy or convert it again, or "
        f"leave it out of the pattern")


def test_inspect_names_a_damaged_compressed_shard(tmp_path, image_factory):
    path = image_factory("a.png", 10, 10)
    report = convert_dataset_to_tfrecord([record(path)] * 4, 2, str(tmp_path / "out"))
    compressed = {}
    for shard in report.shards:  # as TFX's ExampleGen writes them
        compressed[shard + ".gz"] = gzip.compress(open(shard, "rb").read())
        with open(shard + ".gz", "wb") as handle:
            handle.write(compressed[shard + ".gz"])
    assert inspect_records(str(tmp_path / "out" / "*.gz"), size=32)["examples"] == 4
    damaged = report.shards[1] + ".gz"
    with open(damaged, "wb") as handle:
        handle.write(compressed[damaged][:-30])
    with pytest.raises(DamagedRecordFile, match=rf"^{damaged}: .*the file is damaged"):
        inspect_records(str(tmp_path / "out" / "*.gz"), size=32)


def test_inspect_on_a_shard_damaged_inside_is_one_line_without_tensorflows_internals(tmp_path, image_factory, capsys):
    from tfdet.cli import main

    path = image_factory("a.png", 10, 10)
    report = convert_dataset_to_tfrecord([record(path)] * 4, 1, str(tmp_path / "out"), prefix="train",
                                         show_progress=False)
    data = bytearray(open(report.shards[0], "rb").read())
    data[20:28] = b"\0" * 8  # inside the first record's bytes: the lengths hold, its checksum breaks
    open(report.shards[0], "wb").write(bytes(data))
    assert main(["inspect", str(tmp_path / "out" / "train-*.tfrecord"), "--size", "32"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(rf"tfdet inspect: error: {re.escape(report.shards[0])}: corrupted record at 12; the file is "
                        rf"damaged \(cut short by an interrupted copy or conversion\?\): copy or convert it again, "
                        rf"or leave it out of the pattern", line), line
