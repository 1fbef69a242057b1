"""tfdet.models.layers.GroupNormalization against tf_keras's (a second implementation) and numpy."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdet.models.layers import GroupNormalization, group_norm


def numpy_group_norm(x, groups, gamma, beta, eps):
    b, h, w, c = x.shape
    view = x.reshape(b, h, w, groups, c // groups).astype(np.float64)
    mean = view.mean(axis=(1, 2, 4), keepdims=True)
    variance = view.var(axis=(1, 2, 4), keepdims=True)
    return ((view - mean) / np.sqrt(variance + eps)).reshape(b, h, w, c) * gamma + beta


@pytest.mark.parametrize("shape,groups", [((2, 9, 7, 16), 4), ((1, 5, 5, 32), 32), ((3, 4, 6, 12), 1)])
def test_matches_tf_keras_and_numpy_with_the_same_weights(shape, groups):
    rng = np.random.default_rng(0)
    # channels with very different means: the case where the two-level formula must add the spread of means
    x = (rng.normal(size=shape) * rng.uniform(0.1, 5, shape[-1]) + rng.uniform(-20, 20, shape[-1])).astype("float32")
    ours, reference = GroupNormalization(groups=groups, epsilon=1e-5), tf_keras.layers.GroupNormalization(
        groups=groups, epsilon=1e-5)
    ours.build(shape), reference.build(shape)
    weights = [rng.normal(size=shape[-1]).astype("float32"), rng.normal(size=shape[-1]).astype("float32")]
    ours.set_weights(weights), reference.set_weights(weights)
    x = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        got, want = ours(x), reference(x)
        loss_ours, loss_reference = tf.reduce_sum(tf.sin(got)), tf.reduce_sum(tf.sin(want))
    np.testing.assert_allclose(got.numpy(), numpy_group_norm(x.numpy(), groups, *weights, 1e-5), atol=2e-4)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-4)
    np.testing.assert_allclose(ours(x, training=True).numpy(), want.numpy(), atol=2e-4)
    for a, b in zip(tape.gradient(loss_ours, [x] + ours.trainable_weights),
                    tape.gradient(loss_reference, [x] + reference.trainable_weights)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-3)
    # the written-out gradient against numerical differentiation (float64, a second reference)
    x64 = tf.constant(x.numpy()[:1, :3, :3].astype("float64"))
    layer64 = GroupNormalization(groups=groups, epsilon=1e-5, dtype="float64")
    layer64.build(x64.shape)
    layer64.set_weights([w.astype("float64") for w in weights])
    theoretical, numerical = tf.test.compute_gradient(lambda t: tf.sin(layer64(t)), [x64])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-3, atol=1e-5)  # finite-difference error
    assert [w.name.split("/")[-1] for w in ours.weights] == [w.name.split("/")[-1] for w in reference.weights]
    assert ours.get_config() == dict(reference.get_config(), name=ours.name)


def test_other_inputs_take_the_tf_keras_path_and_bf16_inputs_compute_in_float32():
    x = tf.random.normal([2, 6, 8])
    layer = GroupNormalization(groups=2)
    reference = tf_keras.layers.GroupNormalization(groups=2)
    np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(), atol=1e-5)  # rank 3
    norm = group_norm(4)
    out = norm(tf.cast(tf.random.normal([1, 4, 4, 8]) * 100 + 1000, tf.bfloat16))
    assert out.dtype == tf.float32
    # per group (2 channels x 16 positions) mean 0, variance 1 despite the bf16 input's coarse values
    grouped = out.numpy().reshape(16, 4, 2)
    np.testing.assert_allclose(grouped.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(grouped.var(axis=(0, 2)), 1.0, atol=1e-2)
