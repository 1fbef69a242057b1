"""OneStageModel end to end on tiny data: training, targets checks, precision switches, predict."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from conftest import tiny_model_config

from tfdet.dataio.pipeline import pipeline, training_batches
from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel
from tfdet.models.necks.fpn import FPN
from tfdet.registry import NECKS

SIZE = 128


def train_steps(span_dir):
    return [dict(name="InputReadRecordFiles", pattern_file=f"{span_dir}/train-*.tfrecord", shuffle=True, seed=0,
                 repeat=True),
            dict(name="Resize", height=SIZE, width=SIZE), dict(name="Normalize")]


@pytest.fixture(scope="module")
def trained(default_data):
    """A tiny detector trained 60 steps on the default data, the same model in every process (deterministic
    kernels for its training, whatever ran before it in the worker); the loss history of every step."""
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    tf_keras.utils.set_random_seed(0)
    model = OneStageModel(ConfigOneStage(**tiny_model_config(size=SIZE))).build_model()
    model.compile(optimizer=tf_keras.optimizers.Adam(2e-3, global_clipnorm=10.0))
    losses = []
    callback = tf_keras.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: losses.append(logs))
    batches = training_batches(pipeline(train_steps(default_data)), 4)
    model.fit(batches, epochs=3, steps_per_epoch=20, verbose=0, callbacks=[callback])
    if not was:
        tf_config.disable_op_determinism()
    return model, losses


def test_training_reduces_the_loss(trained):
    _, logs = trained
    # the Keras logs are running means over each epoch: compare epoch 1's and epoch 3's
    first, last = logs[19]["loss"], logs[-1]["loss"]
    assert np.isfinite(last) and last < 0.85 * first, (first, last)
    assert {"loss", "loss_cls", "loss_bbox"} <= set(logs[-1])


def test_images_without_boxes_train_without_nan(tiny_config):
    model = OneStageModel(ConfigOneStage(**tiny_config(size=64))).build_model()
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    empty = {"image": tf.random.uniform([2, 64, 64, 3]), "bboxes": tf.zeros([2, 0, 4]),
             "labels": tf.zeros([2, 0], tf.int32), "mask": tf.zeros([2, 0], tf.bool)}
    history = model.fit(tf.data.Dataset.from_tensors(empty).repeat(3), epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["loss_bbox"][0] == 0.0


def batch_with(bboxes, labels):
    return {"image": tf.zeros([1, 64, 64, 3]), "bboxes": tf.constant([bboxes], tf.float32),
            "labels": tf.constant([labels], tf.int32), "mask": tf.ones([1, len(labels)], tf.bool)}


def test_bad_targets_fail_loudly(tiny_config):
    model = OneStageModel(ConfigOneStage(**tiny_config(size=64))).build_model()
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="bboxes look normalised to \\[0, 1\\]"):
        model.train_on_batch(batch_with([[0.1, 0.1, 0.5, 0.5]], [1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="a label id is >= num_classes=5"):
        model.train_on_batch(batch_with([[5.0, 5.0, 30.0, 30.0]], [7]))
    with pytest.raises(ValueError, match="expects batches of dicts with 'image', 'bboxes' \\(pixels\\)"):
        model.train_on_batch(tf.zeros([1, 64, 64, 3]))


def test_config_checks_and_round_trip(tiny_config):
    with pytest.raises(ValueError, match=r"input_size \(100, 100\) must be multiples of 32"):
        ConfigOneStage(**tiny_config(size=100))
    with pytest.raises(ValueError, match="ConfigOneStage.neck must be a dict with a 'name'"):
        ConfigOneStage(backbone={"name": "resnetv2"}, neck={}, head={"name": "AnchorHead"})
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        ConfigOneStage(**tiny_config(), mixed_precision="float16")
    model = OneStageModel(ConfigOneStage(**tiny_config()))
    clone = OneStageModel.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.build_model().count_params() == model.build_model().count_params()


def eval_images(default_data, count=8):
    steps = [dict(name="InputReadRecordFiles", pattern_file=f"{default_data}/eval-*.tfrecord"),
             dict(name="Resize", height=SIZE, width=SIZE), dict(name="Normalize")]
    return next(iter(pipeline(steps, deterministic=True).padded_batch(count)))["image"]


def copy_with(model, **changes):
    other = OneStageModel(ConfigOneStage(**{**model.config.to_dict(), **changes})).build_model()
    other.set_weights(model.get_weights())
    return other


def iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def best_detections(found, i, top=None):
    count = int(found["num_detections"][i]) if top is None else min(top, int(found["num_detections"][i]))
    return found["detection_boxes"][i, :count].numpy(), found["detection_scores"][i, :count].numpy()


def test_bfloat16_keeps_losses_finite_and_detections_close(trained, default_data):
    model, _ = trained
    fast = copy_with(model, mixed_precision="mixed_bfloat16")
    assert fast.backbone.stem_conv.compute_dtype == "bfloat16" and fast.backbone.stem_conv.kernel.dtype == tf.float32
    images = eval_images(default_data)
    # each image's 3 best float32 detections, whatever their scores: how many pass a score bar depends on the
    # training's run-to-run noise, and a test that counts on it fails now and then
    reference, found = model.detect(images, score_thr=0.0), fast.detect(images, score_thr=0.0)
    twins = []
    for i in range(images.shape[0]):
        ref_boxes, ref_scores = best_detections(reference, i, top=3)
        boxes, scores = best_detections(found, i)
        ref_classes = reference["detection_classes"][i, :len(ref_scores)].numpy()
        classes = found["detection_classes"][i, :len(scores)].numpy()
        for box, score, cls in zip(ref_boxes, ref_scores, ref_classes):
            # a bf16 twin: same class, IoU > 0.8, score within 0.06
            candidates = [(iou(box, b), s) for b, s, c in zip(boxes, scores, classes) if c == cls]
            twins.append(any(overlap > 0.8 and abs(s - score) < 0.06 for overlap, s in candidates))
    print(f"bf16 twins: {sum(twins)} of {len(twins)}")
    assert len(twins) == 3 * images.shape[0] and np.mean(twins) >= 0.9, twins
    fast.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    batch = next(iter(training_batches(pipeline(train_steps(default_data)), 4)))
    losses = fast.train_on_batch(batch, return_dict=True)
    assert all(np.isfinite(v) for v in losses.values())


@pytest.fixture
def kernels_free():
    """Deterministic kernels off for the test (a seeded training earlier in this process turns them on), as
    they were afterwards."""
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was:
        tf_config.enable_op_determinism()


def test_xla_gives_the_same_detections_and_trains(trained, default_data, kernels_free):
    model, _ = trained
    compiled = copy_with(model, jit_compile=True)
    images = eval_images(default_data, 4)
    plain = model.detect(images)
    xla = compiled.detect(images)  # the network runs XLA-compiled, NMS outside
    np.testing.assert_array_equal(xla["num_detections"].numpy(), plain["num_detections"].numpy())
    np.testing.assert_allclose(xla["detection_scores"].numpy(), plain["detection_scores"].numpy(), atol=1e-4)
    compiled.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    batch = next(iter(training_batches(pipeline(train_steps(default_data)), 2)))
    assert np.isfinite(compiled.train_on_batch(batch, return_dict=True)["loss"])
    from tensorflow.python.framework import config as tf_config

    tf_config.enable_op_determinism()  # as a seeded run leaves them: a clear error, not XLA's crash mid-fit
    with pytest.raises(ValueError, match=r"^XLA \(jit_compile\) cannot train with TensorFlow's deterministic kernels"):
        copy_with(model, jit_compile=True).compile(optimizer=tf_keras.optimizers.Adam(1e-3))


def test_xla_optimizer_updates_like_the_plain_one(trained, default_data):
    model, _ = trained
    batch = next(iter(training_batches(pipeline(train_steps(default_data)), 2)))
    results = []
    for jit in (False, True):
        copy = copy_with(model, jit_optimizer=jit)
        copy.compile(optimizer=tf_keras.optimizers.AdamW(1e-3, weight_decay=1e-2))
        assert copy.optimizer.jit_compile is jit  # tf_keras alone turns it off on a CPU
        for _ in range(2):
            copy.train_on_batch(batch)
        results.append(copy.get_weights())
    changed = [not np.allclose(a, b) for a, b in zip(model.get_weights(), results[0])]
    assert sum(changed) > len(changed) // 2  # the step moved the weights
    for plain, xla in zip(*results):
        np.testing.assert_allclose(xla, plain, rtol=1e-4, atol=1e-6)


def test_predict_images_returns_pixels_of_the_original_image(trained, tmp_path):
    model, _ = trained
    from PIL import Image

    rng = np.random.RandomState(0)
    array = (rng.rand(96, 200, 3) * 255).astype(np.uint8)
    path = str(tmp_path / "x.png")
    Image.fromarray(array).save(path)
    from_file, from_array = model.predict_images([path, array], score_thr=0.0)
    np.testing.assert_allclose(from_file["boxes"], from_array["boxes"], atol=1e-3)
    # a second method: letterbox by hand (200 -> 128 wide, so 96 -> 61.44 -> 61 rows) and rescale
    image = tf.image.resize(tf.image.convert_image_dtype(array, tf.float32), [61, 128])
    image = (tf.pad(image, [[0, 67], [0, 0], [0, 0]]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    found = model.detect(image[None], score_thr=0.0)
    count = int(found["num_detections"][0])
    boxes = found["detection_boxes"][0, :count].numpy() * [128 / 61 * 96, 200, 128 / 61 * 96, 200]
    # the top 20 (the tail holds near-equal scores whose order eager and graph execution may swap)
    np.testing.assert_allclose(from_array["boxes"][:20], np.minimum(boxes, [96, 200, 96, 200])[:20], atol=0.05)
    assert from_array["classes"].dtype == np.int32 and np.all(np.diff(from_array["scores"]) <= 0)


def test_prior_strides_come_from_the_backbone_and_neck_when_left_out():
    config = tiny_model_config()
    del config["head"]["anchor_config"]["strides"]
    config["neck"].update(start_level=2, num_nb_outs=3)        # C4 (stride 16) first, one extra level
    model = OneStageModel(ConfigOneStage(**config)).build_model()
    assert model.config.head["anchor_config"]["strides"] == [16, 32, 64]
    assert model.head.anchor_generator.strides == [16, 32, 64]
    assert "strides" not in config["head"]["anchor_config"]           # the caller's dict is untouched

    fcos = tiny_model_config()
    fcos["head"] = dict(name="FCOSHead", num_classes=5, stacked_convs=1, feat_channels=32,
                        regress_ranges=[(-1, 64), (64, 128), (128, 256), (256, 1e8)])
    model = OneStageModel(ConfigOneStage(**fcos))
    assert model.head.strides == [8, 16, 32, 64]

    stated = tiny_model_config()
    stated["head"]["anchor_config"]["strides"] = [8, 16, 32, 128]     # a config that states them keeps them
    assert OneStageModel(ConfigOneStage(**stated)).head.anchor_generator.strides == [8, 16, 32, 128]


class _GatedFPN(FPN):
    """An FPN with a Python ``if`` on a tensor: graph code that only AutoGraph can trace."""

    def call(self, inputs):
        outputs = super().call(inputs)
        if tf.reduce_max(outputs[0]) > 1e9:
            outputs = [tf.zeros_like(level) for level in outputs]
        return outputs


@NECKS.register("test_gated_fpn_as_written")
class _GatedFPNAsWritten(_GatedFPN):
    pass


@NECKS.register("test_gated_fpn_in_tf_function")
class _GatedFPNInTfFunction(_GatedFPN):
    call = tf.function(_GatedFPN.call)


def test_parts_are_traced_as_written_and_tf_function_converts_one_on_request(tiny_config):
    """The detector traces its parts without AutoGraph (faster tracing); a part whose code branches on a
    tensor in Python gets TensorFlow's error saying so, and trains once that method is a tf.function."""
    batch = batch_with([[5.0, 5.0, 30.0, 30.0]], [1])
    for neck, works in (("test_gated_fpn_as_written", False), ("test_gated_fpn_in_tf_function", True)):
        config = tiny_config(size=64)
        config["neck"]["name"] = neck
        model = OneStageModel(ConfigOneStage(**config)).build_model()  # eager: a Python `if` works
        model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
        if works:
            assert np.isfinite(model.train_on_batch(batch, return_dict=True)["loss"])
        else:
            fix = "decorate this function with @tf.function"
            with pytest.raises(tf.errors.OperatorNotAllowedInGraphError, match=fix):
                model.train_on_batch(batch)
