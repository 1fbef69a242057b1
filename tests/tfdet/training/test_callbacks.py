import os

import numpy as np
import tensorflow as tf
import tf_keras
from conftest import tiny_model_config

from tfdet.dataio.pipeline import pipeline, training_batches
from tfdet.evaluation import eval_dataset
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.training.callbacks import CheckpointResume, CocoEvaluation


def new_model():
    model = OneStageModel(ConfigOneStage(**tiny_model_config(size=64))).build_model()
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    return model


def test_checkpoint_resume_and_coco_evaluation(tmp_path, default_data):
    steps = [dict(name="InputReadRecordFiles", pattern_file=f"{default_data}/train-*.tfrecord", repeat=True),
             dict(name="Resize", height=64, width=64), dict(name="Normalize")]
    batches = training_batches(pipeline(steps), 2)
    evaluation = eval_dataset(f"{default_data}/eval-*.tfrecord", (64, 64), (0.485, 0.456, 0.406),
                              (0.229, 0.224, 0.225)).take(2)
    directory = str(tmp_path / "ckpt")

    first = new_model()
    resume = CheckpointResume(directory)
    assert resume.initial_epoch == 0
    coco = CocoEvaluation(evaluation, label_map={0: "rectangle"}, score_thr=0.0)
    history = first.fit(batches, epochs=2, steps_per_epoch=2, verbose=0, callbacks=[resume, coco]).history
    assert len(history["val_AP"]) == 2 and 0.0 <= history["val_AP50"][-1] <= 1.0
    assert sorted(coco.history) == [1, 2] and coco.history[2]["num_images"] == 8
    optimizer_steps = int(first.optimizer.iterations)

    second = new_model()
    again = CheckpointResume(directory)
    assert again.initial_epoch == 2
    second.fit(batches, epochs=2, initial_epoch=again.initial_epoch, steps_per_epoch=2, verbose=0, callbacks=[again])
    assert again.restored_from.endswith("ckpt-2")
    for restored, saved in zip(second.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(restored, saved)  # restored, and no epoch left to train
    assert int(second.optimizer.iterations) == optimizer_steps
    second.optimizer.build(second.trainable_variables)  # what its first step would do: Adam's moments come
    for restored, saved in zip(second.optimizer.variables(), first.optimizer.variables()):  # from the checkpoint
        np.testing.assert_array_equal(restored, saved)
    third = CheckpointResume(directory)
    new_model().fit(batches, epochs=3, initial_epoch=third.initial_epoch, steps_per_epoch=1, verbose=0,
                    callbacks=[third])
    assert CheckpointResume(directory).initial_epoch == 3
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-3")


def test_a_checkpoint_saved_but_not_recorded_is_resumed_from_and_then_deleted_in_turn(tmp_path):
    x, y = np.array([[1.0, 2.0]] * 4, "float32"), np.array([[0.0]] * 4, "float32")

    def small():
        model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))])
        model.compile(optimizer="sgd", loss="mse")
        return model

    directory, model = str(tmp_path / "ckpt"), small()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[CheckpointResume(directory, max_to_keep=2)])
    # what a process killed between writing its third checkpoint and recording it leaves: the files, not the record
    epoch = tf.Variable(3, dtype=tf.int64)
    tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch).write(f"{directory}/ckpt-3")
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-2")
    resume = CheckpointResume(directory, max_to_keep=2)
    assert resume.initial_epoch == 3
    small().fit(x, y, epochs=5, initial_epoch=resume.initial_epoch, verbose=0, callbacks=[resume])
    assert resume.restored_from.endswith("ckpt-3")
    assert sorted(os.path.basename(p) for p in tf.io.gfile.glob(f"{directory}/ckpt-*.index")) == [
        "ckpt-4.index", "ckpt-5.index"]
    assert [os.path.basename(p) for p in tf.train.get_checkpoint_state(directory).all_model_checkpoint_paths] == [
        "ckpt-4", "ckpt-5"]


def test_with_an_ema_of_the_weights_the_newest_checkpoint_holds_the_average(tmp_path):
    from tfdet.training.optimizers import build_optimizer

    def small():
        model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,), kernel_initializer="ones")])
        model.compile(optimizer=build_optimizer({"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.0,
                                                 "warmup_steps": 0, "ema_momentum": 0.5}, 4), loss="mse")
        return model

    x, y = np.array([[1.0, 2.0]] * 4, "float32"), np.array([[0.0]] * 4, "float32")
    trained, directory = small(), str(tmp_path / "ckpt")
    trained.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[CheckpointResume(directory)])
    restored = small()
    tf.train.Checkpoint(model=restored).restore(tf.train.latest_checkpoint(directory)).expect_partial()
    np.testing.assert_array_equal(restored.get_weights()[0], trained.get_weights()[0])
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-2")
