"""The tf.Example contract of tfdet's TFRecords (TF Object Detection API keys).

Encoding uses only the protobuf classes, so it runs in worker processes
without touching the TensorFlow runtime; decoding is a graph function for
tf.data.
"""

from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf

from tfdet.dataio.image_format import decode_image

ENCODED = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
FILENAME = "image/filename"
SOURCE_ID = "image/source_id"
YMIN = "image/object/bbox/ymin"
XMIN = "image/object/bbox/xmin"
YMAX = "image/object/bbox/ymax"
XMAX = "image/object/bbox/xmax"
LABEL = "image/object/class/label"
TEXT = "image/object/class/text"

BOX_KEYS = (YMIN, XMIN, YMAX, XMAX)


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _floats(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _ints(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def make_example(
    *,
    encoded: bytes,
    image_format: str,
    height: int,
    width: int,
    filename: str,
    source_id: str,
    boxes: Sequence[Sequence[float]],
    label_ids: Sequence[int],
    label_names: Sequence[str],
) -> tf.train.Example:
    """Builds one tf.Example.

    Args:
        encoded: the image file's bytes (JPEG or PNG).
        image_format: ``"jpeg"`` or ``"png"``.
        height, width: image size in pixels.
        filename: the image's file name, for people reading the records.
        source_id: a unique id of the image within its dataset.
        boxes: ``[[ymin, xmin, ymax, xmax], ...]`` normalised to [0, 1].
        label_ids: one 0-based class id per box.
        label_names: one class name per box.
    """
    columns = list(zip(*boxes)) if boxes else [(), (), (), ()]
    feature = {
        ENCODED: _bytes([encoded]),
        FORMAT: _bytes([image_format.encode()]),
        HEIGHT: _ints([height]),
        WIDTH: _ints([width]),
        FILENAME: _bytes([filename.encode()]),
        SOURCE_ID: _bytes([source_id.encode()]),
        LABEL: _ints(label_ids),
        TEXT: _bytes([name.encode() for name in label_names]),
    }
    for key, column in zip(BOX_KEYS, columns):
        feature[key] = _floats(column)
    return tf.train.Example(features=tf.train.Features(feature=feature))


FEATURE_SPEC = {
    ENCODED: tf.io.FixedLenFeature([], tf.string),
    FORMAT: tf.io.FixedLenFeature([], tf.string, default_value=b""),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=b""),
    SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=b""),
    YMIN: tf.io.VarLenFeature(tf.float32),
    XMIN: tf.io.VarLenFeature(tf.float32),
    YMAX: tf.io.VarLenFeature(tf.float32),
    XMAX: tf.io.VarLenFeature(tf.float32),
    LABEL: tf.io.VarLenFeature(tf.int64),
}


def read_example(serialized: bytes) -> Dict[str, object]:
    """A serialized tf.Example read in Python (no graph): ``height``, ``width``, ``source_id``, ``filename``, ``boxes``
    ([N, 4] y-first in pixels of the stored image) and ``labels`` ([N]); absent fields are empty or 0.

    The one Python-side reader of the contract (ground truth for evaluation, batch inference's image identities);
    the input pipeline decodes in the graph with :func:`decode_example`.
    """
    feature = tf.train.Example.FromString(serialized).features.feature

    def first(key: str, kind: str, default):
        values = getattr(feature[key], kind).value if key in feature else []
        return values[0] if values else default

    height, width = int(first(HEIGHT, "int64_list", 0)), int(first(WIDTH, "int64_list", 0))
    columns = [list(feature[key].float_list.value) if key in feature else [] for key in BOX_KEYS]
    scale = (height, width, height, width)
    boxes = [[column[i] * size for column, size in zip(columns, scale)] for i in range(len(columns[0]))]
    return {"height": height, "width": width, "boxes": boxes,
            "labels": list(feature[LABEL].int64_list.value) if LABEL in feature else [],
            "source_id": first(SOURCE_ID, "bytes_list", b"").decode("utf-8", "replace"),
            "filename": first(FILENAME, "bytes_list", b"").decode("utf-8", "replace")}


def decode_example(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Parses and decodes one serialized tf.Example into the pipeline's dict.

    Returns:
        ``image`` float32 [H, W, 3] in [0, 1], upright by its EXIF orientation
        (see :mod:`tfdet.dataio.image_format`); ``bboxes`` float32 [N, 4]
        (ymin, xmin, ymax, xmax) normalised; ``labels`` int32 [N]; ``mask``
        bool [N] (all true); ``image_id`` string; ``original_size`` int32 [2]
        (height, width of the stored image).
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    image = tf.image.convert_image_dtype(decode_image(parsed[ENCODED]), tf.float32)
    boxes = tf.stack([tf.sparse.to_dense(parsed[key]) for key in BOX_KEYS], axis=-1)
    labels = tf.cast(tf.sparse.to_dense(parsed[LABEL]), tf.int32)
    return {
        "image": image,
        "bboxes": tf.reshape(boxes, [-1, 4]),
        "labels": labels,
        "mask": tf.ones_like(labels, dtype=tf.bool),
        "image_id": parsed[SOURCE_ID],
        "original_size": tf.cast(tf.shape(image)[:2], tf.int32),
    }
