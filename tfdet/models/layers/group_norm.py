"""GroupNormalization (tf_keras's, faster, float32 statistics) and GroupNormAct (timm's GroupNorm + ReLU)."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from tfdet.models.layers.group_norm_kernels import group_norm_nhwc

_FUSED_DTYPES = {None: (tf.bfloat16,), True: (tf.float32, tf.bfloat16), False: ()}  # by ``fused``


class GroupNormalization(tf_keras.layers.GroupNormalization):
    """tf_keras GroupNormalization with faster statistics and gradient for channels-last 4-D inputs (same
    weights, same function; ``fused`` added to the config).

    tf_keras reduces a [B, H, W, G, C/G] view over the spatial and in-group axes at once, a strided
    reduction that costs about six copies of the tensor on this CPU, and differentiates through it.
    Here (:func:`group_norm_nhwc`) each channel's moments over (H, W) come first, the group's follow
    exactly from them, and normalisation, scale and offset are one pass per element; the gradient is
    written out the same way (two per-channel sums, one multiply-add), because TensorFlow's automatic gradient of
    the fast forward is slower than tf_keras's.

    The fused path, for a batch of static size (training batches, a traced image): both forward passes
    are TensorFlow's fused batch-norm kernel, run per image, and the backward is its gradient kernel plus
    one XLA-compiled multiply-add. Statistics, normalisation and gradient are computed in float32 whatever
    the input's dtype, a bfloat16 input is read without a float32 copy, and the output keeps the input's
    dtype (under ``mixed_bfloat16``: bfloat16, the float32 result rounded once, as the next convolution
    would round it). By default it runs for bfloat16 inputs only, where it is faster (``fused=True`` forces it;
    the measurements are in benchmarks/README.md). Otherwise (a batch of unknown size, as in the serving
    signatures, where per-image kernels would need a loop; ``fused=False``, what the TFLite export uses, since the
    kernel's training mode is no TFLite builtin; float32 by default; float64) the input is cast to the layer's
    dtype and plain ops compute in it. Masks and other ranks or axes take the tf_keras path.

    Args:
        fused: None (default): the fused kernels for bfloat16 inputs; True: for float32 and bfloat16
            inputs; False: never.
        **kwargs: tf_keras.layers.GroupNormalization's.
    """

    def __init__(self, *args, fused: Optional[bool] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fused = None if fused is None else bool(fused)
        self._autocast = False  # the fused path reads bfloat16 as it is; the others cast below

    def call(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None, training: Optional[bool] = None) -> tf.Tensor:
        fast = mask is None and inputs.shape.rank == 4 and self.axis in (-1, 3) and inputs.shape[-1] is not None
        fused = fast and inputs.dtype in _FUSED_DTYPES[self.fused] and inputs.shape[0] is not None
        if not fused:
            inputs = tf.cast(inputs, self.compute_dtype)
        if not fast:
            return super().call(inputs, mask=mask)
        channels = inputs.shape[-1]
        dtype = tf.float32 if fused else inputs.dtype
        gamma = tf.cast(self.gamma, dtype) if self.scale else tf.ones([channels], dtype)
        beta = tf.cast(self.beta, dtype) if self.center else tf.zeros([channels], dtype)
        return group_norm_nhwc(inputs, gamma, beta, self.groups, self.epsilon, fused=fused)

    def get_config(self) -> dict:
        config = super().get_config()
        config["fused"] = self.fused
        return config


def group_norm(groups: int, eps: float = 1e-5, name: Optional[str] = None) -> GroupNormalization:
    """GroupNormalization whose statistics are always float32.

    tf_keras computes the group moments in the input dtype; under ``mixed_bfloat16`` that is bf16
    (8-bit mantissa) and the statistics drift. The fused path accumulates in float32 and returns the
    input's dtype; the others compute in the layer's float32.
    """
    return GroupNormalization(groups=groups, epsilon=eps, name=name, dtype="float32")


class GroupNormAct(tf_keras.layers.Layer):
    """GroupNorm followed by an optional ReLU (timm ``GroupNormAct``); statistics in float32.

    Args:
        groups: number of groups (timm: 32).
        eps: epsilon of the normalisation (timm: 1e-5).
        act: apply ReLU after the normalisation.
    """

    def __init__(self, groups: int = 32, eps: float = 1e-5, act: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.groups, self.eps, self.act = int(groups), float(eps), bool(act)
        self.norm = group_norm(self.groups, self.eps, name="gn")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        out = self.norm(inputs)
        return tf.nn.relu(out) if self.act else out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"groups": self.groups, "eps": self.eps, "act": self.act})
        return config
