"""``pipeline(steps)``: a tf.data input pipeline from a list of step configs.

The seed's Step 02::

    from tfdet.dataio.pipeline import pipeline

    train_ds = pipeline([
        dict(name="InputReadRecordFiles", pattern_file="data/default/span-1/train-*.tfrecord"),
        dict(name="RandomResized", height=512, width=512, scale=(0.8, 1.0)),
        dict(name="Normalize", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), p=1.0),
    ])

Each element is a dict with the registered ``name`` of a step (see
``PIPELINE_STEPS.names``) and its arguments, or a step object. The first step
opens the data; consecutive per-example steps run fused in one parallel map;
the dataset is prefetched.

tf.data's autotuning is off in these pipelines (``autotune=True`` turns it back on) because with TensorFlow
2.16 deleting an autotuned iterator before its end -- what ``fit`` does when it returns, on a repeated dataset --
waits for the autotuning thread's next wake-up, up to a minute (``benchmarks/iterator_teardown.py``). Without it
each parallel map and interleave runs as many calls as there are cores (at most 16), the value autotuning starts
from, and ``prefetch(AUTOTUNE)`` still grows its buffer while the consumer waits.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence, Union

import tensorflow as tf

from tfdet.dataio.steps import DatasetStep, MapStep, SourceStep, Step
from tfdet.registry import PIPELINE_STEPS

StepLike = Union[Mapping[str, Any], Step]


def build_steps(steps: Sequence[StepLike]) -> List[Step]:
    """Builds step objects from configs (step objects pass through)."""
    built = []
    for position, step in enumerate(steps):
        if isinstance(step, Step):
            built.append(step)
            continue
        try:
            built.append(PIPELINE_STEPS.build(step))
        except (TypeError, ValueError, KeyError) as error:
            raise type(error)(f"pipeline step {position}: {error}") from error
    return built


def _fuse(functions: List[Callable]) -> Callable:
    def fused(example):
        for function in functions:
            example = function(example)
        return example

    return fused


def pipeline(
    steps: Sequence[StepLike],
    *,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    deterministic: Optional[bool] = None,
    prefetch: bool = True,
    autotune: bool = False,
) -> tf.data.Dataset:
    """Builds the input pipeline.

    Args:
        steps: step configs (``dict(name=..., **kwargs)``) or step objects;
            the first must be a source step such as ``InputReadRecordFiles``.
        num_parallel_calls: parallelism of the fused per-example maps.
        deterministic: passed to ``Dataset.map``; None keeps tf.data's default.
        prefetch: add ``prefetch(AUTOTUNE)`` at the end.
        autotune: tf.data's autotuning (off by default: see the module's docstring); the option
            reaches every dataset built on this one unless a later ``with_options`` sets it again.

    Returns:
        A ``tf.data.Dataset`` of example dicts (``image``, ``bboxes``,
        ``labels``, ``mask``, ...), unbatched, ready for ``padded_batch``.
    """
    built = build_steps(steps)
    if not built or not isinstance(built[0], SourceStep):
        first = type(built[0]).__name__ if built else "nothing"
        raise ValueError(
            f"a pipeline must start with a source step such as InputReadRecordFiles, got {first}"
        )
    if any(isinstance(step, SourceStep) for step in built[1:]):
        raise ValueError("a pipeline has exactly one source step, and it comes first")

    dataset = built[0].dataset()
    pending: List[Callable] = [built[0]]

    def flush(dataset: tf.data.Dataset) -> tf.data.Dataset:
        if pending:
            dataset = dataset.map(_fuse(list(pending)), num_parallel_calls=num_parallel_calls,
                                  deterministic=deterministic)
            pending.clear()
        return dataset

    for step in built[1:]:
        if isinstance(step, MapStep):
            pending.append(step)
        elif isinstance(step, DatasetStep):
            dataset = step.apply(flush(dataset))
        else:
            raise TypeError(f"{type(step).__name__} is neither a MapStep nor a DatasetStep")
    dataset = flush(dataset)
    if prefetch:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = bool(autotune)
    return dataset.with_options(options)


def pipeline_config(steps: Sequence[StepLike]) -> List[dict]:
    """The configs of ``steps``, for logging or saving next to a model."""
    return [step.get_config() for step in build_steps(steps)]


TRAINING_KEYS = ("image", "bboxes", "labels", "mask")


def to_pixel_boxes(example: dict) -> dict:
    """The seed's ``keep_only``: the four training keys, boxes in the image's pixels."""
    shape = tf.cast(tf.shape(example["image"])[:2], tf.float32)
    scale = tf.stack([shape[0], shape[1], shape[0], shape[1]])
    out = {key: example[key] for key in TRAINING_KEYS}
    out["bboxes"] = example["bboxes"] * scale
    return out


def training_batches(dataset: tf.data.Dataset, batch_size: int, drop_remainder: bool = True) -> tf.data.Dataset:
    """Padded batches for ``OneStageModel.fit``: pixel boxes, padding masked out, prefetched."""
    return (dataset.map(to_pixel_boxes, num_parallel_calls=tf.data.AUTOTUNE)
            .padded_batch(batch_size, drop_remainder=drop_remainder)
            .prefetch(tf.data.AUTOTUNE))
