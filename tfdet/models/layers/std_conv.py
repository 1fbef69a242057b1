"""StdConv2D: the weight-standardised convolution of BiT / timm."""

from __future__ import annotations

import tensorflow as tf
import tf_keras


class StdConv2D(tf_keras.layers.Conv2D):
    """Conv2D with weight standardisation (BiT / timm ``StdConv2d``).

    Each output channel's kernel is standardised over (kh, kw, in) -- biased
    variance, ``eps`` added -- in float32, then cast to the compute dtype.
    Symmetric PyTorch-style padding is explicit: ``padding`` pixels of zeros
    on every side, then a 'valid' convolution.

    Args:
        filters, kernel_size, strides: as Conv2D.
        padding: zero padding on each side, in pixels.
        eps: added to the variance (BiT: 1e-8).
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, padding: int = 0, eps: float = 1e-8,
                 **kwargs) -> None:
        kwargs.pop("use_bias", None)
        super().__init__(filters, kernel_size, strides=strides, padding="valid", use_bias=False, **kwargs)
        self.pad, self.eps = int(padding), float(eps)
        self.folded = False  # True once the kernel holds its standardised values (see fold)

    def fold(self) -> None:
        """Stores the standardised kernel in the variable and stops recomputing it (for inference export)."""
        if not self.folded:
            self.kernel.assign(self.standardized_kernel())
            self.folded = True

    def standardized_kernel(self) -> tf.Tensor:
        """The kernel standardised per output channel, in float32.

        One ``FusedBatchNormV3`` call in training mode over the kernel viewed as ``[1, kh * kw * in, 1,
        out]`` (each output channel's mean and biased variance, then the normalisation: the same function),
        and one ``FusedBatchNormGradV3`` for its gradient; the written-out moments and their autodiff made
        about ten passes over the kernels (the seed config's 23.5 M weights per step, forward and backward
        three times slower).
        """
        kernel = tf.cast(self.kernel, tf.float32)
        filters = kernel.shape[-1]
        empty = tf.zeros([0])
        out = tf.raw_ops.FusedBatchNormV3(
            x=tf.reshape(kernel, [1, -1, 1, filters]), scale=tf.ones([filters]), offset=tf.zeros([filters]),
            mean=empty, variance=empty, epsilon=self.eps, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True)
        return tf.reshape(out.y, tf.shape(kernel))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.pad:
            inputs = tf.pad(inputs, [[0, 0], [self.pad, self.pad], [self.pad, self.pad], [0, 0]])
        kernel = tf.cast(self.kernel if self.folded else self.standardized_kernel(), inputs.dtype)
        return tf.nn.conv2d(inputs, kernel, strides=self.strides, padding="VALID")

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = (shape[axis] + 2 * self.pad - self.kernel_size[0]) // self.strides[0] + 1
        shape[3] = self.filters
        return tf.TensorShape(shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"padding": self.pad, "eps": self.eps})
        for key in ("use_bias",):
            config.pop(key, None)
        return config
