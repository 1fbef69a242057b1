"""``seed``: two runs of one config, seed and data give the same loss curve and weights; another seed does not."""

import numpy as np
from learnable_data import write_span  # tests/ is on the path (its conftest)

from tfdet.training.train import train_detector


def train(data: str, work_dir: str, seed: int) -> tuple:
    result = train_detector("tiny", data, work_dir, num_classes=2, steps=20, batch_size=4, seed=seed,
                            export=False, verbose=0)
    return result["history"]["loss"], [w.numpy() for w in result["model"].trainable_weights]


def test_a_seed_repeats_the_loss_curve_and_the_weights(tmp_path):
    write_span(str(tmp_path / "data"), 1, num_train=16, num_eval=0)
    data = str(tmp_path / "data" / "span-1" / "train-*.tfrecord")
    losses, weights = train(data, str(tmp_path / "a"), seed=3)
    again, weights_again = train(data, str(tmp_path / "b"), seed=3)
    other, _ = train(data, str(tmp_path / "c"), seed=4)
    assert len(losses) == 2 and losses == again  # bit for bit
    assert all(np.array_equal(a, b) for a, b in zip(weights, weights_again, strict=True))
    assert other != losses
