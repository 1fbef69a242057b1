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


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("shape,groups", [((2, 9, 7, 16), 4), ((1, 5, 5, 32), 32), ((3, 4, 6, 12), 1)])
def test_matches_tf_keras_and_numpy_with_the_same_weights(shape, groups, fused):
    rng = np.random.default_rng(0)
    # channels with very different means: the case where the two-level formula must add the spread of means
    x = (rng.normal(size=shape) * rng.uniform(0.1, 5, shape[-1]) + rng.uniform(-20, 20, shape[-1])).astype("float32")
    ours, reference = GroupNormalization(groups=groups, epsilon=1e-5, fused=fused), tf_keras.layers.GroupNormalization(
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
    assert ours.get_config() == dict(reference.get_config(), name=ours.name, fused=fused)
    assert GroupNormalization.from_config(ours.get_config()).fused is fused


def test_other_inputs_take_the_tf_keras_path_and_bf16_inputs_get_float32_statistics():
    x = tf.random.normal([2, 6, 8])
    layer = GroupNormalization(groups=2)
    reference = tf_keras.layers.GroupNormalization(groups=2)
    np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(), atol=1e-5)  # rank 3
    # values far from zero: bf16 statistics would drift (8-bit mantissa), float32 ones do not
    coarse = tf.cast(tf.random.normal([1, 4, 4, 8]) * 100 + 1000, tf.bfloat16)
    exact = numpy_group_norm(coarse.numpy().astype(np.float64), 4, np.ones(8), np.zeros(8), 1e-5)
    unfused = group_norm(4)
    unfused.fused = False
    out = unfused(coarse)
    assert out.dtype == tf.float32  # cast to the layer's float32 first
    np.testing.assert_allclose(out.numpy(), exact, atol=1e-3)
    out = group_norm(4)(coarse)
    assert out.dtype == tf.bfloat16  # fused: read as bf16, computed in float32, rounded once on the way out
    np.testing.assert_allclose(out.numpy().astype(np.float64), exact, rtol=2 ** -8, atol=1e-6)


def test_a_batch_of_unknown_size_takes_the_plain_path_and_bf16_gradients_match_float32():
    rng = np.random.default_rng(1)
    x = tf.constant((rng.normal(size=(3, 5, 4, 8)) * 4 + 2).astype("float32"))
    layer = GroupNormalization(groups=2)
    layer.build(x.shape)
    layer.set_weights([rng.normal(size=8).astype("float32"), rng.normal(size=8).astype("float32")])
    eager = layer(x)
    unknown_batch = tf.function(layer, input_signature=[tf.TensorSpec([None, 5, 4, 8], tf.bfloat16)])
    plain = unknown_batch(tf.cast(x, tf.bfloat16))
    assert plain.dtype == tf.float32  # not fused: cast to the layer's dtype
    fused = tf.cast(layer(tf.cast(x, tf.bfloat16)), tf.float32)
    np.testing.assert_allclose(plain.numpy(), fused.numpy(), atol=2 ** -7 * 4)
    np.testing.assert_allclose(eager.numpy(), numpy_group_norm(x.numpy(), 2, *layer.get_weights(), 1e-3),
                               atol=2e-4)

    def op_types(inputs):
        graph = tf.function(layer).get_concrete_function(inputs).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(tf.cast(x, tf.bfloat16))  # by default: bf16 inputs fused
    assert "FusedBatchNormV3" not in op_types(x)  # float32 plain unless fused=True
    x16 = tf.cast(x, tf.bfloat16)
    upstream = tf.constant(rng.normal(size=x.shape).astype("float32"))
    gradients = {}
    for name, inputs in (("bf16", x16), ("float32", tf.cast(x16, tf.float32))):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = layer(inputs)
        gradients[name] = tape.gradient(out, [inputs] + layer.trainable_weights,
                                        output_gradients=tf.cast(upstream, out.dtype))

    @tf.function(input_signature=[tf.TensorSpec([None, 5, 4, 8], tf.float32)])
    def gradient_of_unknown_batch(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = layer(inputs)
        return tape.gradient(out, inputs, output_gradients=upstream)

    np.testing.assert_allclose(gradient_of_unknown_batch(tf.cast(x16, tf.float32)).numpy(),
                               gradients["float32"][0].numpy(), atol=1e-5)
    assert gradients["bf16"][0].dtype == tf.bfloat16
    for low, high in zip(gradients["bf16"], gradients["float32"]):
        scale = float(tf.reduce_max(tf.abs(high)))
        np.testing.assert_allclose(tf.cast(low, tf.float32).numpy(), high.numpy(), atol=scale * 2 ** -7)
