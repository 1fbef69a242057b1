"""The A/B switch of tfdet's GroupNorm for benchmarks: tf_keras's own computation in its place."""

from typing import Callable

import tensorflow as tf
import tf_keras

from tfdet.models import layers


def use_tf_keras_groupnorm(in_training: bool = True, in_inference: bool = True) -> Callable[[], None]:
    """Routes tfdet's GroupNormalization through tf_keras's call (the code before tfdet's per-channel form)
    in training, in inference or both; returns the function that restores the shipped call. tfdet's layer
    takes its inputs as they come (its fused path reads bfloat16); tf_keras's computes in the layer's float32
    as it did behind Keras' autocast."""
    shipped = layers.GroupNormalization.call

    def call(self, inputs, mask=None, training=None):
        if in_training if training else in_inference:
            return tf_keras.layers.GroupNormalization.call(self, tf.cast(inputs, self.compute_dtype), mask=mask)
        return shipped(self, inputs, mask=mask, training=training)

    layers.GroupNormalization.call = call

    def restore() -> None:
        layers.GroupNormalization.call = shipped

    return restore
