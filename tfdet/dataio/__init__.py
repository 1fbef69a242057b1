"""Getting detection data in: records -> TFRecords -> tf.data pipelines."""
