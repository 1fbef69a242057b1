"""Small layers shared by the models, one family per file: :class:`StdConv2D` (``std_conv``),
:class:`GroupNormalization` and :class:`GroupNormAct` (``group_norm``; their kernels in ``group_norm_kernels``),
:class:`ConvBN` (``conv_bn``), and :func:`activation` by name."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from tfdet.models.layers.conv_bn import ConvBN
from tfdet.models.layers.group_norm import GroupNormAct, GroupNormalization, group_norm
from tfdet.models.layers.std_conv import StdConv2D

__all__ = ["ConvBN", "GroupNormAct", "GroupNormalization", "StdConv2D", "activation", "group_norm"]


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
