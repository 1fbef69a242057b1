"""Spans: how new data arrives (``<data root>/span-<N>/``), and which spans passed the pipeline's gate.

A span is a folder of converted TFRecords, ``span-<N>`` under a data root; TFX's ExampleGen takes the newest one
through a ``{SPAN}`` pattern (``span-{SPAN}/train-*.tfrecord``).

The accepted-span registry: BoxGate writes ``span-<N>.json`` into the registry directory (``<pipeline
root>/accepted_spans``) when a span passes; a span that fails never enters it. The Trainer reads it to train on a
rolling window: the newest span (its own input) and the ``window_spans - 1`` accepted spans before it.

Why a registry rather than a Resolver with SpanRangeStrategy: TFX's Kubeflow V2 compiler accepts only
LatestArtifactStrategy and LatestBlessedModelStrategy resolvers, and a resolver over ExampleGen's output would also
bring back the spans BoxGate rejected. One file per span (rewritten when a span is re-ingested) keeps concurrent
runs from clobbering each other; ``tf.io.gfile`` makes it work on ``gs://`` too.
"""

from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Optional

SPAN_FOLDER = "span-{}"
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def span_dir(root: str, span: int) -> str:
    """``root/span-<span>``."""
    return os.path.join(root, SPAN_FOLDER.format(int(span)))


def any_span(pattern: str) -> str:
    """An ExampleGen pattern with every placeholder (``{SPAN}``, ``{VERSION}``, ...) as a glob wildcard."""
    return _PLACEHOLDER.sub("*", pattern)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _entry_path(registry_dir: str, span: int) -> str:
    return os.path.join(registry_dir, f"span-{int(span)}.json")


def _profile_path(registry_dir: str, span: int) -> str:
    return os.path.join(registry_dir, f"span-{int(span)}.profile.json")


def register(registry_dir: str, span: int, version: int, examples_uri: str, examples_checked: Dict[str, int],
             profile: Optional[Dict] = None) -> str:
    """Records that ``span`` (the Examples at ``examples_uri``) passed the gate; returns the entry's path.

    ``profile`` (the span's image fingerprints and distributions, see components/data_profile.py) is kept beside the
    entry, for the leakage and drift checks of later spans.
    """
    from tfdet.files import write_json

    _gfile().makedirs(registry_dir)
    if profile is not None:
        write_json(_profile_path(registry_dir, span), profile)
    entry = {"span": int(span), "version": int(version), "uri": examples_uri.rstrip("/"),
             "examples_checked": dict(examples_checked)}
    return write_json(_entry_path(registry_dir, span), entry)  # atomic: a crash never leaves half an entry


def profile(registry_dir: str, span: int) -> Optional[Dict]:
    """The profile kept for an accepted span (None when it has none)."""
    path = _profile_path(registry_dir, span)
    if not _gfile().exists(path):
        return None
    with _gfile().GFile(path) as handle:
        return json.load(handle)


def accepted(registry_dir: str) -> List[Dict]:
    """Every registered span, newest first."""
    gfile = _gfile()
    if not gfile.isdir(registry_dir):
        return []
    entries = []
    for name in gfile.listdir(registry_dir):
        if name.startswith("span-") and name.endswith(".json") and not name.endswith(".profile.json"):
            with gfile.GFile(os.path.join(registry_dir, name)) as handle:
                entries.append(json.load(handle))
    return sorted(entries, key=lambda entry: entry["span"], reverse=True)


def check_window(window_spans: int) -> int:
    """Returns ``window_spans`` when it is a usable window size (>= 1)."""
    if window_spans < 1:
        raise ValueError(f"window_spans must be >= 1 (1 = the newest span only), got {window_spans}")
    return window_spans


def window(registry_dir: str, examples_uri: str, window_spans: int) -> List[Dict]:
    """The newest span (the Examples at ``examples_uri``) and the ``window_spans - 1`` accepted spans before it,
    newest first.

    Raises:
        ValueError: ``window_spans`` < 1, or ``examples_uri`` is not registered (it did not pass BoxGate).
        FileNotFoundError: a registered span's Examples were deleted.
    """
    check_window(window_spans)
    entries = accepted(registry_dir)
    uri = examples_uri.rstrip("/")
    newest = next((entry for entry in entries if entry["uri"] == uri), None)
    if newest is None:
        raise ValueError(f"the Examples at {uri} are not in the accepted-span registry {registry_dir}: BoxGate "
                         "registers a span when it passes, so run the Trainer downstream of BoxGate")
    chosen = [newest] + [entry for entry in entries if entry["span"] < newest["span"]][:window_spans - 1]
    for entry in chosen[1:]:
        if not _gfile().isdir(entry["uri"]):
            raise FileNotFoundError(f"span {entry['span']} is in the window but its Examples {entry['uri']} are gone; "
                                    f"delete {_entry_path(registry_dir, entry['span'])} or lower window_spans")
    return chosen
