import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdet.models.backbones.resnet import ResNet
from tfdet.models.layers import ConvBN
from tfdet.registry import BACKBONES


def tiny(**kwargs):
    config = {"name": "resnet", "depth": 50, "input_size": (64, 64), "base_channels": 8, **kwargs}
    backbone = BACKBONES.build(config)
    backbone(backbone.dummy_inputs)
    return backbone


def randomise_norms(layer, seed=0):
    rng = np.random.RandomState(seed)
    for conv in layer.submodules:
        if isinstance(conv, ConvBN):
            bn = conv.bn
            for variable, low, high in ((bn.gamma, 0.5, 1.5), (bn.beta, -0.2, 0.2), (bn.moving_mean, -0.2, 0.2),
                                        (bn.moving_variance, 0.5, 2.0)):
                variable.assign(rng.uniform(low, high, variable.shape).astype(np.float32))


@pytest.mark.parametrize("depth,kind_channels", [(18, [8, 16, 32, 64]), (34, [8, 16, 32, 64]),
                                                 (50, [32, 64, 128, 256])])
def test_stage_outputs_follow_feature_info(depth, kind_channels):
    backbone = tiny(depth=depth)
    features = backbone(backbone.dummy_inputs, return_features=True)
    assert [info["num_chs"] for info in backbone.feature_info] == kind_channels
    assert [info["reduction"] for info in backbone.feature_info] == [4, 8, 16, 32]
    for feature, info in zip(features, backbone.feature_info):
        assert feature.shape == (1, 64 // info["reduction"], 64 // info["reduction"], info["num_chs"])
    blocks = {18: 8, 34: 16, 50: 16}[depth]
    assert sum(len(stage) for stage in backbone.stages) == blocks


def test_out_indices_and_num_stages_choose_the_outputs():
    backbone = tiny(num_stages=3, out_indices=(1, 2))
    features = backbone(backbone.dummy_inputs, return_features=True)
    assert [f.shape[-1] for f in features] == [64, 128]
    assert [info["reduction"] for info in backbone.feature_info] == [8, 16]
    assert "layer4.0.conv1.weight" not in backbone.torch_variables()


def test_style_puts_the_stride_on_the_1x1_or_the_3x3_conv():
    for style, strides in (("pytorch", [1, 2, 1]), ("caffe", [2, 1, 1])):
        block = tiny(style=style).stages[1][0]
        assert [conv.strides for conv in block.convs] == strides
        assert [conv.kernel_size for conv in block.convs] == [1, 3, 1]
        assert block.downsample.strides == 2


def test_frozen_batchnorm_equals_conv_then_batchnorm():
    layer = ConvBN(6, 3, 2, frozen_norm=True)
    x = tf.random.normal([2, 9, 9, 4], seed=3)
    layer(x)
    randomise_norms(layer)
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    bn = layer.bn
    plain = tf.nn.conv2d(padded, layer.kernel, 2, "VALID")
    expected = (plain - bn.moving_mean) / tf.sqrt(bn.moving_variance + 1e-5) * bn.gamma + bn.beta
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    trainable = ConvBN(6, 3, 2, frozen_norm=False)
    trainable(x)
    trainable.set_weights(layer.get_weights())
    np.testing.assert_allclose(trainable(x, training=False).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert [v.name.split("/")[-1] for v in layer.trainable_weights] == ["kernel:0"]
    # the kernel's gradient is the plain conv's, scaled per output channel; the frozen constants get none
    scale = bn.gamma / tf.sqrt(bn.moving_variance + 1e-5)
    with tf.GradientTape(persistent=True) as tape:
        out = tf.reduce_sum(tf.square(layer(x, training=True)))
        plain_out = tf.reduce_sum(tf.square(tf.nn.conv2d(padded, layer.kernel, 2, "VALID") * tf.stop_gradient(scale)
                                            + tf.stop_gradient(bn.beta - bn.moving_mean * scale)))
    np.testing.assert_allclose(tape.gradient(out, layer.kernel).numpy(),
                               tape.gradient(plain_out, layer.kernel).numpy(), rtol=1e-4, atol=1e-4)
    assert tape.gradient(out, [bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance]) == [None] * 4
    layer.trainable = True  # as a ResNet stage that trains sets it: still only the kernel
    assert [v.name.split("/")[-1] for v in layer.trainable_weights] == ["kernel:0"]
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 5


def test_trainable_batchnorm_uses_batch_statistics_in_training():
    layer = ConvBN(4, 1, frozen_norm=False)
    x = tf.random.normal([4, 5, 5, 3], seed=1) * 3.0 + 2.0
    out = layer(x, training=True).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    assert not np.allclose(layer.bn.moving_mean.numpy(), 0.0)  # the running statistics moved
    assert len(layer.trainable_weights) == 3  # kernel, gamma, beta


@pytest.mark.parametrize("frozen_stages", [-1, 0, 1, 3])
def test_frozen_stages_get_no_gradient(frozen_stages):
    backbone = tiny(frozen_stages=frozen_stages)
    x = tf.random.normal([1, 64, 64, 3], seed=2)
    with tf.GradientTape() as tape:
        loss = tf.add_n([tf.reduce_sum(f) for f in backbone(x, return_features=True)])
    gradients = tape.gradient(loss, backbone.trainable_variables)
    trainable = {v.name for v, g in zip(backbone.trainable_variables, gradients) if g is not None}
    assert trainable == {v.name for v in backbone.trainable_variables}
    stem_trainable = backbone.stem.kernel.name in trainable
    assert stem_trainable == (frozen_stages < 0)
    for i, stage in enumerate(backbone.stages):
        kernels = {conv.kernel.name for block in stage for conv in block.convs}
        assert (kernels <= trainable) == (i >= frozen_stages), (i, frozen_stages)
        assert not (kernels & trainable) == (i < frozen_stages)
    # norm_eval: no BatchNorm parameter ever trains, in the stages that train too
    assert trainable and all(name.endswith("/kernel:0") for name in trainable), sorted(trainable)
    frozen = {v.name for layer in backbone.conv_bn_layers() for v in layer.bn.weights}
    assert len(frozen) == 4 * len(backbone.conv_bn_layers())
    assert frozen <= {v.name for v in backbone.non_trainable_variables}


def test_depth_aliases_and_config_round_trip():
    built = BACKBONES.build(dict(name="resnet18", input_size=(64, 64)))
    assert isinstance(built, ResNet) and built.depth == 18
    with pytest.raises(ValueError, match="resnet18: depth is 18, got depth=50; use name='resnet'"):
        BACKBONES.build(dict(name="resnet18", depth=50))
    backbone = tiny(style="caffe", frozen_stages=2, out_indices=(1, 2, 3))
    again = ResNet.from_config(backbone.get_config())
    again(again.dummy_inputs)
    again.set_weights(backbone.get_weights())
    x = tf.random.normal([1, 64, 64, 3], seed=5)
    for a, b in zip(backbone(x, return_features=True), again(x, return_features=True)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert again.style == "caffe" and again.frozen_stages == 2


def test_arguments_are_checked():
    for kwargs, message in (({"depth": 42}, r"depth must be one of \[18, 34, 50, 101, 152\], got 42"),
                            ({"style": "tf"}, r"style must be one of \('pytorch', 'caffe'\), got 'tf'"),
                            ({"num_stages": 3, "out_indices": (3,)}, "must name stages below num_stages=3"),
                            ({"frozen_stages": 5}, r"frozen_stages must be -1..4, got 5")):
        with pytest.raises(ValueError, match=message):
            ResNet(**kwargs)


def test_bfloat16_features_stay_close_to_float32():
    backbone = tiny()
    randomise_norms(backbone)
    x = tf.random.normal([1, 64, 64, 3], seed=6)
    reference = backbone(x).numpy()
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        low = tiny()
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    low.set_weights(backbone.get_weights())
    out = low(x)
    assert out.dtype == tf.bfloat16
    relative = np.abs(out.numpy().astype(np.float32) - reference).max() / np.abs(reference).max()
    assert relative < 0.05
