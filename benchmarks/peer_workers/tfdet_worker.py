"""One measurement of a tfdet detector under the peers protocol (benchmarks/peers.py).

    python tfdet_worker.py --model retinanet_resnet50_fpn --precision float32|mixed_bfloat16 --mode infer|train

Random init, 512x512, 20 classes. infer: the traced detect function (network + box decoding + NMS) on one
image, median of --repeats after a warm-up; train: fit on a fixed batch of 2, --repeats steps after a
warm-up (timed as in timed_fit.py). Prints one JSON line (also the network's forward FLOPs, counted by
TensorFlow's profiler).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.peer_workers.protocol import BOXES, CLASSES, median_seconds, report, worker_arguments  # noqa: E402


def main() -> None:
    args = worker_arguments()
    result = {"system": f"tfdet {args.model}", "precision": args.precision, "mode": args.mode}
    def measure() -> None:
        import ast

        import numpy as np
        import tensorflow as tf
        import tf_keras

        import tfdet
        from benchmarks.peer_workers.flops import forward_flops
        from benchmarks.peer_workers.timed_fit import images_per_second

        overrides = {}
        for item in args.set:
            key, _, value = item.partition("=")
            overrides[key] = ast.literal_eval(value)
        model = tfdet.create_model(args.model, num_classes=args.num_classes, pretrained=False,
                                   mixed_precision=args.precision, **overrides)
        rng = np.random.RandomState(0)
        result["versions"] = {"tensorflow": tf.__version__, "tfdet": tfdet.__version__}
        result["forward_gflops"] = round(forward_flops(lambda x: model(x), tf.zeros([1, args.size, args.size, 3]))
                                         / 1e9, 2)
        if args.mode == "infer":
            image = tf.constant(rng.normal(size=(1, args.size, args.size, 3)).astype("float32"))
            detect = model.detect_function()
            result["seconds_per_image"] = median_seconds(detect, image, args.repeats,
                                                         lambda out: out["num_detections"].numpy())
        else:
            images = rng.normal(size=(2, args.size, args.size, 3)).astype("float32")
            boxes = np.array([BOXES] * 2, "float32")
            batch = {"image": images, "bboxes": boxes, "labels": np.array([CLASSES] * 2, "int32"),
                     "mask": np.ones((2, 3), bool)}
            model.compile(optimizer=tf_keras.optimizers.Adam(1e-4))
            batches = tf.data.Dataset.from_tensors(batch).repeat()
            result["images_per_second"] = images_per_second(model, batches, tf_keras.callbacks.Callback,
                                                            args.repeats, 2)
        result["params"] = int(model.count_params())
        # what the training row updates: every weight when nothing is frozen
        result["trainable_params"] = int(sum(np.prod(w.shape) for w in model.trainable_weights))

    report(result, measure)


if __name__ == "__main__":
    main()
