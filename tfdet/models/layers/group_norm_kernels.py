"""The faster GroupNorm forward and gradient for channels-last 4-D inputs (used by :class:`GroupNormalization`):
per-channel moments first, the group's from them, one pass per element; the fused path on TensorFlow's batch-norm
kernels per image."""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf


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


def group_norm_nhwc(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: int, epsilon: float,
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
