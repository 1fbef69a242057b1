"""tfdet/training/train.py: what a training run leaves on disk."""

import os
import tempfile

from learnable_data import write_span  # tests/ is on the path (its conftest)

from tfdet.training import train as training


def test_a_worker_that_is_not_the_chief_deletes_its_own_checkpoints(tmp_path, monkeypatch):
    write_span(str(tmp_path / "data"), 1, num_train=8, num_eval=0)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(training, "is_chief", lambda strategy: False)
    written = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: written.append(real_mkdtemp(**kw)) or written[-1])
    result = training.train_detector("tiny", str(tmp_path / "data" / "span-1" / "train-*.tfrecord"),
                                     str(tmp_path / "work"), num_classes=2, steps=4, batch_size=4, seed=0,
                                     export=False, verbose=0)
    assert result["steps"] == 4
    assert [os.path.basename(path).startswith("tfdet-worker-") for path in written] == [True]
    # Keras made the worker write checkpoints: they went there, and are gone
    assert not [name for name in os.listdir(temp) if name.startswith("tfdet-worker-")]
    assert not (tmp_path / "work" / training.CHECKPOINTS).exists()  # only the chief writes the run's checkpoints
