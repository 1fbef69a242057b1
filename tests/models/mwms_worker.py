"""One worker of the MultiWorkerMirroredStrategy test (tests/models/test_trainer.py starts two).

    python tests/models/mwms_worker.py DATA_DIR OUT_JSON   (TF_CONFIG in the environment)
"""

import json
import os
import sys
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import tf_keras  # noqa: E402

from models.trainer import train  # noqa: E402
from tfdet.training.distribute import get_strategy, is_chief  # noqa: E402


class InitialWeights(tf_keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [w.numpy().tolist() for w in self.model.weights]


def main(data_dir: str, out: str) -> None:
    strategy = get_strategy("multi_worker")
    fn_args = types.SimpleNamespace(
        train_files=[os.path.join(data_dir, "train-*.tfrecord")], train_steps=4, transform_graph_path=None,
        model_run_dir=os.path.join(os.path.dirname(out), "Trainer", "model_run", "1"),
        custom_config={"model_config": "tiny", "num_classes": 5, "batch_size": 4, "learning_rate": 1e-3,
                       "distribution": "multi_worker"})
    initial = InitialWeights()
    model, record = train(fn_args, strategy, callbacks=[initial])
    with open(out, "w") as handle:
        json.dump({"is_chief": is_chief(strategy), "initial": initial.weights,
                   "final": [w.numpy().tolist() for w in model.weights],
                   "iterations": int(model.optimizer.iterations.numpy()), "record": record}, handle, default=str)


if __name__ == "__main__":
    main(*sys.argv[1:])
