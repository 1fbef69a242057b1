"""Transform's preprocessing_fn: dataset analyzers only, no decoded pixels materialised.

The analyzers compute, over the training split, the class vocabulary (from
``image/object/class/text``), the label map (every ``id:name`` pair the boxes
carry), the per-channel pixel mean and standard deviation, and box size
statistics. Their values are constants of the transform graph;
:func:`dataset_statistics` reads them back for the Trainer.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from tfdet.dataio import features

CLASS_VOCABULARY = "class_text"
LABEL_PAIRS = "class_label_text"  # "<id>:<name>" of every box, so that the Trainer knows each id's name
STATISTICS = ("pixel_mean", "pixel_std", "box_height_mean", "box_width_mean", "box_aspect_mean", "boxes_per_image")


def _per_example_count(sparse: tf.SparseTensor, batch: tf.Tensor) -> tf.Tensor:
    return tf.math.bincount(tf.cast(sparse.indices[:, 0], tf.int32), minlength=batch, maxlength=batch,
                            dtype=tf.int64)


def _channel_moments(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.cast(tf.io.decode_image(encoded, channels=3, expand_animations=False), tf.float32) / 255.0
    pixels = tf.reshape(image, [-1, 3])
    return tf.concat([tf.reduce_mean(pixels, 0), tf.reduce_mean(tf.square(pixels), 0)], axis=0)


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Analyzers over the raw detection features; outputs one row per example."""
    encoded = tf.reshape(inputs[features.ENCODED], [-1])
    batch = tf.shape(encoded)[0]
    tft.vocabulary(inputs[features.TEXT], vocab_filename=CLASS_VOCABULARY)
    labels, texts = inputs[features.LABEL], inputs[features.TEXT]
    pairs = tf.strings.join([tf.strings.as_string(labels.values), texts.values], separator=":")
    tft.vocabulary(tf.SparseTensor(labels.indices, pairs, labels.dense_shape), vocab_filename=LABEL_PAIRS)
    moments = tf.map_fn(_channel_moments, encoded, fn_output_signature=tf.TensorSpec([6], tf.float32))
    mean = tft.mean(moments[:, :3], reduce_instance_dims=False)  # mean of image means (images weigh equally)
    square = tft.mean(moments[:, 3:], reduce_instance_dims=False)
    std = tf.sqrt(tf.maximum(square - tf.square(mean), 0.0))
    ymin, xmin = inputs[features.YMIN].values, inputs[features.XMIN].values
    ymax, xmax = inputs[features.YMAX].values, inputs[features.XMAX].values
    heights, widths = ymax - ymin, xmax - xmin
    counts = _per_example_count(inputs[features.LABEL], batch)
    ones = tf.ones([batch, 1], tf.float32)
    return {
        "num_boxes": counts,
        "pixel_mean": ones * mean,
        "pixel_std": ones * std,
        "box_height_mean": ones[:, 0] * tft.mean(heights),
        "box_width_mean": ones[:, 0] * tft.mean(widths),
        "box_aspect_mean": ones[:, 0] * tft.mean(widths / tf.maximum(heights, 1e-6)),
        "boxes_per_image": ones[:, 0] * tft.mean(tf.cast(counts, tf.float32)),
    }


def dataset_statistics(transform_graph_path: str, serialized_example: bytes) -> Dict:
    """The analyzer results, the class vocabulary and the label map (id -> name), read from a Transform output.

    Raises:
        ValueError: an id that boxes name in two ways.
    """
    output = tft.TFTransformOutput(transform_graph_path)
    raw = tf.io.parse_example(tf.constant([serialized_example]), output.raw_feature_spec())
    transformed = output.transform_features_layer()(raw)
    stats = {name: transformed[name][0].numpy().round(4).tolist() for name in STATISTICS}
    stats["class_vocabulary"] = output.vocabulary_by_name(CLASS_VOCABULARY)
    stats["class_vocabulary"] = [v.decode() if isinstance(v, bytes) else v for v in stats["class_vocabulary"]]
    label_map: Dict[int, str] = {}
    for pair in output.vocabulary_by_name(LABEL_PAIRS):
        label, name = (pair.decode() if isinstance(pair, bytes) else pair).split(":", 1)
        if label_map.setdefault(int(label), name) != name:
            raise ValueError(f"class id {label} is named both {label_map[int(label)]!r} and {name!r} in the training "
                             f"data: fix the label map of the converted records")
    stats["label_map"] = dict(sorted(label_map.items()))
    return stats
