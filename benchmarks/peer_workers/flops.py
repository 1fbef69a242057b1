"""Floating-point operations of a traced TensorFlow function, counted by TensorFlow's own profiler."""

import tensorflow as tf


def forward_flops(function, *inputs) -> int:
    """FLOPs (multiply and add counted apart) of one call of ``function`` on ``inputs`` (graph ops with a
    registered cost: convolutions, matmuls, element-wise ops)."""
    concrete = tf.function(function).get_concrete_function(*inputs)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=concrete.graph, run_meta=tf.compat.v1.RunMetadata(),
                                         cmd="op", options=options)
    return int(info.total_float_ops)
