"""The model zoo: one flat file per detector, and timm's entry points.

Each entry module defines ``MODEL`` (the ``ConfigOneStage`` fields), ``TRAIN`` (its training recipe:
batch size, steps or epochs, optimizer, learning rate, warm-up; see
:func:`tfdet.training.optimizers.build_optimizer`) and ``train_steps(pattern)`` (its training input
pipeline). ::

    import tfdet

    tfdet.list_models("retinanet*")
    model = tfdet.create_model("retinanet_resnet50_fpn_cpu", num_classes=3)   # ImageNet backbone
    model = tfdet.create_model("cpu_small", **{"backbone.width_factor": 0.5, "head.stacked_convs": 1})
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
from types import ModuleType
from typing import Any, Dict, List, Optional, Union

from tfdet.registry import Registry

ENTRIES = ("retinanet_resnetv2_50_fpn_512", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_cpu",
           "atss_resnet50_fpn_cpu", "cpu_small", "fcos_cpu_small", "atss_cpu_small", "tiny")
ZOO = Registry("model")
for _name in ENTRIES:
    ZOO.register(_name)(_name)


def get_entry(name: str) -> ModuleType:
    """The zoo module called ``name`` (a did-you-mean error when unknown)."""
    return importlib.import_module(f"tfdet.zoo.{ZOO.get(name)}")


def list_models(pattern: str = "*") -> List[str]:
    """The zoo's model names matching a glob ``pattern``, sorted."""
    return sorted(name for name in ENTRIES if fnmatch.fnmatch(name, pattern))


def _set(config: Dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for i, key in enumerate(parents):
        if not isinstance(node.get(key), dict):
            where = ".".join(parents[:i + 1])
            raise KeyError(f"override {dotted!r}: the config has no section {where!r}; sections: "
                           f"{', '.join(k for k, v in node.items() if isinstance(v, dict))}")
        node = node[key]
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        for key, inner in value.items():
            _set(node[leaf], key, inner)
    else:
        node[leaf] = value


def configure(model: Dict[str, Any], name: str = "the config", num_classes: Optional[int] = None,
              pretrained: Union[bool, str, None] = None, **overrides: Any) -> Dict[str, Any]:
    """A copy of a ``MODEL`` dict with overrides, ``num_classes`` and ``pretrained`` applied (see
    :func:`create_model`)."""
    config = copy.deepcopy(dict(model))
    for key, value in overrides.items():
        _set(config, key, value)
    if num_classes is not None:
        config["head"]["num_classes"] = int(num_classes)
    backbone = config["backbone"]
    if pretrained is False:
        backbone.pop("init_cfg", None)
    elif isinstance(pretrained, str):
        backbone["init_cfg"] = dict(name="Pretrained", checkpoint=pretrained)
    elif pretrained is True and not backbone.get("init_cfg"):
        with_weights = [n for n in ENTRIES if get_entry(n).MODEL["backbone"].get("init_cfg")]
        raise ValueError(f"zoo model {name!r} has no pretrained weights; pass pretrained='<checkpoint>' or choose "
                         f"one of {', '.join(with_weights)}")
    return config


def model_config(name: str, num_classes: Optional[int] = None, pretrained: Union[bool, str, None] = None,
                 **overrides: Any) -> Dict[str, Any]:
    """The entry's ``MODEL`` dict (a copy) with overrides applied; see :func:`create_model`."""
    return configure(get_entry(name).MODEL, name, num_classes, pretrained, **overrides)


def create_model(name: str, num_classes: Optional[int] = None, pretrained: Union[bool, str, None] = None,
                 **overrides: Any):
    """Builds a zoo detector, timm-style.

    Args:
        name: a zoo name (:func:`list_models`).
        num_classes: sets ``head.num_classes``.
        pretrained: None: as the entry says (entries with an ImageNet backbone load it); False: no
            pretrained weights; True: the entry's (an error if it has none); a string: that checkpoint
            for the backbone (a file or a named source, see :mod:`tfdet.weights`).
        **overrides: config changes by dotted key (``**{"backbone.frozen_stages": 2}``) or by section
            (``head=dict(stacked_convs=2)``, merged into the entry's section); top-level fields such as
            ``mixed_precision="mixed_bfloat16"`` too.

    Returns:
        A built :class:`~tfdet.models.architectures.one_stage.OneStageModel`.
    """
    from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel

    config = model_config(name, num_classes, pretrained, **overrides)
    return OneStageModel(ConfigOneStage(**config)).build_model()


def train_recipe(name: str) -> Dict[str, Any]:
    """A copy of the entry's ``TRAIN`` recipe."""
    return copy.deepcopy(get_entry(name).TRAIN)
