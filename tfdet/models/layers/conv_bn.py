"""ConvBN: a convolution and its BatchNorm, PyTorch's padding, the frozen statistics folded into the kernel."""

from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf
import tf_keras


class ConvBN(tf_keras.layers.Layer):
    """A bias-free convolution followed by BatchNorm (PyTorch's ``Conv2d`` + ``BatchNorm2d``).

    Padding is PyTorch's: ``padding`` pixels of zeros on every side (default
    ``(kernel_size - 1) // 2``), so strided convolutions sample the same
    pixels as in torchvision and timm.

    With ``frozen_norm`` (the detection default, torchvision's
    ``FrozenBatchNorm2d``) the statistics and the affine are constants and
    fold into the convolution on every call: ``conv(x, W * s) + (beta - mean
    * s)`` with ``s = gamma / sqrt(var + eps)``, one convolution and no
    separate normalisation pass. The fold is computed in float32 and cast to
    the compute dtype. Otherwise it is a trainable BatchNorm (batch statistics
    in training, momentum as PyTorch's 0.1).

    Args:
        filters, kernel_size, strides: of the convolution.
        padding: zeros on each side; default ``(kernel_size - 1) // 2``.
        frozen_norm: BatchNorm statistics and affine fixed (folded).
        eps: BatchNorm epsilon (PyTorch: 1e-5).
        conv_key, norm_key: the PyTorch module paths of the two parts, e.g.
            ``"layer1.0.conv1"`` and ``"layer1.0.bn1"`` (weight loading).
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, padding: Optional[int] = None,
                 frozen_norm: bool = True, eps: float = 1e-5, conv_key: str = "", norm_key: str = "",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.padding = (self.kernel_size - 1) // 2 if padding is None else int(padding)
        self.frozen_norm, self.eps = bool(frozen_norm), float(eps)
        self.conv_key, self.norm_key = conv_key, norm_key
        self.bn = tf_keras.layers.BatchNormalization(epsilon=self.eps, momentum=0.9, name="bn")
        self.bn.trainable = not self.frozen_norm

    def build(self, input_shape) -> None:
        channels = int(input_shape[-1])
        # float32 even under mixed precision (no autocast), so that the fold is exact
        self.kernel = self.add_weight(
            "kernel", shape=(self.kernel_size, self.kernel_size, channels, self.filters),
            initializer=tf_keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
            experimental_autocast=False)
        self.bn.build(tf.TensorShape([None, None, None, self.filters]))
        super().build(input_shape)

    @property
    def trainable_weights(self) -> list:
        # A frozen BatchNorm stays frozen when a parent sets ``trainable`` (Keras sets it on every sublayer):
        # only the kernel trains.
        if not self.frozen_norm:
            return super().trainable_weights
        return [self.kernel] if self.trainable and self.built else []

    @property
    def non_trainable_weights(self) -> list:
        if not self.frozen_norm:
            return super().non_trainable_weights
        kernel = [] if self.trainable or not self.built else [self.kernel]
        return kernel + self.bn.weights

    def folded(self) -> Tuple[tf.Tensor, tf.Tensor]:
        """The (kernel, bias) in float32 that compute conv + frozen BatchNorm in one convolution.

        The frozen statistics and affine are constants: no gradient flows to them (else the backward pass
        computes one for the scale, a product and a sum over the whole kernel, only to discard it).
        """
        scale = tf.stop_gradient(self.bn.gamma * tf.math.rsqrt(self.bn.moving_variance + self.eps))
        return self.kernel * scale, tf.stop_gradient(self.bn.beta - self.bn.moving_mean * scale)

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        if self.padding:
            pad = self.padding
            inputs = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        if self.frozen_norm:
            kernel, bias = self.folded()
            out = tf.nn.conv2d(inputs, tf.cast(kernel, inputs.dtype), self.strides, "VALID")
            return tf.nn.bias_add(out, tf.cast(bias, out.dtype))
        out = tf.nn.conv2d(inputs, tf.cast(self.kernel, inputs.dtype), self.strides, "VALID")
        return tf.cast(self.bn(out, training=training), inputs.dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                       "padding": self.padding, "frozen_norm": self.frozen_norm, "eps": self.eps,
                       "conv_key": self.conv_key, "norm_key": self.norm_key})
        return config
