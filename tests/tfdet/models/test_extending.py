"""docs/extending.md's promise: a new head is one file -- its class and its registration -- and then trains, exports
and serves through the zoo like the built-in ones."""

import os
import sys
import textwrap

import numpy as np
import tensorflow as tf
import tf_keras

import tfdet
from tfdet.dataio.pipeline import pipeline, training_batches
from tfdet.export import export_saved_model
from tfdet.registry import HEADS
from tfdet.zoo import get_entry

TOY_HEAD = '''
"""A RetinaNet head whose classifier and box regressor share one conv tower (half the tower convs)."""

from tfdet.models.heads.anchor_head import AnchorHead
from tfdet.registry import HEADS


@HEADS.register("SharedTowerHead")
class SharedTowerHead(AnchorHead):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reg_convs, self.reg_norms = [], []  # one tower: the classifier's

    def call(self, features):
        towers = [self.run_tower(feature, self.cls_convs, self.cls_norms) for feature in features]
        return [self.retina_cls(x) for x in towers], [self.retina_reg(x) for x in towers]
'''


def test_a_head_in_one_file_trains_exports_and_serves_through_the_zoo(tmp_path, default_data):
    (tmp_path / "toy_head.py").write_text(textwrap.dedent(TOY_HEAD))
    sys.path.insert(0, str(tmp_path))
    try:
        import toy_head  # noqa: F401  (its decorator registers the head: nothing else lists it)
    finally:
        sys.path.remove(str(tmp_path))
    assert "SharedTowerHead" in HEADS

    # another head by name replaces the entry's head section: it keeps what it is given (here tiny's anchors etc.)
    head = dict(get_entry("tiny").MODEL["head"], name="SharedTowerHead")
    model = tfdet.create_model("tiny", num_classes=5, head=head)
    assert type(model.head).__name__ == "SharedTowerHead" and not model.head.reg_convs
    assert model.get_config()["config"]["head"]["name"] == "SharedTowerHead"
    tiny = tfdet.create_model("tiny", num_classes=5)
    assert model.count_params() < tiny.count_params()  # one tower fewer
    steps = get_entry("tiny").train_steps(f"{default_data}/train-*.tfrecord")
    batches = training_batches(pipeline(steps).repeat(), 4)
    model.compile(optimizer=tf_keras.optimizers.Adam(2e-3))
    losses = model.fit(batches, steps_per_epoch=15, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]

    exported = export_saved_model(model, str(tmp_path / "served"))
    record = next(iter(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(f"{default_data}/eval-*.tfrecord")))))
    served = tf.saved_model.load(exported).signatures["serving_default"](examples=tf.reshape(record, [1]))
    in_memory = model.detect_function()(next(iter(pipeline([
        dict(name="InputReadRecordFiles", pattern_file=f"{default_data}/eval-*.tfrecord"),
        dict(name="Resize", height=128, width=128), dict(name="Normalize")]).batch(1)))["image"])
    assert int(served["num_detections"][0]) == int(in_memory["num_detections"][0])
    assert os.path.exists(os.path.join(exported, "tfdet_model.json"))
