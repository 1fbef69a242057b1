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
    with pytest.raises(ValueError, match=r"the Examples at /nowhere are not in the accepted-span registry .*: "
                                         r"BoxGate registers a span when it passes"):
        spans.window(registry, "/nowhere/", 2)
    gone = str(tmp_path / "gone")
    spans.register(registry, 1, 0, gone, {})
    spans.register(registry, 2, 0, examples(tmp_path, "two"), {})
    with pytest.raises(FileNotFoundError, match=r"span 1 is in the window but its Examples .*/gone are gone; "
                                                r"delete .*span-1.json or lower window_spans"):
        spans.window(registry, str(tmp_path / "ExampleGen" / "two"), 2)
