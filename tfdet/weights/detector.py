"""Restoring a trained tfdet detector into a model, also when the class count changed.

Fine-tuning a detector on data with other classes needs everything but the class logits: the
backbone, the neck and the head's towers and box regressor carry over, the classification
predictor starts afresh (torchvision's most asked-for fine-tuning fix). A head names its
class-dependent layers in ``class_dependent_layers``; a checkpoint whose shapes differ there is
restored without them, and any other mismatch is an error naming the layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from tfdet.weights.readers import CheckpointError


@dataclass
class RestoreReport:
    """What :func:`restore_detector` did."""

    checkpoint: str
    reinitialised: List[str] = field(default_factory=list)


def newest_checkpoint(directory: str) -> Optional[str]:
    """The prefix of the newest readable checkpoint in ``directory`` (None without one).

    TensorFlow records a save in the folder's ``checkpoint`` file only after the checkpoint is written: a process
    killed in between leaves a whole checkpoint that ``tf.train.latest_checkpoint`` does not see, and a resumed run
    would repeat that epoch (or, for the first one, start over). Numbered prefixes newer than the recorded one are
    taken when TensorFlow can read them.
    """
    recorded = tf.train.latest_checkpoint(directory)
    prefixes = {index[: -len(".index")] for index in tf.io.gfile.glob(os.path.join(directory, "*-*.index"))}
    prefixes.update([recorded] if recorded else [])

    def number(prefix: str) -> int:
        suffix = prefix.rsplit("-", 1)[-1]
        return int(suffix) if suffix.isdigit() else -1

    for prefix in sorted(prefixes, key=number, reverse=True):
        if prefix == recorded:
            return prefix
        try:
            tf.train.load_checkpoint(prefix)  # reads the whole index: one cut short by a kill fails here
        except (tf.errors.OpError, ValueError):
            continue
        return prefix
    return None


def checkpoint_prefix(path: str) -> str:
    """The variables checkpoint of a SavedModel directory, or ``path`` itself (a checkpoint prefix)."""
    saved = os.path.join(path, "variables", "variables")
    if tf.io.gfile.exists(saved + ".index"):
        return saved
    if tf.io.gfile.exists(path + ".index"):
        return path
    latest = newest_checkpoint(path) if tf.io.gfile.isdir(path) else None
    if latest:
        return latest
    raise CheckpointError(f"{path}: neither a SavedModel directory, a checkpoint prefix nor a folder of checkpoints")


class _Graph:
    """The object graph stored in a checkpoint, to look up a variable's shape by its attribute path."""

    def __init__(self, prefix: str) -> None:
        self.reader = tf.train.load_checkpoint(prefix)
        self.shapes = self.reader.get_variable_to_shape_map()
        self.graph = trackable_object_graph_pb2.TrackableObjectGraph()
        self.graph.ParseFromString(self.reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))

    def node(self, path: Tuple[str, ...]) -> Optional[int]:
        node_id = 0
        for name in path:
            children = {child.local_name: child.node_id for child in self.graph.nodes[node_id].children}
            if name not in children:
                return None
            node_id = children[name]
        return node_id

    def variable_shapes(self, node_id: int, prefix: str = "") -> Dict[str, Tuple[int, ...]]:
        """Shapes of every variable below a node, by their path from it (e.g. ``0/conv/kernel``)."""
        shapes = {}
        for child in self.graph.nodes[node_id].children:
            path = f"{prefix}{child.local_name}"
            node = self.graph.nodes[child.node_id]
            values = [a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"]
            if values and values[0] in self.shapes:
                shapes[path] = tuple(self.shapes[values[0]])
            elif not values:
                shapes.update(self.variable_shapes(child.node_id, path + "/"))
        return shapes


def _variable_shapes(trackable, prefix: str = "") -> Dict[str, Tuple[int, ...]]:
    shapes = {}
    for name, child in trackable._trackable_children().items():
        if isinstance(child, tf.Variable):
            shapes[f"{prefix}{name}"] = tuple(child.shape)
        elif hasattr(child, "_trackable_children"):
            shapes.update(_variable_shapes(child, f"{prefix}{name}/"))
    return shapes


def restore_detector(model, path: str) -> RestoreReport:
    """Restores a tfdet detector's weights (a SavedModel export, or a checkpoint of ``model=...``) into ``model``.

    Args:
        model: a :class:`~tfdet.models.architectures.one_stage.OneStageModel` (built here if needed).
        path: a SavedModel directory (e.g. a served version), a checkpoint prefix or a folder of checkpoints.

    Returns:
        A :class:`RestoreReport` naming the head layers that were re-initialised (class count changed).

    Raises:
        CheckpointError: naming the first layer whose shapes differ outside the class-dependent layers.
    """
    if not model.built:
        model.build_model()
    prefix = checkpoint_prefix(path)
    graph = _Graph(prefix)
    root = ("model",) if graph.node(("model",)) is not None else ()
    head_node = graph.node(root + ("head",))
    if head_node is None:
        raise CheckpointError(f"{path}: has no detector head; not a tfdet detector checkpoint")
    skip = []
    for name, layer in model.head._trackable_children().items():
        node = graph.node(root + ("head", name))
        if node is None or not hasattr(layer, "_trackable_children"):
            continue
        saved, ours = graph.variable_shapes(node), _variable_shapes(layer)
        differ = {key: (saved[key], shape) for key, shape in ours.items() if saved.get(key, shape) != shape}
        if differ:
            if name not in getattr(model.head, "class_dependent_layers", ()):
                key, (there, here) = next(iter(differ.items()))
                raise CheckpointError(f"{path}: head layer {name!r} differs: {key} has shape {there} there but {here} "
                                      f"here; only the class-dependent layers "
                                      f"{tuple(model.head.class_dependent_layers)} may differ")
            skip.append(name)
    children = dict(model._trackable_children())
    if skip:
        children["head"] = tf.train.Checkpoint(**{k: v for k, v in model.head._trackable_children().items()
                                                  if k not in skip})
    detector = tf.train.Checkpoint(**children)
    try:
        status = (tf.train.Checkpoint(model=detector) if root else detector).read(prefix)
        status.assert_existing_objects_matched().expect_partial()  # a SavedModel also holds non-variables
    except (ValueError, AssertionError) as error:
        raise CheckpointError(f"{path}: does not fit this detector ({error}); is it the same architecture?") from None
    return RestoreReport(prefix, skip)
