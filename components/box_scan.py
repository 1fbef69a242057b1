"""BoxGate's scan of every example, as a Beam pipeline on the pipeline's engine (TFX-free).

Per example (a ``Map`` on the workers): the geometry and image checks of :mod:`components.box_checks`, the image's
fingerprint and its contribution to the split's distributions (:mod:`components.data_profile`). Then:

* per split, one combiner (:class:`SplitSummary`) counts the examples, the bad ones and each problem, keeps the
  offenders with the smallest source ids (at most ``max_listed``), and adds up the distributions' counts;
* the sound examples' fingerprints are written beside the report (``fingerprints/<split>-*.jsonl``, one
  ``[fingerprint, source_id]`` per line) for the spans after this one, and grouped by fingerprint together with the
  earlier accepted spans' files: each group is judged by :func:`components.data_profile.fingerprint_findings`,
  and only the first ``max_listed`` leaks and duplicate groups, and their counts, leave the cluster.

The pipeline writes those aggregates to ``scan.json``; :func:`read_scan` turns it into the gate's findings. Nothing
per example is gathered on the machine that runs the component.
"""

from __future__ import annotations

import heapq
import json
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf

from components import box_checks, data_profile
from tfdet.dataio import features

SCAN_FILE = "scan.json"
FINGERPRINTS = "fingerprints"


def analyse(record: bytes, split: str, num_classes: int, decode_images: bool) -> Dict[str, Any]:
    """One serialized example: its problems, and when it has none its fingerprint and profile inputs."""
    feature_map = tf.train.Example.FromString(record).features.feature
    problems = box_checks.check_features(feature_map, num_classes, decode_images)
    found: Dict[str, Any] = {"split": split, "source_id": box_checks.source_id(feature_map), "problems": problems}
    if not problems:
        columns = [list(feature_map[key].float_list.value) if key in feature_map else [] for key in features.BOX_KEYS]
        found.update(fingerprint=data_profile.fingerprint(feature_map[features.ENCODED].bytes_list.value[0]),
                     height=int(feature_map[features.HEIGHT].int64_list.value[0]),
                     width=int(feature_map[features.WIDTH].int64_list.value[0]), boxes=list(zip(*columns)),
                     labels=list(feature_map[features.LABEL].int64_list.value) if features.LABEL in feature_map
                     else [])
    return found


