"""Writes the reference files the weight-converter tests compare against, with the real timm and torchvision.

Run once, in an environment of its own (torch stays out of tfdet's): Python 3.11 and
``pip install torch==2.13.0 torchvision==0.28.0 timm safetensors numpy`` (see ../shared/ENVIRONMENT.md:
the registry's torchvision is a CUDA build whose custom ops do not load beside the CPU torch, hence
the ``register_fake`` guard below). Then, from the repository root::

    /path/to/that/python tests/reference/make_reference_files.py

Each file holds a small, randomly initialised network's ``state_dict`` (keys prefixed ``state_dict.``;
BatchNorm statistics and affines random too, so that a converter that ignores them fails), an input
batch ``input`` (NHWC, float32) and the network's stage outputs ``features.0`` .. ``features.3`` (NHWC).
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import torch

_register_fake = torch.library.register_fake


def _tolerant_register_fake(*args, **kwargs):  # see the module docstring
    decorator = _register_fake(*args, **kwargs)

    def apply(function):
        try:
            return decorator(function)
        except RuntimeError:
            return function

    return apply


torch.library.register_fake = _tolerant_register_fake

import timm  # noqa: E402
import torchvision  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from timm.layers import GroupNormAct, StdConv2d  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.models import resnet as tv_resnet  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def randomise_norms(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            module.weight.data = torch.rand(module.weight.shape, generator=generator) + 0.5
            module.bias.data = torch.randn(module.bias.shape, generator=generator) * 0.1
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean = torch.randn(module.running_mean.shape, generator=generator) * 0.1
            module.running_var = torch.rand(module.running_var.shape, generator=generator) + 0.5


def nhwc(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().permute(0, 2, 3, 1).numpy().astype(np.float32))


def save(name: str, model: nn.Module, images: torch.Tensor, features) -> None:
    tensors = {f"state_dict.{k}": np.ascontiguousarray(v.detach().numpy()) for k, v in model.state_dict().items()
               if v.dtype.is_floating_point}
    tensors["input"] = nhwc(images)
    for i, feature in enumerate(features):
        tensors[f"features.{i}"] = nhwc(feature)
    path = os.path.join(HERE, f"{name}.safetensors")
    save_file(tensors, path, metadata={"made_by": f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                                                   f"timm {timm.__version__}"})
    print(f"{path}: {os.path.getsize(path) / 1e6:.2f} MB")


def torchvision_resnet(block, layers, base: int) -> nn.Module:
    """torchvision's ResNet with narrow stages, built by torchvision's own _make_layer."""
    model = tv_resnet.ResNet(block, layers)
    model.inplanes = base
    model.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(base)
    model.layer1 = model._make_layer(block, base, layers[0])
    model.layer2 = model._make_layer(block, base * 2, layers[1], stride=2)
    model.layer3 = model._make_layer(block, base * 4, layers[2], stride=2)
    model.layer4 = model._make_layer(block, base * 8, layers[3], stride=2)
    model.fc = nn.Linear(base * 8 * block.expansion, 10)
    return model


def torchvision_features(model: nn.Module, images: torch.Tensor):
    x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
    features = []
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = stage(x)
        features.append(x)
    return features


def timm_resnet_features(model: nn.Module, images: torch.Tensor):
    return model.forward_intermediates(images, indices=4, intermediates_only=True)


def timm_resnetv2_features(model: nn.Module, images: torch.Tensor):
    x = model.stem(images)
    features = []
    for stage in model.stages:
        x = stage(x)
        features.append(x)
    features[-1] = model.norm(x)
    return features


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64, generator=generator)
    with torch.no_grad():
        for name, block, layers in (("torchvision_resnet_bottleneck", tv_resnet.Bottleneck, [2, 1, 1, 1]),
                                    ("torchvision_resnet_basic", tv_resnet.BasicBlock, [2, 1, 1, 1])):
            model = torchvision_resnet(block, layers, base=8).eval()
            randomise_norms(model, generator)
            save(name, model, images, torchvision_features(model, images))

        model = timm.models.resnet.ResNet(timm.models.resnet.Bottleneck, [2, 1, 1, 1], channels=(8, 16, 32, 64),
                                          stem_width=8, num_classes=10).eval()
        randomise_norms(model, generator)
        save("timm_resnet_bottleneck", model, images, timm_resnet_features(model, images))

        model = timm.models.resnetv2.ResNetV2(
            [1, 1, 1, 1], width_factor=0.25, stem_type="fixed", num_classes=10,
            conv_layer=partial(StdConv2d, eps=1e-8), norm_layer=partial(GroupNormAct, num_groups=8)).eval()
        randomise_norms(model, generator)
        save("timm_resnetv2_bit", model, images, timm_resnetv2_features(model, images))


if __name__ == "__main__":
    main()
