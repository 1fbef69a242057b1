"""Feature Pyramid Network with mmdetection's arguments."""

from __future__ import annotations

from typing import List, Union

import tensorflow as tf
import tf_keras

from tfdet.registry import NECKS

_EXTRA_SOURCES = ("on_input", "on_lateral", "on_output")


class _Conv(tf_keras.layers.Layer):
    """Conv with PyTorch's symmetric padding (so strided convs match mmdetection's)."""

    def __init__(self, filters: int, kernel_size: int, stride: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.stride = filters, kernel_size, stride
        self.conv = tf_keras.layers.Conv2D(filters, kernel_size, stride, padding="valid", name="conv")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        pad = (self.kernel_size - 1) // 2
        if pad:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return self.conv(x)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride})
        return config


@NECKS.register()
class FPN(tf_keras.layers.Layer):
    """FPN (Lin et al.) as mmdetection's ``FPN``.

    Args:
        start_level: first backbone feature used (1 skips C2).
        num_nb_ins: number of backbone features given (mmdet: len(in_channels)).
        num_nb_outs: number of pyramid outputs (mmdet: num_outs); outputs past
            the backbone's levels are extra levels.
        filters: channels of every output (mmdet: out_channels).
        end_level: last backbone feature used, inclusive (-1 = all), as mmdetection's FPN
            (``backbone_end_level = end_level + 1``).
        add_extra_convs: False: extra levels by stride-2 max-pooling of the last
            output; True or 'on_input': a stride-2 3x3 conv on the last used
            backbone feature; 'on_lateral': on the last lateral;
            'on_output': on the last FPN output. Further extra levels convolve
            the previous extra level.
        extra_convs_on: the source of the first extra conv when
            ``add_extra_convs`` is True (this project's spelling of
            mmdetection's string values).
        relu_before_extra_convs: ReLU before every extra conv after the first.
        upsample: 'nearest' or 'bilinear' top-down resizing.
    """

    def __init__(self, start_level: int = 0, num_nb_ins: int = 4, num_nb_outs: int = 5, filters: int = 256,
                 end_level: int = -1, add_extra_convs: Union[bool, str] = False, extra_convs_on: str = "on_input",
                 relu_before_extra_convs: bool = False, upsample: str = "nearest", **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", "neck"), **kwargs)
        if isinstance(add_extra_convs, str):
            extra_convs_on, add_extra_convs = add_extra_convs, True
        if add_extra_convs and extra_convs_on not in _EXTRA_SOURCES:
            raise ValueError(f"fpn: extra_convs_on must be one of {_EXTRA_SOURCES}, got {extra_convs_on!r}")
        backbone_end = num_nb_ins if end_level == -1 else end_level + 1
        if not 0 <= start_level < backbone_end <= num_nb_ins:
            raise ValueError(f"fpn: need 0 <= start_level <= end_level < num_nb_ins (end_level inclusive, as "
                             f"mmdetection; -1 = the last), got start_level={start_level}, end_level={end_level}, "
                             f"num_nb_ins={num_nb_ins}")
        used = backbone_end - start_level
        if num_nb_outs < used:
            raise ValueError(f"fpn: num_nb_outs={num_nb_outs} is smaller than the {used} backbone levels used")
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"fpn: upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        self.start_level, self.num_nb_ins = start_level, num_nb_ins
        self.num_nb_outs, self.filters = num_nb_outs, filters
        self.end_level, self.backbone_end = end_level, backbone_end
        self.add_extra_convs, self.extra_convs_on = bool(add_extra_convs), extra_convs_on
        self.relu_before_extra_convs, self.upsample = relu_before_extra_convs, upsample
        self.lateral_convs = [_Conv(filters, 1, name=f"lateral_convs.{i}") for i in range(used)]
        self.fpn_convs = [_Conv(filters, 3, name=f"fpn_convs.{i}") for i in range(used)]
        extra = num_nb_outs - used
        if self.add_extra_convs:
            self.fpn_convs += [_Conv(filters, 3, 2, name=f"fpn_convs.{used + i}") for i in range(extra)]

    def _upsample(self, x: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
        size = tf.shape(like)[1:3]
        if self.upsample == "bilinear":
            return tf.image.resize(x, size, method="bilinear")
        # Nearest 2x as an index repeat, cropped to the finer map: the same values as PyTorch's 'nearest'
        # for the ceil-halved sizes of a backbone, and differentiable under XLA (ResizeNearestNeighborGrad
        # has no XLA kernel on CPU).
        doubled = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)
        return doubled[:, :size[0], :size[1], :]

    def call(self, inputs: List[tf.Tensor]) -> List[tf.Tensor]:
        if len(inputs) != self.num_nb_ins:
            raise ValueError(f"fpn: got {len(inputs)} backbone features, num_nb_ins={self.num_nb_ins}")
        used = self.backbone_end - self.start_level
        laterals = [conv(inputs[self.start_level + i]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(used - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + tf.cast(self._upsample(laterals[i], laterals[i - 1]),
                                                        laterals[i - 1].dtype)
        outs = [self.fpn_convs[i](laterals[i]) for i in range(used)]
        if self.num_nb_outs > used:
            if not self.add_extra_convs:
                for _ in range(self.num_nb_outs - used):
                    outs.append(tf.nn.max_pool2d(outs[-1], 1, 2, "VALID"))
            else:
                source = {"on_input": inputs[self.backbone_end - 1], "on_lateral": laterals[-1],
                          "on_output": outs[-1]}[self.extra_convs_on]
                outs.append(self.fpn_convs[used](source))
                for i in range(used + 1, self.num_nb_outs):
                    previous = tf.nn.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](previous))
        return outs

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"start_level": self.start_level, "num_nb_ins": self.num_nb_ins,
                       "num_nb_outs": self.num_nb_outs, "filters": self.filters, "end_level": self.end_level,
                       "add_extra_convs": self.add_extra_convs, "extra_convs_on": self.extra_convs_on,
                       "relu_before_extra_convs": self.relu_before_extra_convs, "upsample": self.upsample})
        return config
