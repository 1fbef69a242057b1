"""Putting a checkpoint's arrays into a backbone: every key and shape checked before anything is assigned.

A backbone that loads weights has ``torch_variables()`` (checkpoint key -> (variable, layout)) in
the naming of the framework its weights come from (torchvision / timm), and a class attribute
``weights_architecture`` naming that family. Layouts: ``"conv"`` (PyTorch OIHW -> HWIO) and
``"vector"``.
"""

from __future__ import annotations

import logging
from typing import Any, List, Mapping, Optional

import numpy as np
import tensorflow as tf

from tfdet.weights.readers import Checkpoint, CheckpointError

log = logging.getLogger(__name__)

# keys a backbone never needs: classifiers and PyTorch's BatchNorm step counters
IGNORED_SUFFIXES = ("num_batches_tracked",)
CLASSIFIER_PREFIXES = ("fc.", "head.fc.", "head.", "classifier.")
# how each family names its first weight: tells which architecture a checkpoint is for
SIGNATURES = {
    "stem.conv.weight": "resnetv2 (timm ResNetV2 / BiT)",
    "conv1.weight": "resnet (torchvision / timm ResNet)",
    "conv1_conv/kernel": "a Keras ResNet (load it through tfdet.weights: it is converted)",
    "backbone.conv1.weight": "an mmdetection detector (set init_cfg prefix='backbone.')",
}


def _guess(state_dict: Mapping[str, Any]) -> str:
    for key, family in SIGNATURES.items():
        if key in state_dict:
            return f"; it looks like {family}"
    return ""


def _to_variable_layout(value: np.ndarray, layout: str) -> np.ndarray:
    if layout == "conv" and value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    return value


def load_state_dict(backbone, state_dict: Mapping[str, np.ndarray], source: str = "the state_dict",
                    prefix: str = "") -> List[str]:
    """Assigns ``state_dict`` to the backbone's variables, all or nothing.

    Args:
        backbone: a built backbone with ``torch_variables()``.
        state_dict: key -> array in PyTorch layouts (conv kernels OIHW).
        source: names the checkpoint in errors.
        prefix: a prefix to strip from the checkpoint keys (e.g.
            ``"backbone."`` for a detector checkpoint); keys without it are ignored.

    Returns:
        The checkpoint keys that were not used (classifiers, stages not built).

    Raises:
        CheckpointError: naming the missing keys, or the key whose shape does not fit;
            no variable is changed then.
    """
    if prefix:
        state_dict = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
    targets = backbone.torch_variables()
    present = [key for key in targets if key in state_dict]
    if not present:
        sample = ", ".join(sorted(state_dict)[:3]) or "(no keys)"
        raise CheckpointError(f"{source}: none of the backbone's {len(targets)} weights are in it (the backbone "
                              f"needs e.g. {next(iter(targets))!r}; the checkpoint has {sample}){_guess(state_dict)}")
    missing = [key for key in targets if key not in state_dict]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(f"{source}: lacks {len(missing)} weight(s) the backbone needs: {shown}; is it the "
                              f"same depth and kind of network?")
    values = {}
    for key, (variable, layout) in targets.items():
        raw = np.asarray(state_dict[key])
        value = _to_variable_layout(raw, layout)
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(f"{source}: {key} has shape {tuple(raw.shape)} but the backbone's {variable.name} "
                                  f"needs {_torch_shape(variable.shape, layout)} (as stored in the checkpoint); "
                                  f"check the depth and widths")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{source}: {key} holds NaN or infinite values; the checkpoint is corrupt")
        values[key] = value
    for key, (variable, _) in targets.items():
        variable.assign(tf.cast(values[key], variable.dtype))
    unused = sorted(key for key in state_dict if key not in targets and not key.endswith(IGNORED_SUFFIXES))
    unexpected = [key for key in unused if not key.startswith(CLASSIFIER_PREFIXES)]
    if unexpected:
        log.info("%s: %d checkpoint weights are not used by this backbone (e.g. %s)", source, len(unexpected),
                 unexpected[:3])
    return unused


def _torch_shape(shape, layout: str) -> tuple:
    shape = tuple(int(v) for v in shape)
    return (shape[3], shape[2], shape[0], shape[1]) if layout == "conv" and len(shape) == 4 else shape


def check_compatible(backbone, checkpoint: Checkpoint) -> None:
    """Refuses weights made for another family or another stride placement (a silent accuracy loss)."""
    metadata = checkpoint.metadata
    family = getattr(backbone, "weights_architecture", None)
    architecture = metadata.get("architecture")
    if architecture and family and architecture != family:
        raise CheckpointError(f"{checkpoint.source}: weights for a {architecture} backbone, but this backbone is "
                              f"{family}; choose the matching backbone name")
    style = metadata.get("style")
    if style and getattr(backbone, "style", style) != style:
        raise CheckpointError(f"{checkpoint.source}: weights of style {style!r} (where the bottleneck's stride "
                              f"sits), but the backbone has style={backbone.style!r}; set style={style!r}")


def build(backbone) -> None:
    """Creates the backbone's variables with a small dummy batch (any multiple of 32 builds them all)."""
    if not backbone.built:
        backbone(tf.zeros([1, 64, 64, 3]))


def init_backbone(backbone, checkpoint: Optional[Checkpoint] = None) -> Optional[Checkpoint]:
    """Builds ``backbone`` and loads its ``init_cfg`` (``dict(name="Pretrained", checkpoint=..., prefix=...)``).

    Returns:
        The loaded :class:`Checkpoint` (None when there is no init_cfg).
    """
    from tfdet.weights.sources import load_checkpoint

    build(backbone)
    config = getattr(backbone, "init_cfg", None)
    if not config:
        return None
    if config.get("name", config.get("type", "Pretrained")) != "Pretrained":
        raise CheckpointError(f"init_cfg {dict(config)}: only name='Pretrained' is supported")
    if "checkpoint" not in config:
        raise CheckpointError(f"init_cfg {dict(config)} has no 'checkpoint'; give a file or a named source such "
                              f"as 'keras:resnet50_imagenet'")
    checkpoint = checkpoint or load_checkpoint(config["checkpoint"])
    check_compatible(backbone, checkpoint)
    load_state_dict(backbone, checkpoint.state_dict, checkpoint.source, prefix=config.get("prefix", ""))
    log.info("backbone weights loaded from %s", checkpoint.source)
    return checkpoint