class SplitSummary(beam.CombineFn):
    """One split's counts, bounded offender list and distribution counts."""

    def __init__(self, max_listed: int) -> None:
        self.max_listed = max_listed

    def create_accumulator(self) -> Dict[str, Any]:
        return {"examples": 0, "bad": 0, "problems": {}, "offending": [], "profile": data_profile.SplitProfile()}

    def add_input(self, summary: Dict[str, Any], found: Dict[str, Any]) -> Dict[str, Any]:
        summary["examples"] += 1
        if found["problems"]:
            summary["bad"] += 1
            for code in found["problems"]:
                summary["problems"][code] = summary["problems"].get(code, 0) + 1
            summary["offending"] = heapq.nsmallest(
                self.max_listed, summary["offending"] + [(found["source_id"], found["problems"])])
        else:
            summary["profile"].add(found["height"], found["width"], found["boxes"], found["labels"])
        return summary

    def merge_accumulators(self, summaries: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
        merged = self.create_accumulator()
        for summary in summaries:
            merged["examples"] += summary["examples"]
            merged["bad"] += summary["bad"]
            for code, count in summary["problems"].items():
                merged["problems"][code] = merged["problems"].get(code, 0) + count
            merged["offending"] = heapq.nsmallest(self.max_listed, merged["offending"] + summary["offending"])
            merged["profile"].merge(summary["profile"])
        return merged

    def extract_output(self, summary: Dict[str, Any]) -> Dict[str, Any]:
        profile = summary["profile"]
        return {"examples": summary["examples"], "bad": summary["bad"], "problems": summary["problems"],
                "offending": [list(entry) for entry in summary["offending"]],
                "labels": {str(k): v for k, v in profile.labels.items()},
                "counts": {name: counts.tolist() for name, counts in profile.counts.items()}}


def _occurrence(line: str, span: int, split: str) -> Tuple[str, Tuple[Optional[int], str, str]]:
    key, source_id = json.loads(line)
    return key, (span, split, source_id)


def _leak_order(item: Tuple[Tuple, Dict]) -> Tuple:
    order, leak = item
    return order, leak["train"], leak["eval"]


def _judged(group: Tuple[str, Iterable[Tuple]]):
    duplicates, leaks = data_profile.fingerprint_findings(group[1])
    for split, ids in duplicates:
        yield beam.pvalue.TaggedOutput("duplicates", (split, ids))
    for order, leak in leaks:
        yield beam.pvalue.TaggedOutput("leaks", (order, leak))


def build(pipeline: beam.Pipeline, splits: Mapping[str, str], num_classes: int, decode_images: bool,
          max_listed: int, earlier: Sequence[Mapping[str, Any]], out_dir: str) -> None:
    """Adds the scan to ``pipeline``; running it writes ``out_dir/scan.json`` and the fingerprint files.

    Args:
        splits: split name -> the file pattern of its examples (GZIP when they end in .gz); a split whose pattern
            matches no file is left out (:func:`read_scan` reports it empty).
        earlier: earlier accepted spans' kept profiles, ``{"span", "fingerprints": {split: file pattern}}``.
    """
    analysed, fingerprints = [], []
    for split, pattern in splits.items():
        if not tf.io.gfile.glob(pattern):
            continue
        found = (pipeline | f"Read[{split}]" >> beam.io.ReadFromTFRecord(pattern, coder=beam.coders.BytesCoder())
                 | f"Check[{split}]" >> beam.Map(analyse, split, num_classes, decode_images))
        analysed.append(found)
        sound = (found | f"Sound[{split}]" >> beam.Filter(lambda f: not f["problems"])
                 | f"Keyed[{split}]" >> beam.Map(lambda f: (f["fingerprint"], f["source_id"])))
        _ = (sound | f"Line[{split}]" >> beam.Map(lambda pair: json.dumps(list(pair)))
             | f"Keep[{split}]" >> beam.io.WriteToText(os.path.join(out_dir, FINGERPRINTS, split),
                                                        file_name_suffix=".jsonl"))
        fingerprints.append(sound | f"Here[{split}]" >> beam.Map(
            lambda pair, s: (pair[0], (data_profile.THIS_SPAN, s, pair[1])), split))
    for record in earlier:
        for split, pattern in (record.get("fingerprints") or {}).items():
            if not tf.io.gfile.glob(pattern):
                continue
            label = f"span {record['span']} {split}"
            fingerprints.append(pipeline | f"Read[{label}]" >> beam.io.ReadFromText(pattern)
                                | f"Parse[{label}]" >> beam.Map(_occurrence, record["span"], split))
    parts = []
    if analysed:
        parts.append(tuple(analysed) | "AllExamples" >> beam.Flatten()
                     | "BySplit" >> beam.Map(lambda f: (f["split"], f))
                     | "Summaries" >> beam.CombinePerKey(SplitSummary(max_listed))
                     | "AsSplit" >> beam.Map(lambda kv: (f"split/{kv[0]}", kv[1])))
    if fingerprints:
        judged = (tuple(fingerprints) | "AllImages" >> beam.Flatten() | "ByFingerprint" >> beam.GroupByKey()
                  | "Judge" >> beam.FlatMap(_judged).with_outputs("duplicates", "leaks"))
        leaks, duplicates = judged.leaks, judged.duplicates
        parts += [leaks | "FirstLeaks" >> beam.combiners.Top.Smallest(max_listed, key=_leak_order)
                  | "AsLeaks" >> beam.Map(lambda items: ("leaks", [leak for _, leak in items])),
                  leaks | "CountLeaks" >> beam.combiners.Count.Globally()
                  | "AsLeakCount" >> beam.Map(lambda n: ("leak_count", n)),
                  duplicates | "FirstDuplicates" >> beam.combiners.Top.SmallestPerKey(max_listed)
                  | "AsDuplicates" >> beam.Map(lambda kv: (f"duplicates/{kv[0]}", kv[1])),
                  duplicates | "CountDuplicates" >> beam.combiners.Count.PerKey()
                  | "AsDuplicateCount" >> beam.Map(lambda kv: (f"duplicate_count/{kv[0]}", kv[1]))]
    if not parts:
        parts.append(pipeline | "Nothing" >> beam.Create([("empty", True)]))
    _ = (tuple(parts) | "Aggregates" >> beam.Flatten() | "One" >> beam.combiners.ToDict()
         | "Json" >> beam.Map(json.dumps)
         | "Write" >> beam.io.WriteToText(os.path.join(out_dir, SCAN_FILE), shard_name_template="", num_shards=1))


def fingerprint_patterns(out_dir: str, splits: Iterable[str]) -> Dict[str, str]:
    """The file pattern of each split's fingerprints written by :func:`build` (what a span's profile keeps)."""
    return {split: os.path.join(out_dir, FINGERPRINTS, f"{split}-*.jsonl") for split in splits}


def read_scan(out_dir: str, splits: Iterable[str], findings: Dict, max_listed: int) -> Dict[str,
                                                                                          data_profile.SplitProfile]:
    """Fills the gate's ``findings`` from ``scan.json`` (counts, the first ``max_listed`` offenders, leaks,
    duplicates); returns each scanned split's profile."""
    with tf.io.gfile.GFile(os.path.join(out_dir, SCAN_FILE)) as handle:
        scan = json.load(handle)
    profiles = {}
    for split in splits:
        summary = scan.get(f"split/{split}")
        checked = summary["examples"] if summary else 0
        findings["examples_checked"][split] = checked
        if not checked:
            findings["empty_splits"].append(split)
            continue
        findings["bad_examples"] += summary["bad"]
        for code, count in summary["problems"].items():
            findings["problems"][code] = findings["problems"].get(code, 0) + count
        findings["offending"] += [{"split": split, "source_id": source_id, "problems": problems}
                                  for source_id, problems in summary["offending"]]
        profile = data_profile.SplitProfile()
        profile.examples = checked - summary["bad"]
        profile.labels = {int(k): v for k, v in summary["labels"].items()}
        for name, counts in summary["counts"].items():
            profile.counts[name][:] = counts
        profiles[split] = profile
        if scan.get(f"duplicates/{split}"):
            findings["duplicates"][split] = scan[f"duplicates/{split}"]
            findings["duplicate_count"][split] = scan[f"duplicate_count/{split}"]
    findings["offending"] = findings["offending"][:max_listed]
    findings["leaks"] = scan.get("leaks", [])
    findings["leak_count"] = scan.get("leak_count", 0)
    return profiles
