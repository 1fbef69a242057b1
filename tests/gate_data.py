"""A span with every kind of finding BoxGate reports, written as ExampleGen writes it (GZIP TFRecords per split), and
an earlier accepted span's kept profile: what the gate's tests scan."""

from __future__ import annotations

import io
import json
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf
from PIL import Image

from components.data_profile import SplitProfile, fingerprint
from tfdet.dataio import features

PROBLEM_EXAMPLES = {  # source id -> what is wrong with it (one of each problem kind)
    "bad-missing": "image_missing", "bad-undecodable": "image_undecodable", "bad-counts": "count_mismatch",
    "bad-nan": "box_not_finite", "bad-range": "box_out_of_range", "bad-inverted": "box_inverted",
    "bad-label": "label_out_of_range",
}
NUM_CLASSES = 3


def png(seed: int, height: int = 8, width: int = 8) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def example(source_id: str, encoded: bytes, boxes=((0.1, 0.1, 0.5, 0.5),), labels=(1,), size=(8, 8),
            **overrides) -> bytes:
    proto = features.make_example(encoded=encoded, image_format="png", height=size[0], width=size[1],
                                  filename=f"{source_id}.png", source_id=source_id, boxes=list(boxes),
                                  label_ids=list(labels), label_names=["c"] * len(labels))
    for key, values in overrides.items():
        feature = proto.features.feature[key]
        feature.ClearField("float_list")
        feature.float_list.value.extend(values)
    return proto.SerializeToString()


def bad_example(source_id: str, seed: int) -> bytes:
    kind = PROBLEM_EXAMPLES[source_id]
    if kind == "image_missing":
        return example(source_id, b"")
    if kind == "image_undecodable":
        return example(source_id, b"not an image")
    if kind == "count_mismatch":
        return example(source_id, png(seed), **{features.YMIN: [0.1, 0.2]})
    if kind == "box_not_finite":
        return example(source_id, png(seed), boxes=((float("nan"), 0.1, 0.5, 0.5),))
    if kind == "box_out_of_range":
        return example(source_id, png(seed), boxes=((0.1, 0.1, 0.5, 1.2),))
    if kind == "box_inverted":
        return example(source_id, png(seed), boxes=((0.5, 0.1, 0.2, 0.4),))
    return example(source_id, png(seed), labels=(NUM_CLASSES,))


def sound(source_id: str, seed: int, label: int) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = rng.uniform(0.0, 0.5, 2)
    h, w = rng.uniform(0.05, 0.5, 2)
    size = (int(rng.integers(8, 600)), int(rng.integers(8, 600)))
    return example(source_id, png(seed), boxes=((y, x, y + h, x + w),), labels=(label,), size=size)


def write_split(uri: str, split: str, records: List[bytes], shards: int = 3) -> None:
    directory = os.path.join(uri, f"Split-{split}")
    os.makedirs(directory, exist_ok=True)
    for shard in range(shards):
        path = os.path.join(directory, f"data_tfrecord-{shard:05d}-of-{shards:05d}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for record in records[shard::shards]:
                writer.write(record)


def earlier_span(directory: str, span: int = 1) -> Dict:
    """An earlier accepted span's kept profile: mostly class 0 (so this span's classes drift), 150 examples, its
    fingerprints in files (an eval image and a train image that reappear in the new span)."""
    profile = SplitProfile()
    for index in range(150):
        profile.add(100, 100, [(0.1, 0.1, 0.3, 0.3)], [0 if index % 10 else 1])
    os.makedirs(directory, exist_ok=True)
    rows = {"train": [(fingerprint(png(9001)), "old-train-7")], "eval": [(fingerprint(png(9002)), "old-eval-3")]}
    for split, pairs in rows.items():
        with open(os.path.join(directory, f"{split}-00000-of-00001.jsonl"), "w") as handle:
            handle.writelines(json.dumps(list(pair)) + "\n" for pair in pairs)
    return {"span": span, "train_distributions": profile.distributions(), "train_examples": 150,
            "fingerprints": {split: os.path.join(directory, f"{split}-*.jsonl") for split in rows}}


def write_span(uri: str) -> Dict[str, List[bytes]]:
    """Train: 130 sound examples of classes 1 and 2, the 7 bad ones, a duplicated image, an image also in eval and one
    in the earlier span's eval; eval: 20 sound examples, one of them the earlier span's train image."""
    train = [sound(f"t{i:03d}", i, 1 + i % 2) for i in range(130)]
    train += [bad_example(source_id, 500 + i) for i, source_id in enumerate(PROBLEM_EXAMPLES)]
    train += [example("dup-a", png(7000)), example("dup-b", png(7000)), example("leak-t", png(7001)),
              example("old-eval-again", png(9002))]
    evaluation = [sound(f"e{i:03d}", 1000 + i, 1 + i % 2) for i in range(20)]
    evaluation += [example("leak-e", png(7001)), example("old-train-again", png(9001))]
    write_split(uri, "train", train)
    write_split(uri, "eval", evaluation, shards=2)
    return {"train": train, "eval": evaluation}
