"""The model zoo: one flat file per detector, found by a scan of this package, and timm's entry points.

Each entry module defines ``MODEL`` (the ``ConfigOneStage`` fields), ``TRAIN`` (its training recipe: batch size,
steps or epochs, optimizer, learning rate, warm-up; see :func:`tfdet.training.optimizers.build_optimizer`) and
``train_steps(pattern, size)`` (its training input pipeline). An entry may name a ``BASE`` entry and write only what
it changes, mmdetection's ``_base_`` way (chosen over timm's builder functions so that an entry stays a flat config
dict, as the seed writes them, and a user's ``.py`` config can start from any entry the same way):

* ``MODEL`` sections merge key by key into the base's, except a section whose ``name`` differs (another head, say):
  that one replaces the base's, so no argument of the old component leaks into the new one;
* ``TRAIN`` merges into the base's, except when its ``optimizer`` differs: a recipe then starts afresh;
* ``train_steps`` is the base's unless the entry defines its own.

::

    import tfdet

    tfdet.list_models("retinanet*")
    model = tfdet.create_model("retinanet_resnet50_fpn_cpu", num_classes=3)   # ImageNet backbone
    model = tfdet.create_model("cpu_small", **{"backbone.width_factor": 0.5, "head.stacked_convs": 1})

A new entry is one file in this folder: nothing else lists it.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import importlib
import pkgutil
from types import ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from tfdet.registry import Registry

ZOO = Registry("model")
ENTRIES = tuple(sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")))
for _name in ENTRIES:
    ZOO.register(_name)(_name)


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """A zoo entry (or a config file) with its ``BASE`` resolved: what training and ``create_model`` read."""

    name: str
    MODEL: Dict[str, Any]
    TRAIN: Dict[str, Any]
    train_steps: Callable[..., list]
    doc: str = ""
    base: Optional[str] = None


def merge_sections(base: Mapping[str, Any], changes: Mapping[str, Any], identity: str = "name") -> Dict[str, Any]:
    """``changes`` merged into a deep copy of ``base``: dicts key by key, anything else replaced; a dict whose
    ``identity`` key differs from the base's replaces it whole."""
    if changes.get(identity, base.get(identity)) != base.get(identity):
        return copy.deepcopy(dict(changes))
    merged = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_sections(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve(module: ModuleType, name: str) -> ZooEntry:
    """The :class:`ZooEntry` of an entry or config module, its ``BASE`` chain merged in."""
    doc = (module.__doc__ or "").strip()
    base_name = getattr(module, "BASE", None)
    if base_name is None:
        missing = [attr for attr in ("MODEL", "TRAIN", "train_steps") if not hasattr(module, attr)]
        if missing:
            raise ValueError(f"{name} lacks {', '.join(missing)} (and names no BASE to take them from); see "
                             f"tfdet/zoo/*.py for the form")
        return ZooEntry(name, copy.deepcopy(module.MODEL), copy.deepcopy(module.TRAIN), module.train_steps, doc)
    base = get_entry(base_name)
    return ZooEntry(name, merge_sections(base.MODEL, getattr(module, "MODEL", {})),
                    merge_sections(base.TRAIN, getattr(module, "TRAIN", {}), identity="optimizer"),
                    getattr(module, "train_steps", base.train_steps), doc, base_name)


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``, its ``BASE`` resolved (a did-you-mean error when unknown)."""
    return resolve(importlib.import_module(f"tfdet.zoo.{ZOO.get(name)}"), name)


def list_models(pattern: str = "*") -> List[str]:
    """The zoo's model names matching a glob ``pattern``, sorted."""
    return [name for name in ENTRIES if fnmatch.fnmatch(name, pattern)]


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
        node[leaf] = merge_sections(node[leaf], value)  # the zoo's rule: another ``name`` replaces the section
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
