import numpy as np
import pytest
import tf_keras

from tfdet.training import build_optimizer, build_schedule


def rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_warmup_then_cosine_to_zero():
    schedule = build_schedule({"learning_rate": 0.1, "warmup_steps": 10}, 110)
    np.testing.assert_allclose(rates(schedule, [0, 5, 10]), [0.0, 0.05, 0.1], atol=1e-7)
    np.testing.assert_allclose(rates(schedule, [60, 110]), [0.05, 0.0], atol=1e-6)  # cosine: half-way is half
    np.testing.assert_allclose(rates(build_schedule({"learning_rate": 0.1}, 110, warmup=False), [0]), [0.1])
    optimizer = build_optimizer({"optimizer": "adam", "learning_rate": 0.1}, 110)
    assert isinstance(optimizer, tf_keras.optimizers.Adam) and optimizer.global_clipnorm == 10.0


def test_sgd_and_adamw_take_their_recipe_fields():
    sgd = build_optimizer({"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.8, "weight_decay": 1e-4,
                           "clipnorm": 35}, 100, warmup=False)
    assert isinstance(sgd, tf_keras.optimizers.SGD) and sgd.momentum == 0.8 and sgd.weight_decay == 1e-4
    assert sgd.global_clipnorm == 35 and float(sgd.learning_rate) == pytest.approx(0.01)
    adamw = build_optimizer({"optimizer": "AdamW", "learning_rate": 1e-3, "weight_decay": 0.05}, 100)
    assert isinstance(adamw, tf_keras.optimizers.AdamW) and adamw.weight_decay == 0.05
    with pytest.raises(ValueError, match=r"optimizer must be one of \('adam', 'adamw', 'sgd'\), got 'lamb'"):
        build_optimizer({"optimizer": "lamb"}, 10)
