import numpy as np
import pytest
import tensorflow as tf

from tfdet.registry import NECKS

FEATURES = [tf.random.normal([1, s, s, c], seed=i) for i, (s, c) in enumerate([(32, 16), (16, 24), (8, 40), (4, 64)])]


def build(**kwargs):
    config = {"name": "fpn", "start_level": 1, "num_nb_ins": 4, "num_nb_outs": 5, "filters": 8, **kwargs}
    neck = NECKS.build(config)
    return neck, neck(FEATURES)


@pytest.mark.parametrize("source,in_channels", [("on_input", 64), ("on_lateral", 8), ("on_output", 8)])
def test_output_shapes_and_extra_conv_source(source, in_channels):
    neck, outs = build(add_extra_convs=True, extra_convs_on=source)
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 8), (1, 8, 8, 8), (1, 4, 4, 8), (1, 2, 2, 8), (1, 1, 1, 8)]
    # the first extra conv reads the chosen source: C5 has 64 channels, laterals and outputs 8
    assert neck.fpn_convs[3].conv.kernel.shape == (3, 3, in_channels, 8)
    assert neck.fpn_convs[4].conv.kernel.shape == (3, 3, 8, 8)


def test_mmdetection_string_form_of_add_extra_convs():
    neck, _ = build(add_extra_convs="on_output")
    assert neck.extra_convs_on == "on_output" and neck.add_extra_convs


def test_without_extra_convs_levels_come_from_max_pooling():
    neck, outs = build(add_extra_convs=False)
    assert len(neck.fpn_convs) == 3
    np.testing.assert_allclose(outs[3].numpy(), outs[2].numpy()[:, ::2, ::2], atol=0)
    np.testing.assert_allclose(outs[4].numpy(), outs[3].numpy()[:, ::2, ::2], atol=0)


def test_top_down_pathway_and_relu_before_extra_convs():
    neck, outs = build(add_extra_convs=True, extra_convs_on="on_output", relu_before_extra_convs=True)
    lateral = [neck.lateral_convs[i](FEATURES[i + 1]) for i in range(3)]
    merged4 = lateral[1] + tf.image.resize(lateral[2], [8, 8], method="nearest")
    merged3 = lateral[0] + tf.image.resize(merged4, [16, 16], method="nearest")
    np.testing.assert_allclose(outs[0].numpy(), neck.fpn_convs[0](merged3).numpy(), atol=1e-5)
    np.testing.assert_allclose(outs[4].numpy(), neck.fpn_convs[4](tf.nn.relu(outs[3])).numpy(), atol=1e-5)
    assert not np.allclose(outs[4].numpy(), neck.fpn_convs[4](outs[3]).numpy())


def test_nearest_upsampling_matches_resize_for_odd_sizes():
    neck, _ = build()
    coarse = tf.random.normal([1, 3, 4, 2], seed=3)
    fine = tf.zeros([1, 5, 7, 2])
    # PyTorch's nearest picks source index floor(i * in / out); for in = ceil(out / 2) that is i // 2
    expected = tf.gather(tf.gather(coarse, [0, 0, 1, 1, 2], axis=1), [0, 0, 1, 1, 2, 2, 3], axis=2)
    np.testing.assert_array_equal(neck._upsample(coarse, fine).numpy(), expected.numpy())


def test_config_errors():
    with pytest.raises(ValueError, match="extra_convs_on must be one of"):
        NECKS.build(dict(name="fpn", add_extra_convs=True, extra_convs_on="sideways"))
    with pytest.raises(ValueError, match="num_nb_outs=2 is smaller than the 3 backbone levels used"):
        NECKS.build(dict(name="fpn", start_level=1, num_nb_outs=2))
    neck, _ = build()
    arguments = {k: v for k, v in neck.get_config().items() if k not in ("name", "trainable", "dtype")}
    assert NECKS.build({"name": "fpn", **arguments}).get_config() == neck.get_config()


def test_end_level_is_inclusive_as_in_mmdetection():
    # mmdetection: FPN(in_channels=[...4], start_level=1, end_level=2) uses C3 and C4 (backbone_end_level = 3)
    neck, outs = build(end_level=2, num_nb_outs=3, add_extra_convs="on_input")
    assert len(neck.lateral_convs) == 2
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 8), (1, 8, 8, 8), (1, 4, 4, 8)]
    assert neck.fpn_convs[2].conv.kernel.shape == (3, 3, 40, 8)  # the extra conv reads C4, the last used input
    with pytest.raises(ValueError, match=r"need 0 <= start_level <= end_level < num_nb_ins \(end_level inclusive"):
        build(end_level=4)
