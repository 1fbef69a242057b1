"""Tiny real artifacts for running the components' executors in seconds: an eval split of examples, SavedModels
that answer through the same ``serving_default`` contract as tfdet's (boxes read back from the example itself, so
their COCO figures are known exactly), TFX artifacts pointing at them, and the executor call."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from gate_data import example, png, write_split
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from tfdet.dataio import features
from tfdet.dataio.label_map import write_label_map

NAMES = {0: "square", 1: "disc"}


def beam_in_process():
    """Beam's in-process DirectRunner, with the project's package named as the local runner names it (so that TFX's
    executors build no sdist of TFX into the temporary directory)."""
    from pipeline.engines import beam as engines

    args = engines.beam_args("in-memory")
    return args + engines.runtime_args("in-memory", args)


def eval_records(count: int = 12) -> List[bytes]:
    """``count`` eval images 8x8, two boxes each, one square (class 0) and one disc (class 1), listed square first
    in the even images and disc first in the odd ones."""
    square, disc = (0.1, 0.1, 0.4, 0.4), (0.5, 0.5, 0.9, 0.8)
    return [example(f"e{i:02d}", png(100 + i), boxes=(square, disc) if i % 2 == 0 else (disc, square),
                    labels=(0, 1) if i % 2 == 0 else (1, 0)) for i in range(count)]


class Echo(tf.Module):
    """A detector that answers each example with its own true boxes, score 1: AP 1 on every class it keeps.

    ``keep``: the classes it answers (a dropped class gets AP 0); ``every``: it answers every n-th box only.
    """

    def __init__(self, keep: Sequence[int] = (0, 1), every: int = 1, slots: int = 10) -> None:
        super().__init__()
        self.keep = tf.constant(list(keep), tf.int64)
        self.every, self.slots = every, slots

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        parsed = tf.io.parse_example(examples, {key: tf.io.VarLenFeature(tf.float32) for key in features.BOX_KEYS}
                                     | {features.LABEL: tf.io.VarLenFeature(tf.int64)})
        boxes = tf.stack([tf.sparse.to_dense(parsed[key]) for key in features.BOX_KEYS], -1)  # [B, N, 4] y-first
        labels = tf.sparse.to_dense(parsed[features.LABEL], default_value=-1)
        index = tf.range(tf.shape(labels)[1], dtype=tf.int64)[tf.newaxis]
        wanted = tf.reduce_any(labels[..., tf.newaxis] == self.keep, -1) & (index % self.every == 0)
        order = tf.argsort(tf.cast(~wanted, tf.int32), axis=1, stable=True)  # the kept boxes first
        boxes = tf.gather(boxes, order, batch_dims=1)
        labels = tf.gather(labels, order, batch_dims=1)
        count = tf.reduce_sum(tf.cast(wanted, tf.int32), 1)
        pad = self.slots - tf.shape(labels)[1]
        boxes = tf.pad(boxes, [[0, 0], [0, pad], [0, 0]])
        labels = tf.pad(labels, [[0, 0], [0, pad]])
        valid = tf.sequence_mask(count, self.slots)
        return {"detection_boxes": boxes, "detection_scores": tf.cast(valid, tf.float32),
                "detection_classes": tf.cast(labels, tf.int32), "num_detections": count}


def save_echo(directory: str, names: Optional[Dict[int, str]] = NAMES, **kwargs) -> str:
    module = Echo(**kwargs)
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})
    if names:
        write_label_map(directory, names)
    return directory


def examples_artifact(uri: str, splits: Dict[str, List[bytes]], span: int = 1) -> standard_artifacts.Examples:
    for split, records in splits.items():
        write_split(uri, split, records, shards=2)
    artifact = standard_artifacts.Examples()
    artifact.uri = uri
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
    artifact.set_int_custom_property("span", span)
    artifact.set_int_custom_property("version", 0)
    return artifact


def artifact(kind, uri: str):
    found = kind()
    found.uri = uri
    os.makedirs(uri, exist_ok=True)
    return found


def execute(component, inputs: Dict, outputs: Dict, parameters: Dict) -> None:
    """Runs ``component``'s executor on artifacts, as TFX's launcher would (Beam components in this process)."""
    executor_class = component.EXECUTOR_SPEC.executor_class
    if issubclass(executor_class, base_beam_executor.BaseBeamExecutor):
        executor = executor_class(base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_in_process()))
    else:
        executor = executor_class()
    executor.Do({key: [value] for key, value in inputs.items()}, {key: [value] for key, value in outputs.items()},
                parameters)


def detections_count(saved_model_dir: str, records: List[bytes]) -> np.ndarray:
    return tf.saved_model.load(saved_model_dir).signatures["serving_default"](
        examples=tf.constant(records))["num_detections"].numpy()
