"""Small layers shared by the models."""

from __future__ import annotations

from typing import Optional, Tuple

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


def _group_statistics(mean_c: tf.Tensor, variance_c: tf.Tensor, groups: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """Per-channel moments over (H, W), [B, C] -> each channel's group mean and variance, [B, C].

    Exact: the group's mean is the mean of its channels' means; its variance the mean of their variances
    plus the spread of their means.
    """
    channels = mean_c.shape[-1]
    mean_c = tf.reshape(mean_c, [-1, groups, channels // groups])
    variance_c = tf.reshape(variance_c, [-1, groups, channels // groups])
    mean_g = tf.reduce_mean(mean_c, axis=2, keepdims=True)
    variance_g = tf.reduce_mean(variance_c + tf.square(mean_c - mean_g), axis=2, keepdims=True)
    shape = tf.shape(mean_c)
    return (tf.reshape(tf.broadcast_to(mean_g, shape), [-1, channels]),
            tf.reshape(tf.broadcast_to(variance_g, shape), [-1, channels]))


def _each_image(fn, x: tf.Tensor, *per_image: tf.Tensor):
    """``fn(image, *rows)`` for each [1, H, W, C] image of x (a static batch) and the matching [1, ...] rows
    of ``per_image``, concatenated along the batch (a split along the first axis shares the buffer)."""
    batch = x.shape[0]
    if batch == 1:
        return fn(x, *per_image)
    outs = [fn(*rows) for rows in zip(*[tf.split(t, batch) for t in (x,) + per_image])]
    if isinstance(outs[0], tuple):
        return tuple(tf.concat(parts, axis=0) for parts in zip(*outs))
    return tf.concat(outs, axis=0)


def _fused_channel_moments(x: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Each image's per-channel mean and (biased) variance over (H, W) in float32, [B, C], by TensorFlow's
    fused batch-norm kernel (one image at a time; it reads bfloat16 directly and accumulates in float32)."""
    ones, zeros, empty = tf.ones([x.shape[-1]]), tf.zeros([x.shape[-1]]), tf.zeros([0])

    def moments(image):  # (epsilon only enters the normalised output, which is not used)
        out = tf.raw_ops.FusedBatchNormV3(
            x=image, scale=ones, offset=zeros, mean=empty, variance=empty, epsilon=1e-3, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)
        count = tf.cast(tf.shape(image)[1] * tf.shape(image)[2], tf.float32)
        # the op returns the Bessel-corrected variance (for the moving average); undo the correction
        return out.batch_mean[None], (out.batch_variance * (count - 1.0) / count)[None]

    return _each_image(moments, x)


def _fused_normalize(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor,
                     epsilon: float) -> tf.Tensor:
    """``(x - mean) / sqrt(variance + epsilon) * gamma + beta`` per image ([B, C] statistics, float32), one
    fused pass per image in x's dtype (the fused batch-norm kernel in inference mode)."""

    def normalize(image, mean_row, variance_row):
        return tf.raw_ops.FusedBatchNormV3(
            x=image, scale=gamma, offset=beta, mean=mean_row[0], variance=variance_row[0], epsilon=epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=False).y

    return _each_image(normalize, x, mean, variance)


def _fused_gradient_sums(dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor,
                         epsilon: float) -> Tuple[tf.Tensor, tf.Tensor]:
    """Per image and channel, sum over (H, W) of dy and of dy * x_hat (x_hat = (x - mean) / sqrt(variance +
    epsilon), [B, C] statistics), in float32 [B, C]: the fused batch-norm gradient kernel in inference mode,
    reading bfloat16 as it is."""
    ones, empty = tf.ones([x.shape[-1]]), tf.zeros([0])

    def sums(image, dy_image, mean_row, variance_row):
        out = tf.raw_ops.FusedBatchNormGradV3(
            y_backprop=dy_image, x=image, scale=ones, reserve_space_1=mean_row[0], reserve_space_2=variance_row[0],
            reserve_space_3=empty, epsilon=epsilon, data_format="NHWC", is_training=False)
        return out.offset_backprop[None], out.scale_backprop[None]

    return _each_image(sums, x, dy, mean, variance)


@tf.function(jit_compile=True, autograph=False)
def _fused_input_gradient(dy: tf.Tensor, x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
    """``dy * a + x * b + c`` ([B, C] float32 coefficients) in float32, returned in x's dtype: one XLA loop
    that reads dy and x once (TensorFlow's ops would make six passes, with two float32 copies for bfloat16)."""
    dy32, x32 = tf.cast(dy, tf.float32), tf.cast(x, tf.float32)
    return tf.cast(dy32 * a[:, None, None, :] + x32 * b[:, None, None, :] + c[:, None, None, :], x.dtype)


def _group_norm_nhwc(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: int, epsilon: float,
                     fused: bool = False) -> tf.Tensor:
    """GroupNorm of a channels-last [B, H, W, C] tensor from per-channel moments, with its own gradient.

    Forward: each channel's mean and variance over (H, W), the group's exactly from them
    (:func:`_group_statistics`), then one multiply-add per element. With ``fused`` (x float32 or bfloat16;
    gamma and beta float32) both passes are TensorFlow's fused batch-norm kernel run per image: statistics
    accumulate in float32, the output comes in x's dtype, and a bfloat16 x is read as it is (no float32
    copy). Without it, plain TensorFlow ops in x's dtype.
    Backward, the same way: with g = dy * gamma and x_hat the normalised input, per group
    dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma, where both means come from two per-channel sums
    over (H, W) -- sum(dy) and sum(dy * x) -- so dx is again one multiply-add per element
    (dx = dy * a + x * b + c with [B, C] coefficients), and dgamma, dbeta fall out of the same sums.
    Fused: the two sums by the fused batch-norm gradient kernel (inference mode: dy * x_hat summed with the
    group statistics), the multiply-add as one XLA-compiled loop, all in float32 (dx rounded to x's dtype
    once).
    """

    @tf.custom_gradient
    def forward(x, gamma, beta):
        shape = tf.shape(x)
        per_group = x.shape[-1] // groups
        if fused:
            mean_c, variance_c = _fused_channel_moments(x)
        else:
            mean_c, variance_c = tf.nn.moments(x, axes=[1, 2])  # [B, C]
        mean_gc, variance_gc = _group_statistics(mean_c, variance_c, groups)
        inverse_c = tf.math.rsqrt(variance_gc + epsilon)
        if fused:
            y = _fused_normalize(x, gamma, beta, mean_gc, variance_gc, epsilon)
        else:
            multiplier = inverse_c * gamma
            offset = beta - mean_gc * multiplier
            y = x * multiplier[:, None, None, :] + offset[:, None, None, :]

        def grad(dy):
            if fused:
                sum_dy, sum_dy_xhat = _fused_gradient_sums(dy, x, mean_gc, variance_gc, epsilon)  # [B, C]
            else:
                sum_dy = tf.reduce_sum(dy, axis=[1, 2])  # [B, C]
                sum_dy_x = tf.reduce_sum(dy * x, axis=[1, 2])
                sum_dy_xhat = (sum_dy_x - mean_gc * sum_dy) * inverse_c  # sum over (H, W) of dy * x_hat
            count = tf.cast(shape[1] * shape[2] * per_group, gamma.dtype)

            def group_mean(per_channel):  # [B, C] -> the group's mean per element, repeated per channel
                total = tf.reduce_sum(tf.reshape(per_channel, [-1, groups, per_group]), axis=2, keepdims=True)
                return tf.reshape(tf.broadcast_to(total / count, tf.shape(total) * [1, 1, per_group]),
                                  tf.shape(per_channel))

            mean_g_dy = group_mean(sum_dy * gamma)  # mean(g)
            mean_g_dy_xhat = group_mean(sum_dy_xhat * gamma)  # mean(g * x_hat)
            a = inverse_c * gamma
            b = -inverse_c * inverse_c * mean_g_dy_xhat
            c = -inverse_c * mean_g_dy - mean_gc * b
            if fused:
                dx = _fused_input_gradient(dy, x, a, b, c)
            else:
                dx = dy * a[:, None, None, :] + x * b[:, None, None, :] + c[:, None, None, :]
            return dx, tf.reduce_sum(sum_dy_xhat, axis=0), tf.reduce_sum(sum_dy, axis=0)

        return y, grad

    return forward(x, gamma, beta)


_FUSED_DTYPES = {None: (tf.bfloat16,), True: (tf.float32, tf.bfloat16), False: ()}  # by ``fused``


class GroupNormalization(tf_keras.layers.GroupNormalization):
    """tf_keras GroupNormalization with faster statistics and gradient for channels-last 4-D inputs (same
    weights, same function; ``fused`` added to the config).

    tf_keras reduces a [B, H, W, G, C/G] view over the spatial and in-group axes at once, a strided
    reduction that costs about six copies of the tensor on this CPU, and differentiates through it.
    Here (:func:`_group_norm_nhwc`) each channel's moments over (H, W) come first, the group's follow
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
        return _group_norm_nhwc(inputs, gamma, beta, self.groups, self.epsilon, fused=fused)

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


def activation(name: Optional[str]):
    """An activation function by name (``relu``, ``gelu``, ``swish``/``silu``, ...); None: identity."""
    if name is None or name == "linear":
        return tf.identity
    if isinstance(name, dict):
        name = name.get("type") or name.get("name")
    aliases = {"silu": "swish"}
    try:
        return tf_keras.activations.get(aliases.get(str(name).lower(), str(name).lower()))
    except ValueError:
        raise ValueError(f"unknown activation {name!r}; use relu, gelu, swish, elu, ...") from None


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
