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


def test_ema_momentum_replaces_the_weights_by_their_moving_average_when_fit_ends():
    """The average computed here from the weights after every step (ema = m * ema + (1 - m) * w, from the initial
    weights) is what the model holds after ``fit``."""

    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,), kernel_initializer="ones")])
    model.compile(optimizer=build_optimizer({"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.0,
                                             "warmup_steps": 0, "ema_momentum": 0.5}, 4), loss="mse")
    x, y = np.array([[1.0, 2.0]] * 4, "float32"), np.array([[0.0]] * 4, "float32")
    trajectory = [model.get_weights()[0].copy()]

    class Record(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            trajectory.append(self.model.get_weights()[0].copy())

    model.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[Record()])
    average = trajectory[0]
    for weights in trajectory[1:]:
        average = 0.5 * average + 0.5 * weights
    np.testing.assert_allclose(model.get_weights()[0], average, rtol=1e-5)
    assert not np.allclose(average, trajectory[-1])  # it is not just the last weights
