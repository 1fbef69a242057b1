"""Reproducible training: one seed for Python, NumPy, TensorFlow and tf.data, and deterministic kernels."""

from __future__ import annotations

from typing import Optional


def seed_everything(seed: Optional[int]) -> None:
    """Seeds every random generator training uses and makes TensorFlow's kernels deterministic.

    With the same seed, config and data, two runs on the same machine give the same losses and weights (the
    shuffles, augmentations and initial weights draw the same numbers; reductions run in a fixed order). ``None``
    changes nothing: runs are then as random as TensorFlow makes them.
    """
    if seed is None:
        return
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(int(seed))  # Python's random, NumPy and TensorFlow's global seed
    tf.config.experimental.enable_op_determinism()
