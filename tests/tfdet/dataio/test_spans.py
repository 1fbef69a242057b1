"""tfdet/dataio/spans.py: the accepted spans and the rolling window drawn from them."""

import json
import os

import pytest

from tfdet.dataio import spans


def examples(tmp_path, name):
    uri = tmp_path / "ExampleGen" / name
    (uri / "Split-train").mkdir(parents=True)
    return str(uri)


def test_window_is_the_newest_span_and_the_accepted_ones_before_it(tmp_path):
    registry = str(tmp_path / "accepted_spans")
    uris = {span: examples(tmp_path, str(span)) for span in (1, 2, 4, 5)}
    for span, uri in uris.items():  # span 3 failed the gate: never registered
        spans.register(registry, span, 0, uri + "/", {"train": span, "eval": 1})
    with open(os.path.join(registry, "span-4.json")) as handle:
        assert json.load(handle) == {"span": 4, "version": 0, "uri": uris[4],
                                     "examples_checked": {"train": 4, "eval": 1}}
    assert [e["span"] for e in spans.accepted(registry)] == [5, 4, 2, 1]
    assert [e["span"] for e in spans.window(registry, uris[5], 3)] == [5, 4, 2]
    assert [e["span"] for e in spans.window(registry, uris[4], 3)] == [4, 2, 1]  # never a newer span
    assert [e["span"] for e in spans.window(registry, uris[2], 9)] == [2, 1]
    assert [e["span"] for e in spans.window(registry, uris[5], 1)] == [5]


def test_a_reingested_span_replaces_its_entry(tmp_path):
    registry = str(tmp_path / "accepted_spans")
    spans.register(registry, 1, 0, examples(tmp_path, "old"), {})
    spans.register(registry, 2, 0, examples(tmp_path, "two"), {})
    newer = examples(tmp_path, "new")
    spans.register(registry, 1, 1, newer, {})
    assert [(e["span"], e["uri"]) for e in spans.window(registry, str(tmp_path / "ExampleGen" / "two"), 2)] \
        == [(2, str(tmp_path / "ExampleGen" / "two")), (1, newer)]


def test_window_errors_say_what_to_do(tmp_path):
    registry = str(tmp_path / "accepted_spans")
    with pytest.raises(ValueError, match=r"window_spans must be >= 1 \(1 = the newest span only\), got 0"):
        spans.window(registry, "x", 0)
    with pytest.raises(ValueError) as error:
        spans.window(registry, "/nowhere/", 2)
    assert str(error.value) == (f"the Examples at /nowhere are not in the accepted-span registry {registry}: BoxGate "
                                f"registers a span when it passes, so run the Trainer downstream of BoxGate")
    gone = str(tmp_path / "gone")
    spans.register(registry, 1, 0, gone, {})
    spans.register(registry, 2, 0, examples(tmp_path, "two"), {})
    with pytest.raises(FileNotFoundError, match=r"span 1 is in the window but its Examples .*/gone are gone; "
                                                r"delete .*span-1.json or lower window_spans"):
        spans.window(registry, str(tmp_path / "ExampleGen" / "two"), 2)


def test_span_folders_and_the_any_span_pattern():
    assert spans.span_dir("/data", "7") == os.path.join("/data", "span-7")
    assert spans.any_span("span-{SPAN}/v{VERSION}/train-*.tfrecord") == "span-*/v*/train-*.tfrecord"
    assert spans.any_span("span-{SPAN:2}/x-{YYYY}{MM}.gz") == "span-*/x-**.gz"


def test_a_profile_is_kept_beside_its_entry_and_is_not_an_entry(tmp_path):
    registry = str(tmp_path / "accepted_spans")
    profile = {"span": 3, "eval_images": {"ab12": ["e1"]}, "train_distributions": {"classes": {"0": 1.0}}}
    spans.register(registry, 3, 0, examples(tmp_path, "3"), {"train": 1}, profile=profile)
    spans.register(registry, 4, 0, examples(tmp_path, "4"), {"train": 1})
    (tmp_path / "accepted_spans" / "notes.json").write_text("{}")  # not span-*: ignored
    assert spans.profile(registry, 3) == profile
    assert spans.profile(registry, 4) is None
    assert sorted(os.listdir(registry)) == ["notes.json", "span-3.json", "span-3.profile.json", "span-4.json"]
    assert [e["span"] for e in spans.accepted(registry)] == [4, 3]
    assert spans.accepted(str(tmp_path / "no_registry_yet")) == []


def test_the_window_matches_an_examples_uri_with_or_without_its_trailing_slash(tmp_path):
    registry = str(tmp_path / "accepted_spans")
    uri = examples(tmp_path, "1")
    spans.register(registry, 1, 0, uri + "/", {})
    assert [e["uri"] for e in spans.window(registry, uri + "/", 1)] == [uri]


def test_only_trailing_slashes_are_cut_from_an_examples_uri(tmp_path):
    registry = str(tmp_path / "accepted_spans")
    uri = examples(tmp_path, "span-X")  # a folder name ending in a letter keeps it
    spans.register(registry, 1, 0, uri + "//", {})
    assert [e["uri"] for e in spans.window(registry, uri + "/", 1)] == [uri]
