"""One measurement of KerasHub's RetinaNet R50-FPN, run inside the KerasHub environment (benchmarks/peers.py).

    python kerashub_worker.py --precision float32|mixed_bfloat16 --mode infer|train

Prints one JSON line: seconds per image (infer: the traced predict step on one 512x512 image, network +
box decoding + NMS, median of --repeats after a warm-up) or images per second (train: fit on a fixed
batch of 2, --repeats steps after a warm-up, timed as in timed_fit.py), or the error when it fails.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from protocol import BOXES, CLASSES, median_seconds, report, worker_arguments  # noqa: E402


def build(num_classes: int):
    import keras_hub

    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block")
    # use_p5=True: P6 from the backbone's last stage (C5), as tfdet's (and mmdetection's) RetinaNet: the same network
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=7, use_p5=True)
    return keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=num_classes,
                                                    bounding_box_format="yxyx")


def main() -> None:
    args = worker_arguments()
    result = {"system": "KerasHub RetinaNet R50-FPN", "precision": args.precision, "mode": args.mode}
    def measure() -> None:
        import keras
        import numpy as np
        import tensorflow as tf
        from timed_fit import images_per_second

        keras.mixed_precision.set_global_policy(args.precision)
        model = build(args.num_classes)
        from flops import forward_flops

        rng = np.random.RandomState(0)
        result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__,
                              "keras_hub": __import__("keras_hub").__version__}
        result["forward_gflops"] = round(forward_flops(lambda x: model(x), tf.zeros([1, args.size, args.size, 3]))
                                         / 1e9, 2)
        if args.mode == "infer":
            image = tf.constant(rng.uniform(0, 255, (1, args.size, args.size, 3)).astype("float32"))
            # the traced predict step (network, box decoding, NMS), as Keras' predict runs it; predict_on_batch
            # passes a 1-tuple that KerasHub 0.32's decode_predictions cannot unpack
            predict = tf.function(model.predict_step)
            result["seconds_per_image"] = median_seconds(
                predict, image, args.repeats, lambda out: tf.nest.map_structure(lambda t: t.numpy(), out))
        else:
            images = rng.uniform(0, 255, (2, args.size, args.size, 3)).astype("float32")
            boxes = np.array([BOXES] * 2, "float32")
            labels = np.array([CLASSES] * 2, "float32")
            model.compile(optimizer=keras.optimizers.Adam(1e-4))
            batches = tf.data.Dataset.from_tensors((images, {"boxes": boxes, "labels": labels})).repeat()
            result["images_per_second"] = images_per_second(model, batches, keras.callbacks.Callback, args.repeats, 2)
        result["params"] = int(model.count_params())
        # what the training row updates: every weight when nothing is frozen
        result["trainable_params"] = int(sum(np.prod(w.shape) for w in model.trainable_weights))

    report(result, measure)


if __name__ == "__main__":
    main()
