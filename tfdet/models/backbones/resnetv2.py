"""BiT-style pre-activation ResNetV2 (timm ``resnetv2_50x1_bit`` family).

GroupNorm (32 groups) + weight-standardised convolutions, pre-activation
bottlenecks, the 'fixed' stem. Layer names follow timm's ``state_dict`` keys
(``stem.conv``, ``stages.1.blocks.0.conv2``, ``norm``), and
:meth:`ResNetV2.timm_variables` maps every key to its variable, so weights
convert one to one (PyTorch OIHW kernels -> HWIO by ``transpose(2, 3, 1, 0)``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tf_keras

from tfdet.models.layers import GroupNormAct, StdConv2D
from tfdet.registry import BACKBONES


class PreActBottleneck(tf_keras.layers.Layer):
    """Pre-activation bottleneck.

    norm1 -> (downsample of the pre-activated input) -> conv1 -> norm2 -> conv2 (stride) -> norm3 -> conv3,
    plus the shortcut.
    """

    def __init__(self, out_channels: int, stride: int, downsample: bool, groups: int, prefix: str, **kwargs):
        super().__init__(name=prefix, **kwargs)
        mid = out_channels // 4
        self.out_channels, self.stride, self.has_downsample, self.groups = out_channels, stride, downsample, groups
        self.norm1 = GroupNormAct(groups, name=f"{prefix}.norm1")
        self.downsample = StdConv2D(out_channels, 1, stride, name=f"{prefix}.downsample.conv") if downsample else None
        self.conv1 = StdConv2D(mid, 1, name=f"{prefix}.conv1")
        self.norm2 = GroupNormAct(groups, name=f"{prefix}.norm2")
        self.conv2 = StdConv2D(mid, 3, stride, padding=1, name=f"{prefix}.conv2")
        self.norm3 = GroupNormAct(groups, name=f"{prefix}.norm3")
        self.conv3 = StdConv2D(out_channels, 1, name=f"{prefix}.conv3")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        preact = self.norm1(x)
        shortcut = self.downsample(preact) if self.downsample is not None else x
        x = self.conv1(preact)
        x = self.conv2(self.norm2(x))
        x = self.conv3(self.norm3(x))
        return x + shortcut

    def get_config(self) -> dict:
        return {"out_channels": self.out_channels, "stride": self.stride, "downsample": self.has_downsample,
                "groups": self.groups, "prefix": self.name}


@BACKBONES.register()
class ResNetV2(tf_keras.layers.Layer):
    """BiT ResNetV2 backbone.

    Args:
        input_size: (height, width) the detector is built for; ``dummy_inputs``
            uses it. Other sizes (multiples of 32) work at call time.
        nb_blocks: bottlenecks per stage; (3, 4, 6, 3) is ResNetV2-50,
            (3, 4, 23, 3) ResNetV2-101.
        width_factor: channel multiplier (BiT x1, x3; fractions such as 0.25
            make small CPU models).
        pool_size, crop_pct: timm ``pretrained_cfg`` metadata of the matching
            classification weights (global-pool size and eval crop), kept in
            ``default_cfg`` for weight conversion; detection does not use them.
        groups: GroupNorm groups (32 as BiT; smaller for narrow models).
        init_cfg: ``dict(name="Pretrained", checkpoint=...)``: weights loaded by
            :meth:`init_weights`, e.g. ``checkpoint="timm:resnetv2_50x1_bit.goog_in21k"``
            (see :mod:`tfdet.weights`).

    Calling it returns the final feature map (stride 32, after the final
    GroupNorm + ReLU); ``return_features=True`` returns the list of stage
    outputs C2..C5 (strides 4, 8, 16, 32) described by ``feature_info``; only
    C5 is normalised, as in timm.
    """

    weights_architecture = "resnetv2"

    def __init__(self, input_size: Sequence[int] = (512, 512), nb_blocks: Sequence[int] = (3, 4, 6, 3),
                 width_factor: float = 1, pool_size: int = 7, crop_pct: float = 1.0, groups: int = 32,
                 init_cfg: Optional[Mapping[str, Any]] = None, **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", "backbone"), **kwargs)
        if len(nb_blocks) != 4:
            raise ValueError(f"resnetv2: nb_blocks needs 4 stages, got {tuple(nb_blocks)}")
        self.input_size = tuple(int(v) for v in input_size)
        self.nb_blocks = tuple(int(v) for v in nb_blocks)
        self.width_factor, self.pool_size, self.crop_pct, self.groups = width_factor, pool_size, crop_pct, groups
        self.init_cfg = dict(init_cfg) if init_cfg else None
        stem_channels = int(round(64 * width_factor))
        stage_channels = [int(round(c * width_factor)) for c in (256, 512, 1024, 2048)]
        for channels in [stem_channels, *stage_channels, *[c // 4 for c in stage_channels]]:
            if channels % groups:
                raise ValueError(f"resnetv2: width_factor {width_factor} gives {channels} channels, "
                                 f"not divisible by groups={groups}; lower groups")
        self.stem_conv = StdConv2D(stem_channels, 7, 2, padding=3, name="stem.conv")
        self.stages: List[List[PreActBottleneck]] = []
        in_channels = stem_channels
        for i, (blocks, channels) in enumerate(zip(self.nb_blocks, stage_channels)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(blocks):
                needs_downsample = j == 0 and (stride != 1 or in_channels != channels)
                stage.append(PreActBottleneck(channels, stride if j == 0 else 1, needs_downsample, groups,
                                              f"stages.{i}.blocks.{j}"))
                in_channels = channels
            self.stages.append(stage)
        self.norm = GroupNormAct(groups, name="norm")
        self.feature_info = [
            {"num_chs": c, "reduction": r, "module": m}
            for c, r, m in zip(stage_channels, (4, 8, 16, 32), ("stages.0", "stages.1", "stages.2", "norm"))
        ]
        self.default_cfg = {"input_size": (3, *self.input_size), "pool_size": (pool_size, pool_size),
                            "crop_pct": crop_pct, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}

    @property
    def dummy_inputs(self) -> tf.Tensor:
        """A zero batch of one image at ``input_size``: calling on it builds every variable."""
        return tf.zeros([1, *self.input_size, 3])

    def call(self, inputs: tf.Tensor, return_features: bool = False) -> Union[tf.Tensor, List[tf.Tensor]]:
        x = self.stem_conv(inputs)
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        features = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = block(x)
            features.append(self.norm(x) if i == len(self.stages) - 1 else x)
        return features if return_features else features[-1]

    def torch_variables(self) -> Dict[str, Tuple[tf.Variable, str]]:
        """timm ``state_dict`` key -> (variable, layout: ``"conv"`` OIHW there / HWIO here, or ``"vector"``).
        Build the layer first."""
        mapping: Dict[str, Tuple[tf.Variable, str]] = {"stem.conv.weight": (self.stem_conv.kernel, "conv")}
        norms = [self.norm]
        for stage in self.stages:
            for block in stage:
                for conv in (block.conv1, block.conv2, block.conv3, block.downsample):
                    if conv is not None:
                        mapping[f"{conv.name}.weight"] = (conv.kernel, "conv")
                norms += [block.norm1, block.norm2, block.norm3]
        for norm in norms:
            mapping[f"{norm.name}.weight"] = (norm.norm.gamma, "vector")
            mapping[f"{norm.name}.bias"] = (norm.norm.beta, "vector")
        return mapping

    def timm_variables(self) -> Dict[str, Tuple[tf.Variable, bool]]:
        """timm state_dict key -> (variable, is_conv_kernel). Build the layer first."""
        return {key: (variable, layout == "conv") for key, (variable, layout) in self.torch_variables().items()}

    def load_timm_state_dict(self, state_dict: Dict[str, np.ndarray]) -> List[str]:
        """Loads timm ResNetV2 weights (numpy arrays, PyTorch layouts); returns the keys not used.

        Every key and shape is checked before any variable changes (see
        :func:`tfdet.weights.load_state_dict`).

        Args:
            state_dict: e.g. ``{k: v.numpy() for k, v in timm_model.state_dict().items()}``.
        """
        from tfdet.weights.loading import build, load_state_dict

        build(self)
        return load_state_dict(self, state_dict, "timm state_dict")

    def init_weights(self) -> None:
        """Builds the variables and loads ``init_cfg``'s checkpoint (nothing to do without one)."""
        from tfdet.weights.loading import init_backbone

        init_backbone(self)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"input_size": self.input_size, "nb_blocks": self.nb_blocks, "width_factor": self.width_factor,
                       "pool_size": self.pool_size, "crop_pct": self.crop_pct, "groups": self.groups,
                       "init_cfg": self.init_cfg})
        return config
