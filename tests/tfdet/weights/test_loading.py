import os

import numpy as np
import pytest
import tensorflow as tf

from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.models.backbones.resnet import ResNet
from tfdet.weights import Checkpoint, CheckpointError, load_state_dict, read_weights, save_checkpoint
from tfdet.weights.loading import build

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "reference")


def reference_state(name):
    tensors = read_weights(os.path.join(REFERENCE, f"{name}.safetensors")).tensors
    return {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}


@pytest.fixture
def short_resnet(monkeypatch):
    """The reference networks' shape: depth-50 bottlenecks, blocks (2, 1, 1, 1), base width 8."""
    from tfdet.models.backbones import resnet

    monkeypatch.setitem(resnet.DEPTHS, 50, ("bottleneck", (2, 1, 1, 1)))

    def make(**kwargs):
        backbone = ResNet(**{"depth": 50, "base_channels": 8, "input_size": (64, 64), **kwargs})
        build(backbone)
        return backbone

    return make


def snapshot(backbone):
    return [v.numpy().copy() for v in backbone.weights]


def assert_unchanged(backbone, before):
    for value, variable in zip(before, backbone.weights):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_a_checkpoint_of_another_architecture_is_named(short_resnet):
    backbone = short_resnet()
    with pytest.raises(CheckpointError) as error:
        load_state_dict(backbone, reference_state("timm_resnetv2_bit"), "bit.safetensors")
    assert str(error.value) == (
        "bit.safetensors: none of the backbone's 100 weights are in it (the backbone needs e.g. 'conv1.weight'; the "
        "checkpoint has head.fc.bias, head.fc.weight, norm.bias); it looks like resnetv2 (timm ResNetV2 / BiT)")


def test_a_shape_mismatch_names_the_key_and_changes_nothing(short_resnet):
    backbone = short_resnet(base_channels=16)
    before = snapshot(backbone)
    with pytest.raises(CheckpointError) as error:
        load_state_dict(backbone, reference_state("torchvision_resnet_bottleneck"), "tv.safetensors")
    assert str(error.value) == ("tv.safetensors: conv1.weight has shape (8, 3, 7, 7) but the backbone's "
                                "backbone/conv1/kernel:0 needs (16, 3, 7, 7) (as stored in the checkpoint); check the "
                                "depth and widths")
    assert_unchanged(backbone, before)


def test_a_late_bad_key_leaves_the_backbone_untouched(short_resnet):
    backbone = short_resnet()
    before = snapshot(backbone)
    state = reference_state("torchvision_resnet_bottleneck")
    state["layer4.0.bn3.running_var"] = state["layer4.0.bn3.running_var"][:-1]
    with pytest.raises(CheckpointError, match=r"layer4.0.bn3.running_var has shape \(255,\) but .* needs \(256,\)"):
        load_state_dict(backbone, state, "tv")
    assert_unchanged(backbone, before)
    state = reference_state("torchvision_resnet_bottleneck")
    state["layer4.0.conv3.weight"][0, 0, 0, 0] = np.nan
    with pytest.raises(CheckpointError, match="layer4.0.conv3.weight holds NaN or infinite values"):
        load_state_dict(backbone, state, "tv")
    assert_unchanged(backbone, before)


def test_missing_keys_are_listed(short_resnet):
    state = reference_state("torchvision_resnet_bottleneck")
    for key in ("layer4.0.bn3.running_var", "layer1.1.conv2.weight"):
        del state[key]
    with pytest.raises(CheckpointError) as error:
        load_state_dict(short_resnet(), state, "tv")
    assert str(error.value) == ("tv: lacks 2 weight(s) the backbone needs: layer1.1.conv2.weight, "
                                "layer4.0.bn3.running_var; is it the same depth and kind of network?")


def test_a_prefix_selects_the_backbone_of_a_detector_checkpoint(short_resnet):
    state = {f"backbone.{k}": v for k, v in reference_state("torchvision_resnet_bottleneck").items()}
    state["head.retina_cls.weight"] = np.zeros((9, 8, 3, 3), np.float32)
    backbone = short_resnet()
    assert load_state_dict(backbone, state, "detector", prefix="backbone.") == ["fc.bias", "fc.weight"]
    np.testing.assert_array_equal(backbone.stem.bn.moving_mean.numpy(), state["backbone.bn1.running_mean"])


def detector_config(checkpoint, **backbone):
    head = dict(name="AnchorHead", num_classes=3, stacked_convs=1, feat_channels=16,
                anchor_config=dict(octave_base_scale=4, scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]))
    return dict(
        backbone=dict(name="resnet", depth=50, base_channels=8, input_size=(64, 64), style="pytorch",
                      init_cfg=dict(name="Pretrained", checkpoint=checkpoint), **backbone),
        neck=dict(name="fpn", start_level=1, num_nb_ins=4, num_nb_outs=3, filters=16), head=head)


def test_init_cfg_loads_when_the_detector_is_built(tmp_path, short_resnet):
    state = reference_state("torchvision_resnet_bottleneck")
    path = save_checkpoint(Checkpoint("tv", state, {"architecture": "resnet", "style": "pytorch",
                                                    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}),
                           str(tmp_path / "tv.safetensors"))
    model = OneStageModel(ConfigOneStage(**detector_config(path)))
    np.testing.assert_array_equal(model.backbone.stages[3][0].convs[2].kernel.numpy(),
                                  state["layer4.0.conv3.weight"].transpose(2, 3, 1, 0))
    model.build_model()
    os.remove(path)  # a model rebuilt from its config (export, warm start) does not fetch again
    copy = OneStageModel.from_config(model.get_config()).build_model()
    copy.set_weights(model.get_weights())
    x = tf.random.normal([1, 64, 64, 3], seed=1)
    np.testing.assert_allclose(copy(x)[0][0].numpy(), model(x)[0][0].numpy(), atol=1e-5)


def test_weights_that_expect_other_inputs_or_another_style_are_refused(tmp_path, short_resnet):
    state = reference_state("torchvision_resnet_bottleneck")
    caffe = save_checkpoint(Checkpoint("c", state, {"architecture": "resnet", "style": "caffe"}),
                            str(tmp_path / "caffe.safetensors"))
    with pytest.raises(CheckpointError, match=r"weights of style 'caffe' .* but the backbone has style='pytorch'; "
                                              r"set style='caffe'"):
        OneStageModel(ConfigOneStage(**detector_config(caffe)))
    scaled = save_checkpoint(Checkpoint("s", state, {"style": "pytorch", "mean": [0.5] * 3, "std": [0.5] * 3}),
                             str(tmp_path / "scaled.safetensors"))
    with pytest.raises(ValueError, match=r"expect inputs normalised with mean=\[0.5, 0.5, 0.5\], std=\[0.5, 0.5, "
                                         r"0.5\] \(RGB, \[0, 1\] units\) but the model config has mean="):
        OneStageModel(ConfigOneStage(**detector_config(scaled)))
    bit = save_checkpoint(Checkpoint("b", reference_state("timm_resnetv2_bit"), {"architecture": "resnetv2"}),
                          str(tmp_path / "bit.safetensors"))
    with pytest.raises(CheckpointError, match="weights for a resnetv2 backbone, but this backbone is resnet"):
        OneStageModel(ConfigOneStage(**detector_config(bit)))
