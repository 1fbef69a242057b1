"""The curated schema of tfdet's detection tf.Examples."""

from __future__ import annotations

from tensorflow_metadata.proto.v0 import schema_pb2

from tfdet.dataio import features

_SCALARS = {
    features.ENCODED: schema_pb2.BYTES, features.FORMAT: schema_pb2.BYTES, features.FILENAME: schema_pb2.BYTES,
    features.SOURCE_ID: schema_pb2.BYTES, features.HEIGHT: schema_pb2.INT, features.WIDTH: schema_pb2.INT,
}


def detection_schema(num_classes: int) -> schema_pb2.Schema:
    """Scalars present in every example with one value (dense: ``image/encoded`` reaches Transform as [B]; an image
    domain);
    box coordinates floats in [0, 1]; labels ints in [0, num_classes); per-box lists may be empty; the four
    coordinate lists and the labels must have equal lengths (weighted features)."""
    schema = schema_pb2.Schema()
    for name, kind in _SCALARS.items():
        feature = schema.feature.add(name=name, type=kind)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add(size=1)
        if name in (features.HEIGHT, features.WIDTH):
            feature.int_domain.min = 1
        if name == features.ENCODED:
            # bytes, not a category: TFDV then skips its top-k / uniques counts, whose accumulator would hold every
            # image of the split (the combiner record that broke StatisticsGen on Flink)
            feature.image_domain.SetInParent()
    for name in features.BOX_KEYS:
        feature = schema.feature.add(name=name, type=schema_pb2.FLOAT)
        feature.value_count.min = 0
        feature.float_domain.min = 0.0
        feature.float_domain.max = 1.0
        feature.float_domain.disallow_nan = True
        feature.float_domain.disallow_inf = True
    label = schema.feature.add(name=features.LABEL, type=schema_pb2.INT)
    label.value_count.min = 0
    label.int_domain.min = 0
    label.int_domain.max = num_classes - 1
    text = schema.feature.add(name=features.TEXT, type=schema_pb2.BYTES)
    text.value_count.min = 0
    for name in features.BOX_KEYS:
        weighted = schema.weighted_feature.add(name=f"{name.split('/')[-1]}_per_label")
        weighted.feature.step.append(name)
        weighted.weight_feature.step.append(features.LABEL)
    return schema
