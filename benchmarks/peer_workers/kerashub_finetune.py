"""KerasHub's RetinaNet R50-FPN fine-tuned on the tree crowns with its own recipe, inside the KerasHub environment
(benchmarks/trees.py, stage kerashub, starts it and evaluates its detections with tfdet's pycocotools code).

    python kerashub_finetune.py --data DIR --steps 700 --batch-size 4 --seed 0 --out DIR

``--data`` holds what trees.py hands over: ``data.json`` (the train, val and test images as PNG files, boxes in
pixels y-first, labels; val and test in the order of tfdet's evaluation) and ``resnet50.npz``: the Keras ImageNet
ResNet-50 that tfdet's ``keras:resnet50_imagenet`` gives, as tfdet's converted torchvision-style arrays (RGB stem,
conv biases folded into the BatchNorm means, epsilon 1e-5; the input is 0-255 RGB minus the ImageNet mean).

KerasHub 0.32's ResNetBackbone is ResNet v1.5 (the stride on the 3x3 conv); those weights are ResNet v1 (the stride
on the first 1x1), so the worker builds KerasHub's bottleneck with the stride on the 1x1 -- one of its two changes to
KerasHub -- and writes the backbone's C2-C5 on a fixed input (``features.npz``) for comparison with
tfdet's converted backbone, itself checked against keras.applications.

Training is KerasHub's own recipe with the paper's head initialisation (``paper_head_init``; ``--keras-hub-init``
keeps KerasHub's): ``compile()``'s defaults (Adam 5e-5; Huber box and focal class losses, summed),
every layer trainable, BatchNorm in training mode, mixed bfloat16; images letterboxed to 512 and flipped
horizontally and vertically at random (tfdet's flips); ``--batch-size`` images a step for ``--steps`` steps, so that
both systems see the same number of images. Evaluation predicts the val and test images in float32 (KerasHub's
predict fails under mixed_bfloat16) with score 0.05 and 100 per image (tfdet's test settings: KerasHub's default
score threshold, 0.5, would cut recall), once per NMS IoU of ``NMS_IOUS`` -- its test-time choice, which
trees.py makes on the val split -- and writes the boxes in each image's pixels to
``detections_<split>_iou<IoU>.json``.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from protocol import report  # noqa: E402

SIZE = 512
MEAN_RGB = (123.68, 116.779, 103.939)  # Keras' caffe preprocessing, in RGB order (the stem was flipped to RGB)
FEATURE_INPUT_SEED = 0
NMS_IOUS = (0.4, 0.5, 0.6)


def v1_bottleneck_block(x, filters, kernel_size=3, stride=1, conv_shortcut=False, use_pre_activation=False,
                        data_format=None, dtype=None, name=None):
    """KerasHub's bottleneck block with the stride on the first 1x1 conv (ResNet v1), KerasHub's layer names."""
    from keras import layers

    bn = dict(axis=-1, epsilon=1e-5, momentum=0.9, dtype=dtype)
    shortcut = x
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, use_bias=False, dtype=dtype, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(**bn, name=f"{name}_0_bn")(shortcut)
    x = layers.Conv2D(filters, 1, strides=stride, use_bias=False, dtype=dtype, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(**bn, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", dtype=dtype, name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, dtype=dtype, name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(**bn, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", dtype=dtype, name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, use_bias=False, dtype=dtype, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(**bn, name=f"{name}_3_bn")(x)
    x = layers.Add(dtype=dtype, name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", dtype=dtype, name=f"{name}_out")(x)


def keras_hub_name(torch_name: str) -> str:
    """The KerasHub layer of a torchvision-style ResNet module (``layer2.0.conv1`` -> ``stack1_block0_1_conv``)."""
    parts = torch_name.split(".")
    if parts[0] in ("conv1", "bn1"):
        return "conv1_conv" if parts[0] == "conv1" else "conv1_bn"
    stack, block, part = int(parts[0][len("layer"):]) - 1, int(parts[1]), parts[2]
    if part == "downsample":
        return f"stack{stack}_block{block}_0_{'conv' if parts[3] == '0' else 'bn'}"
    return f"stack{stack}_block{block}_{part[-1]}_{'conv' if part.startswith('conv') else 'bn'}"


def load_resnet50(encoder, arrays) -> int:
    """Assigns tfdet's converted ResNet-50 arrays to KerasHub's encoder; returns the layers filled. Every encoder
    layer with weights must be filled, every array used."""
    modules = {}
    for key, value in arrays.items():
        module, leaf = key.rsplit(".", 1)
        if module.startswith("fc"):
            continue
        modules.setdefault(module, {})[leaf] = value
    filled = set()
    for module, values in modules.items():
        layer = encoder.get_layer(keras_hub_name(module))
        if "running_mean" in values:
            layer.set_weights([values["weight"], values["bias"], values["running_mean"], values["running_var"]])
        else:
            layer.set_weights([values["weight"].transpose(2, 3, 1, 0)])  # OIHW -> HWIO
        filled.add(layer.name)
    missing = [layer.name for layer in encoder.layers if layer.weights and layer.name not in filled]
    if missing:
        raise ValueError(f"encoder layers the weights do not cover: {missing[:5]}")
    return len(filled)


def build(num_classes: int, weights=None, score_thr: float = 0.05, head_init_seed=None, nms_iou: float = 0.5):
    import keras_hub
    from keras_hub.layers import NonMaxSuppression
    from keras_hub.src.models.resnet import resnet_backbone

    resnet_backbone.apply_bottleneck_block = v1_bottleneck_block
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block")
    filled = load_resnet50(encoder, weights) if weights is not None else 0
    # use_p5=False (P6 from the FPN's P5): the arrangement its tree-crown figure was measured with
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=7, use_p5=False)
    decoder = NonMaxSuppression(bounding_box_format="yxyx", from_logits=True, iou_threshold=nms_iou,
                                confidence_threshold=score_thr, max_detections=100)
    model = keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=num_classes,
                                                     bounding_box_format="yxyx", prediction_decoder=decoder)
    if head_init_seed is not None:
        paper_head_init(model, head_init_seed)
    return model, encoder, filled


def paper_head_init(model, seed: int, prior: float = 0.01) -> None:
    """Initialises KerasHub's two heads as the RetinaNet paper (and tfdet) do: conv kernels N(0, 0.01), biases 0, the
    class head's last bias -log((1 - prior) / prior).

    KerasHub 0.32 draws the head kernels from N(0, 0.05) and gives the prior bias to the box head instead of the
    class head. On an ImageNet backbone that starts the box deltas at a spread of about 34 (log-sizes around -4.6:
    boxes 1% of their anchor) and the class logits far from the prior; its presets start from trained detectors,
    where this does not show. This is the worker's one change to KerasHub's recipe besides the v1 bottleneck.
    """
    import numpy as np

    generator = np.random.RandomState(seed)
    for head in (model.box_head, model.classification_head):
        for conv in [*head.conv_layers, head.prediction_layer]:
            conv.kernel.assign(generator.normal(0.0, 0.01, conv.kernel.shape).astype("float32"))
            conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    bias = model.classification_head.prediction_layer.bias
    bias.assign(np.full(bias.shape, -np.log((1 - prior) / prior), "float32"))


def letterbox(tf, path: str):
    """(image [SIZE, SIZE, 3] caffe-normalised, scale): resized to fit, zero-padded bottom / right (as tfdet's Resize
    pads before its Normalize)."""
    image = tf.cast(tf.io.decode_png(tf.io.read_file(path), channels=3), tf.float32)
    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    scale = SIZE / tf.maximum(height, width)
    size = tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32)
    image = tf.image.resize(image, size)
    image = tf.image.pad_to_bounding_box(image, 0, 0, SIZE, SIZE)
    return image - tf.constant(MEAN_RGB), scale


def train_dataset(tf, images, batch_size: int, seed: int):
    max_boxes = max(len(image["boxes"]) for image in images)
    paths = [image["path"] for image in images]
    boxes = [image["boxes"] + [[-1.0] * 4] * (max_boxes - len(image["boxes"])) for image in images]
    labels = [image["labels"] + [-1] * (max_boxes - len(image["labels"])) for image in images]

    def load(path, box, label):
        image, scale = letterbox(tf, path)
        real = label >= 0
        box = tf.where(real[:, None], box * scale, -1.0)
        if_flip = tf.random.uniform([2], seed=seed) < 0.5
        ymin, xmin, ymax, xmax = tf.unstack(box, axis=-1)
        # flips act on the letterboxed picture: mirror within the padded square, as tfdet flips its padded input
        image = tf.where(if_flip[0], image[:, ::-1], image)
        xmin, xmax = tf.where(if_flip[0] & real, SIZE - xmax, xmin), tf.where(if_flip[0] & real, SIZE - xmin, xmax)
        image = tf.where(if_flip[1], image[::-1], image)
        ymin, ymax = tf.where(if_flip[1] & real, SIZE - ymax, ymin), tf.where(if_flip[1] & real, SIZE - ymin, ymax)
        return image, {"boxes": tf.stack([ymin, xmin, ymax, xmax], -1), "labels": tf.cast(label, tf.float32)}

    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(boxes, tf.float32), tf.constant(labels)))
    return (dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()
            .map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True).prefetch(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras-hub-init", action="store_true", help="keep KerasHub 0.32's head initialisation")
    args = parser.parse_args()
    result = {"system": "KerasHub 0.32 RetinaNet R50-FPN", "seed": args.seed, "steps": args.steps,
              "batch_size": args.batch_size}

    def measure() -> None:
        import keras
        import numpy as np
        import tensorflow as tf

        keras.utils.set_random_seed(args.seed)
        tf.config.experimental.enable_op_determinism()
        with open(os.path.join(args.data, "data.json")) as handle:
            data = json.load(handle)
        with np.load(os.path.join(args.data, "resnet50.npz"), allow_pickle=False) as arrays:
            weights = {key: arrays[key] for key in arrays.files}
        os.makedirs(args.out, exist_ok=True)
        result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__,
                              "keras_hub": __import__("keras_hub").__version__}

        model, encoder, result["backbone_layers_loaded"] = build(data["num_classes"], weights)
        probe = np.random.RandomState(FEATURE_INPUT_SEED).uniform(0, 255, (1, 256, 256, 3)).astype("float32")
        features = keras.Model(encoder.inputs, [encoder.pyramid_outputs[f"P{level}"] for level in (2, 3, 4, 5)])(
            probe - np.array(MEAN_RGB, "float32"))
        np.savez(os.path.join(args.out, "features.npz"), **{f"C{level}": np.asarray(value) for level, value
                                                            in zip((2, 3, 4, 5), features)})

        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        result["head_init"] = "KerasHub 0.32's" if args.keras_hub_init else "the RetinaNet paper's"
        trained, _, _ = build(data["num_classes"], weights, head_init_seed=None if args.keras_hub_init else args.seed)
        trained.compile()  # KerasHub's own defaults
        epochs = 10
        started = time.perf_counter()
        history = trained.fit(train_dataset(tf, data["train"], args.batch_size, args.seed), epochs=epochs,
                              steps_per_epoch=args.steps // epochs, verbose=2)
        result["train_seconds"] = round(time.perf_counter() - started, 1)
        result["loss_per_epoch"] = [round(float(v), 4) for v in history.history["loss"]]

        keras.mixed_precision.set_global_policy("float32")
        for iou in NMS_IOUS:
            model, _, _ = build(data["num_classes"], nms_iou=iou)
            model.set_weights(trained.get_weights())
            predict = tf.function(model.predict_step)  # predict_on_batch's 1-tuple breaks KerasHub 0.32's decoder
            for split in ("val", "test"):
                detections = []
                for index, image in enumerate(data[split]):
                    pixels, scale = letterbox(tf, image["path"])
                    out = predict(pixels[None])
                    count = int(out["num_detections"][0])
                    # letterboxed pixels -> the image's own, clipped to it (as tfdet's export clips)
                    boxes = np.asarray(out["boxes"][0, :count]) / float(scale)
                    boxes = np.clip(boxes, 0, [image["height"], image["width"]] * 2)
                    detections.append({"image_id": index, "boxes": boxes.tolist(),
                                       "scores": np.asarray(out["confidence"][0, :count]).tolist(),
                                       "classes": np.asarray(out["labels"][0, :count]).astype(int).tolist()})
                with open(os.path.join(args.out, f"detections_{split}_iou{iou}.json"), "w") as handle:
                    json.dump(detections, handle)
        result["params"] = int(trained.count_params())

    report(result, measure)


if __name__ == "__main__":
    main()
