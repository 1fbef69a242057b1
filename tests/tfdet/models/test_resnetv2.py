import numpy as np
import pytest
import tensorflow as tf

from tfdet.models.layers import StdConv2D
from tfdet.registry import BACKBONES
from tfdet.weights import CheckpointError


def tiny(**kwargs):
    config = {"name": "resnetv2", "input_size": (64, 64), "nb_blocks": (1, 1, 1, 1), "width_factor": 0.25,
              "groups": 8, **kwargs}
    return BACKBONES.build(config)


def test_features_follow_feature_info():
    backbone = tiny()
    features = backbone(backbone.dummy_inputs, return_features=True)
    assert [f["reduction"] for f in backbone.feature_info] == [4, 8, 16, 32]
    for feature, info in zip(features, backbone.feature_info):
        assert feature.shape == (1, 64 // info["reduction"], 64 // info["reduction"], info["num_chs"])
    assert [info["num_chs"] for info in backbone.feature_info] == [64, 128, 256, 512]
    assert backbone(backbone.dummy_inputs).shape == features[-1].shape
    assert float(tf.reduce_min(features[-1])) >= 0.0  # C5 passes the final GroupNorm + ReLU


def test_std_conv_standardises_each_output_kernel():
    conv = StdConv2D(4, 3, padding=1)
    x = tf.random.normal([1, 5, 5, 2], seed=1)
    y = conv(x)
    kernel = conv.kernel.numpy().astype(np.float64)
    flat = kernel.reshape(-1, 4)
    standard = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-8)  # biased variance, per output channel
    expected = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]),
                            tf.constant(standard.reshape(kernel.shape), tf.float32), 1, "VALID")
    np.testing.assert_allclose(y.numpy(), expected.numpy(), atol=1e-4)
    assert y.shape == conv.compute_output_shape(x.shape)


def test_std_conv_kernel_gradient_matches_the_closed_form():
    """The standardisation's gradient (the fused batch-norm kernel's) against the hand-worked form in float64:
    dL/dW = (g - mean(g) - w_hat * mean(g * w_hat)) / sqrt(var + eps) per output channel."""
    conv = StdConv2D(5, 3, padding=1)
    conv(tf.zeros([1, 4, 4, 3]))
    conv.kernel.assign(conv.kernel * 3.0 + 0.2)  # a mean and a scale for the standardisation to remove
    upstream = np.random.RandomState(0).normal(size=conv.kernel.shape)
    with tf.GradientTape() as tape:
        standard = conv.standardized_kernel()
    gradient = tape.gradient(standard, conv.kernel, output_gradients=tf.constant(upstream, tf.float32)).numpy()
    flat = conv.kernel.numpy().astype(np.float64).reshape(-1, 5)
    g = upstream.reshape(-1, 5)
    std = np.sqrt(flat.var(0) + 1e-8)
    w_hat = (flat - flat.mean(0)) / std
    np.testing.assert_allclose(standard.numpy().reshape(-1, 5), w_hat, atol=1e-5)
    expected = (g - g.mean(0) - w_hat * (g * w_hat).mean(0)) / std
    np.testing.assert_allclose(gradient.reshape(-1, 5), expected, rtol=1e-4, atol=1e-6)


def test_timm_keys_cover_every_variable_and_round_trip():
    backbone = tiny()
    backbone(backbone.dummy_inputs)
    mapping = backbone.timm_variables()
    # 1 stem conv + per block (3 convs + 3 norms x 2) + 4 downsample convs + final norm x 2 = 43 keys
    assert len(mapping) == 1 + 4 * 9 + 4 + 2
    assert {id(v) for v, _ in mapping.values()} == {id(v) for v in backbone.weights}
    assert "stages.1.blocks.0.downsample.conv.weight" in mapping and "norm.bias" in mapping
    rng = np.random.RandomState(0)
    state_dict = {}
    for key, (variable, is_kernel) in mapping.items():
        value = rng.normal(size=variable.shape).astype(np.float32)
        state_dict[key] = value.transpose(3, 2, 0, 1) if is_kernel else value  # HWIO -> PyTorch OIHW
    state_dict["head.fc.weight"] = np.zeros((10, 512), np.float32)
    unused = backbone.load_timm_state_dict(state_dict)
    assert unused == ["head.fc.weight"]
    stem = state_dict["stem.conv.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(backbone.stem_conv.kernel.numpy(), stem)
    other = tiny()
    other.load_timm_state_dict(state_dict)
    x = tf.random.uniform([1, 64, 64, 3], seed=2)
    np.testing.assert_allclose(backbone(x).numpy(), other(x).numpy(), atol=1e-5)
    with pytest.raises(CheckpointError, match="timm state_dict: lacks 1 weight.s. the backbone needs: norm.bias"):
        tiny().load_timm_state_dict({k: v for k, v in state_dict.items() if k != "norm.bias"})


def test_width_and_groups_are_checked():
    with pytest.raises(ValueError, match="not divisible by groups=32; lower groups"):
        tiny(groups=32)
    with pytest.raises(ValueError, match=r"nb_blocks needs 4 stages, got \(3, 4, 6\)"):
        tiny(nb_blocks=(3, 4, 6))


def test_folding_keeps_outputs_and_skips_the_standardisation():
    conv = StdConv2D(4, 3, padding=1)
    x = tf.random.normal([1, 6, 6, 2], seed=4)
    before = conv(x).numpy()
    conv.fold()
    np.testing.assert_allclose(conv(x).numpy(), before, atol=1e-5)
    flat = conv.kernel.numpy().reshape(-1, 4)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-6)  # the variable now holds the standardised kernel
    np.testing.assert_allclose(flat.std(0), 1.0, atol=1e-3)
