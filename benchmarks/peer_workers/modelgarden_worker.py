"""One measurement of TF Model Garden's RetinaNet R50-FPN, run inside its environment (benchmarks/peers.py).

    python modelgarden_worker.py --precision float32|mixed_bfloat16 --mode infer|train

Model Garden's own ``retinanet_resnetfpn_coco`` experiment (ResNet-50 with trainable BatchNorm, FPN P3-P7,
4-conv heads, 9 anchors, focal + Huber loss, L2 weight decay), 512x512, 20 classes, random init, built by its
``RetinaNetTask``. infer: the model called in inference mode in a tf.function (network, box decoding and its
NMS) on one image, median of --repeats after a warm-up. train: the task's own ``train_step`` (forward, losses,
backward, optimizer; what Model Garden's trainer runs) in a tf.function on a fixed batch of 2, --repeats steps
after a warm-up, timed from the first step's start to the last one's end. Model Garden labels anchors in its
input pipeline, so the targets are made once, before the clock, by its ``AnchorLabeler``. Prints one JSON line.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from protocol import BOXES, CLASSES, median_seconds, report, worker_arguments  # noqa: E402


def build(num_classes: int, size: int):
    from official.core import exp_factory
    from official.vision import registry_imports  # noqa: F401  (registers the experiments)
    from official.vision.tasks.retinanet import RetinaNetTask

    config = exp_factory.get_exp_config("retinanet_resnetfpn_coco")
    config.task.model.num_classes = num_classes
    config.task.model.input_size = [size, size, 3]
    config.task.init_checkpoint = None
    task = RetinaNetTask(config.task)
    return task, task.build_model(), config.task.model


def labels_for(model_config, size: int, boxes, classes):
    """Model Garden's training targets for a batch, as its input pipeline makes them (per image, then stacked)."""
    import tensorflow as tf
    from official.vision.ops import anchor

    anchors = anchor.Anchor(min_level=model_config.min_level, max_level=model_config.max_level,
                            num_scales=model_config.anchor.num_scales,
                            aspect_ratios=model_config.anchor.aspect_ratios,
                            anchor_size=model_config.anchor.anchor_size, image_size=(size, size)).multilevel_boxes
    labeler = anchor.AnchorLabeler(match_threshold=0.5, unmatched_threshold=0.5)
    per_image = []
    for image_boxes, image_classes in zip(boxes, classes):
        cls_targets, box_targets, _, cls_weights, box_weights = labeler.label_anchors(
            anchors, tf.constant(image_boxes), tf.constant(image_classes[:, None]))
        per_image.append({"cls_targets": cls_targets, "box_targets": box_targets, "cls_weights": cls_weights,
                          "box_weights": box_weights})
    return tf.nest.map_structure(lambda *parts: tf.stack(parts), *per_image)


def main() -> None:
    args = worker_arguments()
    result = {"system": "TF Model Garden RetinaNet R50-FPN", "precision": args.precision, "mode": args.mode}
    def measure() -> None:
        import numpy as np
        import tensorflow as tf
        import tf_keras

        tf_keras.mixed_precision.set_global_policy(args.precision)
        task, model, model_config = build(args.num_classes, args.size)
        from flops import forward_flops

        rng = np.random.RandomState(0)
        result["versions"] = {"tensorflow": tf.__version__,
                              "tf_models_official": __import__("importlib.metadata").metadata.version(
                                  "tf-models-official")}
        result["forward_gflops"] = round(forward_flops(lambda x: model(x, training=True),
                                                       tf.zeros([1, args.size, args.size, 3])) / 1e9, 2)
        if args.mode == "infer":
            image = tf.constant(rng.uniform(0, 255, (1, args.size, args.size, 3)).astype("float32"))
            shape = tf.constant([[args.size, args.size]], tf.float32)
            detect = tf.function(lambda x: model(x, image_shape=shape, training=False))
            result["seconds_per_image"] = median_seconds(
                detect, image, args.repeats, lambda out: tf.nest.map_structure(lambda t: t.numpy(), out))
        else:
            images = tf.constant(rng.uniform(0, 255, (2, args.size, args.size, 3)).astype("float32"))
            boxes = np.array([BOXES] * 2, "float32")
            classes = np.array([CLASSES] * 2, "int32")
            labels = labels_for(model_config, args.size, boxes, classes)
            optimizer = tf_keras.optimizers.Adam(1e-4)
            step = tf.function(lambda: task.train_step((images, labels), model, optimizer)[task.loss])
            step().numpy()  # warm-up (tracing, the optimizer's slots)
            step().numpy()
            started = time.perf_counter()
            for _ in range(args.repeats):
                loss = step()
            loss.numpy()
            result["images_per_second"] = 2 * args.repeats / (time.perf_counter() - started)
        result["params"] = int(model.count_params())
        # what the training row updates: every weight when nothing is frozen
        result["trainable_params"] = int(sum(np.prod(w.shape) for w in model.trainable_weights))

    report(result, measure)


if __name__ == "__main__":
    main()
