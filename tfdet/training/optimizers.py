"""Optimizer and learning-rate schedule from a zoo entry's ``TRAIN`` recipe."""

from __future__ import annotations

from typing import Any, Mapping

import tf_keras

OPTIMIZERS = ("adam", "adamw", "sgd")


def build_schedule(recipe: Mapping[str, Any], total_steps: int,
                   warmup: bool = True) -> tf_keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    rate = float(recipe.get("learning_rate", 1e-3))
    total_steps = max(1, int(total_steps))
    warmup_steps = int(recipe.get("warmup_steps", min(100, total_steps // 10))) if warmup else 0
    warmup_steps = min(warmup_steps, total_steps - 1)
    return tf_keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else rate, decay_steps=total_steps - warmup_steps,
        warmup_target=rate if warmup_steps else None, warmup_steps=warmup_steps)


def build_optimizer(recipe: Mapping[str, Any], total_steps: int, warmup: bool = True) -> tf_keras.optimizers.Optimizer:
    """The recipe's optimizer with the schedule of :func:`build_schedule` over ``total_steps``.

    Recipe keys (defaults in brackets): ``optimizer`` (adam), ``learning_rate`` (1e-3),
    ``weight_decay`` (0; decoupled for adamw and sgd), ``momentum`` (0.9, sgd), ``warmup_steps``
    (min(100, total_steps // 10)), ``clipnorm`` (10, on the global gradient norm), ``ema_momentum``
    (none: an exponential moving average of the weights, e.g. 0.99, which replaces them when ``fit`` ends).

    Args:
        recipe: the ``TRAIN`` dict of a zoo entry (other keys are ignored).
        total_steps: optimizer steps of the whole run (the cosine reaches 0 there).
        warmup: False skips the warm-up (e.g. when training continues from a trained model).
    """
    name = str(recipe.get("optimizer", "adam")).lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    common = {"learning_rate": build_schedule(recipe, total_steps, warmup),
              "global_clipnorm": float(recipe.get("clipnorm", 10.0))}
    if recipe.get("ema_momentum"):
        common.update(use_ema=True, ema_momentum=float(recipe["ema_momentum"]))
    decay = float(recipe.get("weight_decay", 0.0))
    if name == "sgd":
        return tf_keras.optimizers.SGD(momentum=float(recipe.get("momentum", 0.9)), weight_decay=decay or None,
                                       **common)
    if name == "adamw":
        return tf_keras.optimizers.AdamW(weight_decay=decay, **common)
    return tf_keras.optimizers.Adam(**common)
