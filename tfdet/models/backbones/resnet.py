"""ResNet v1 / v1.5 (He et al.) with mmdetection's arguments and torchvision's weight names.

``style="pytorch"`` puts a bottleneck's stride on its 3x3 conv (torchvision, timm: "v1.5");
``style="caffe"`` on its first 1x1 conv (MSRA's original and Keras applications: "v1"). Every
conv + BatchNorm pair is a :class:`~tfdet.models.layers.ConvBN` whose ``conv_key`` / ``norm_key``
are the torchvision ``state_dict`` paths (``conv1``/``bn1``, ``layer1.0.conv1``/``layer1.0.bn1``,
``layer1.0.downsample.0``/``layer1.0.downsample.1``), so :meth:`ResNet.torch_variables` maps every
checkpoint key to its variable.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import tensorflow as tf
import tf_keras

from tfdet.models.layers import ConvBN
from tfdet.registry import BACKBONES

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}
STYLES = ("pytorch", "caffe")


class ResidualBlock(tf_keras.layers.Layer):
    """A basic (two 3x3) or bottleneck (1x1, 3x3, 1x1; 4x expansion) residual block.

    Args:
        kind: ``"basic"`` or ``"bottleneck"``.
        planes: the block's inner width (its output is ``planes`` for basic, ``4 * planes`` for bottleneck).
        stride: 1 or 2.
        downsample: whether the shortcut is a strided 1x1 conv + BatchNorm.
        style: where a bottleneck's stride goes (see the module docstring).
        frozen_norm: BatchNorm frozen and folded into the convs.
        prefix: the block's torchvision path, e.g. ``"layer2.0"``.
    """

    def __init__(self, kind: str, planes: int, stride: int, downsample: bool, style: str, frozen_norm: bool,
                 prefix: str, **kwargs) -> None:
        super().__init__(name=prefix, **kwargs)
        self.kind, self.planes, self.stride, self.has_downsample = kind, planes, stride, downsample
        self.style, self.frozen_norm = style, frozen_norm

        def conv_bn(index: int, filters: int, size: int, strides: int = 1) -> ConvBN:
            return ConvBN(filters, size, strides, frozen_norm=frozen_norm, conv_key=f"{prefix}.conv{index}",
                          norm_key=f"{prefix}.bn{index}", name=f"{prefix}.conv{index}")

        if kind == "basic":
            out = planes
            self.convs = [conv_bn(1, planes, 3, stride), conv_bn(2, planes, 3)]
        else:
            out = planes * 4
            first, middle = (stride, 1) if style == "caffe" else (1, stride)
            self.convs = [conv_bn(1, planes, 1, first), conv_bn(2, planes, 3, middle), conv_bn(3, out, 1)]
        self.downsample = ConvBN(out, 1, stride, frozen_norm=frozen_norm, conv_key=f"{prefix}.downsample.0",
                                 norm_key=f"{prefix}.downsample.1",
                                 name=f"{prefix}.downsample") if downsample else None

    def call(self, x: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        shortcut = self.downsample(x, training=training) if self.downsample is not None else x
        for conv in self.convs[:-1]:
            x = tf.nn.relu(conv(x, training=training))
        return tf.nn.relu(self.convs[-1](x, training=training) + shortcut)

    def get_config(self) -> dict:
        return {"kind": self.kind, "planes": self.planes, "stride": self.stride, "downsample": self.has_downsample,
                "style": self.style, "frozen_norm": self.frozen_norm, "prefix": self.name}


@BACKBONES.register()
class ResNet(tf_keras.layers.Layer):
    """ResNet backbone (mmdetection's ``ResNet`` arguments).

    Args:
        depth: 18, 34 (basic blocks), 50, 101, 152 (bottlenecks).
        input_size: (height, width) the detector is built for (``dummy_inputs``);
            other multiples of 32 work at call time.
        num_stages: residual stages built (1-4).
        out_indices: stages whose outputs ``return_features`` gives (0 = C2).
        style: ``"pytorch"`` (stride on the 3x3 conv; torchvision / timm
            weights) or ``"caffe"`` (stride on the first 1x1 conv; MSRA /
            Keras weights).
        frozen_stages: the stem and stages ``1..frozen_stages`` get no
            gradient (-1: nothing frozen; 0: the stem only).
        norm_eval: BatchNorm statistics and affine frozen everywhere and
            folded into the convolutions (detection's default: batches are
            too small to train BatchNorm).
        base_channels: width of the first stage (64; smaller for tiny models).
        stem_channels: output channels of the stem (default ``base_channels``).
        init_cfg: ``dict(name="Pretrained", checkpoint=...)``: weights loaded by
            :meth:`init_weights` (see :mod:`tfdet.weights`).

    Calling it returns the last stage's output; ``return_features=True``
    returns the outputs of ``out_indices`` (strides 4, 8, 16, 32), described
    by ``feature_info``.
    """

    weights_architecture = "resnet"

    def __init__(self, depth: int = 50, input_size: Sequence[int] = (512, 512), num_stages: int = 4,
                 out_indices: Sequence[int] = (0, 1, 2, 3), style: str = "pytorch", frozen_stages: int = -1,
                 norm_eval: bool = True, base_channels: int = 64, stem_channels: Optional[int] = None,
                 init_cfg: Optional[Mapping[str, Any]] = None, **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", "backbone"), **kwargs)
        if depth not in DEPTHS:
            raise ValueError(f"resnet: depth must be one of {sorted(DEPTHS)}, got {depth}")
        if style not in STYLES:
            raise ValueError(f"resnet: style must be one of {STYLES}, got {style!r}")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"resnet: num_stages must be 1-4, got {num_stages}")
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(not 0 <= i < num_stages for i in out_indices):
            raise ValueError(f"resnet: out_indices {out_indices} must name stages below num_stages={num_stages}")
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f"resnet: frozen_stages must be -1..{num_stages}, got {frozen_stages}")
        self.depth, self.num_stages, self.out_indices, self.style = depth, num_stages, out_indices, style
        self.input_size = tuple(int(v) for v in input_size)
        self.frozen_stages, self.norm_eval = frozen_stages, bool(norm_eval)
        self.base_channels = int(base_channels)
        self.stem_channels = int(stem_channels or base_channels)
        self.init_cfg = dict(init_cfg) if init_cfg else None
        kind, blocks = DEPTHS[depth]
        expansion = 1 if kind == "basic" else 4

        self.stem = ConvBN(self.stem_channels, 7, 2, frozen_norm=self.norm_eval, conv_key="conv1", norm_key="bn1",
                           name="conv1")
        self.stages: List[List[ResidualBlock]] = []
        in_channels = self.stem_channels
        for i in range(num_stages):
            planes = self.base_channels * 2 ** i
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(blocks[i]):
                first = j == 0
                stage.append(ResidualBlock(
                    kind, planes, stride if first else 1, first and (stride != 1 or in_channels != planes * expansion),
                    style, self.norm_eval, f"layer{i + 1}.{j}"))
                in_channels = planes * expansion
            self.stages.append(stage)
        self.stem.trainable = frozen_stages < 0
        for i, stage in enumerate(self.stages):
            for block in stage:
                block.trainable = i >= frozen_stages
        self.feature_info = [{"num_chs": self.base_channels * 2 ** i * expansion, "reduction": 4 * 2 ** i,
                              "module": f"layer{i + 1}"} for i in out_indices]

    @property
    def dummy_inputs(self) -> tf.Tensor:
        """A zero batch of one image at ``input_size``: calling on it builds every variable."""
        return tf.zeros([1, *self.input_size, 3])

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None,
             return_features: bool = False) -> Union[tf.Tensor, List[tf.Tensor]]:
        x = tf.nn.relu(self.stem(inputs, training=training))
        # PyTorch pads the max-pool with -inf; after the ReLU zeros give the same maxima.
        x = tf.nn.max_pool2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "VALID")
        outputs = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = block(x, training=training)
            if i in self.out_indices:
                outputs.append(x)
        return outputs if return_features else x

    def conv_bn_layers(self) -> List[ConvBN]:
        """Every conv + BatchNorm pair, stem first."""
        layers = [self.stem]
        for stage in self.stages:
            for block in stage:
                layers += block.convs + ([block.downsample] if block.downsample is not None else [])
        return layers

    def torch_variables(self) -> Dict[str, Tuple[tf.Variable, str]]:
        """torchvision ``state_dict`` key -> (variable, layout): ``"conv"`` (OIHW there, HWIO here) or
        ``"vector"``. Build the layer first."""
        mapping: Dict[str, Tuple[tf.Variable, str]] = {}
        for layer in self.conv_bn_layers():
            mapping[f"{layer.conv_key}.weight"] = (layer.kernel, "conv")
            for suffix, variable in (("weight", layer.bn.gamma), ("bias", layer.bn.beta),
                                     ("running_mean", layer.bn.moving_mean),
                                     ("running_var", layer.bn.moving_variance)):
                mapping[f"{layer.norm_key}.{suffix}"] = (variable, "vector")
        return mapping

    def init_weights(self) -> None:
        """Builds the variables and loads ``init_cfg``'s checkpoint (nothing to do without one)."""
        from tfdet.weights.loading import init_backbone

        init_backbone(self)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"depth": self.depth, "input_size": self.input_size, "num_stages": self.num_stages,
                       "out_indices": self.out_indices, "style": self.style, "frozen_stages": self.frozen_stages,
                       "norm_eval": self.norm_eval, "base_channels": self.base_channels,
                       "stem_channels": self.stem_channels, "init_cfg": self.init_cfg})
        return config


def _depth_entry(depth: int):
    def build(**kwargs) -> ResNet:
        if kwargs.setdefault("depth", depth) != depth:
            raise ValueError(f"resnet{depth}: depth is {depth}, got depth={kwargs['depth']}; use name='resnet'")
        return ResNet(**kwargs)

    build.__name__ = build.__qualname__ = f"resnet{depth}"
    build.__doc__ = f"ResNet-{depth}: ``ResNet(depth={depth}, ...)``."
    return build


for _depth in DEPTHS:
    BACKBONES.register(f"resnet{_depth}")(_depth_entry(_depth))
