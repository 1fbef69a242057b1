"""OneStageModel: backbone -> neck -> head, built from a config dict.

The seed's Step 03::

    from tfdet.models.architectures.one_stage import OneStageModel, ConfigOneStage

    model = OneStageModel(ConfigOneStage(**config_model))
    model.compile(optimizer=tf.optimizers.Adam(1e-4))
    model.fit(train_ds, epochs=4, callbacks=[...])

``fit`` takes the seed's batches: dicts with ``image`` [B, H, W, 3],
``bboxes`` [B, M, 4] (ymin, xmin, ymax, xmax) **in input pixels**,
``labels`` [B, M] and ``mask`` [B, M].
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tf_keras

import tfdet.models.backbones  # noqa: F401  (registers)
import tfdet.models.heads  # noqa: F401
import tfdet.models.necks  # noqa: F401
from tfdet.core.detections import boxes_to_original, split_detections
from tfdet.models.preprocessing import Preprocessor
from tfdet.registry import BACKBONES, HEADS, NECKS

_PRECISIONS = (None, "float32", "mixed_bfloat16")

# The detector's graph code has no data-dependent Python control flow (tf.cond / tf.where where it branches):
# AutoGraph's source-to-source conversion of every layer, head and loss function is pure overhead. Tracing
# without it halves the time to a model's first training step and to an export (benchmarks/trace_time.py).
_traced_as_written = tf.autograph.experimental.do_not_convert


@dataclasses.dataclass
class ConfigOneStage:
    """Configuration of a one-stage detector.

    Args:
        backbone: backbone config, ``dict(name="resnetv2", ...)``.
        neck: neck config, ``dict(name="fpn", ...)``.
        head: head config, ``dict(name="AnchorHead", num_classes=..., ...)``.
        input_size: (height, width) of the network input; default the
            backbone's ``input_size``.
        mean, std: the Normalize step of inference (predict_images, export),
            in [0, 1] units; must match the training pipeline's.
        mixed_precision: None / "float32", or "mixed_bfloat16" (bf16 compute,
            float32 weights and losses; fast on CPUs with AVX512_BF16).
        jit_compile: compile the train / predict steps with XLA.
        jit_optimizer: XLA-compile the optimizer's per-variable update on CPU too
            (tf_keras enables it only with a GPU); off by default because end to
            end it measured no gain (benchmarks/README.md).
    """

    backbone: Dict[str, Any]
    neck: Dict[str, Any]
    head: Dict[str, Any]
    input_size: Optional[Sequence[int]] = None
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)
    mixed_precision: Optional[str] = None
    jit_compile: bool = False
    jit_optimizer: bool = False

    def __post_init__(self) -> None:
        for part in ("backbone", "neck", "head"):
            value = getattr(self, part)
            if not isinstance(value, dict) or "name" not in value:
                raise ValueError(f"ConfigOneStage.{part} must be a dict with a 'name', got {value!r}")
        if self.mixed_precision not in _PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {_PRECISIONS}, got {self.mixed_precision!r}")
        if self.input_size is None:
            self.input_size = tuple(self.backbone.get("input_size", (512, 512)))
        self.input_size = tuple(int(v) for v in self.input_size)
        if any(v % 32 for v in self.input_size):
            raise ValueError(f"input_size {self.input_size} must be multiples of 32 (the backbone's stride)")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def pyramid_strides(backbone: tf_keras.layers.Layer, neck: tf_keras.layers.Layer) -> Optional[List[int]]:
    """The stride of every neck output, from the backbone's ``feature_info`` and the neck's levels.

    An FPN-like neck (``start_level``, ``num_nb_outs``) doubles the stride per output from its first
    backbone level; None when either part does not describe itself.
    """
    info = getattr(backbone, "feature_info", None)
    start, outputs = getattr(neck, "start_level", None), getattr(neck, "num_nb_outs", None)
    if not info or start is None or outputs is None or start >= len(info):
        return None
    first = int(info[start]["reduction"])
    return [first * 2 ** i for i in range(int(outputs))]


def fill_head_strides(head: Dict[str, Any], strides: Optional[Sequence[int]]) -> Dict[str, Any]:
    """The head config with its prior strides filled in where it leaves them out.

    Anchor heads take them in ``anchor_config["strides"]``, point heads (FCOS) in ``strides``; a
    config that states them keeps its own (a mismatch with the neck fails in the head's call).
    """
    if strides is None:
        return head
    head = dict(head)
    if isinstance(head.get("anchor_config"), dict):
        if "strides" not in head["anchor_config"]:
            head["anchor_config"] = {**head["anchor_config"], "strides": list(strides)}
    elif "strides" not in head and "strides" in inspect.signature(HEADS.get(head["name"])).parameters:
        head["strides"] = list(strides)
    return head


@contextlib.contextmanager
def _dtype_policy(name: Optional[str]):
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy(name or "float32")
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)


class OneStageModel(tf_keras.Model):
    """A one-stage detector (RetinaNet with the default parts).

    Args:
        config: a :class:`ConfigOneStage` or the dict of its fields.
    """

    def __init__(self, config: Union[ConfigOneStage, Dict[str, Any]], load_pretrained: bool = True,
                 **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", "one_stage"), **kwargs)
        self.config = config if isinstance(config, ConfigOneStage) else ConfigOneStage(**config)
        with _dtype_policy(self.config.mixed_precision):
            self.backbone = BACKBONES.build(self.config.backbone)
            self.neck = NECKS.build(self.config.neck)
            self.config.head = fill_head_strides(self.config.head, pyramid_strides(self.backbone, self.neck))
            self.head = HEADS.build(self.config.head)
        self.preprocessor = Preprocessor(*self.config.input_size, self.config.mean, self.config.std)
        self.trackers = {name: tf_keras.metrics.Mean(name=name) for name in ("loss", *self.head.loss_names)}
        if load_pretrained and getattr(self.backbone, "init_cfg", None):
            self._load_pretrained_backbone()

    def _load_pretrained_backbone(self) -> None:
        """Loads the backbone's ``init_cfg`` weights now (eagerly: ``fit`` would build inside a trace)."""
        from tfdet.weights.loading import init_backbone

        with _dtype_policy(self.config.mixed_precision):
            checkpoint = init_backbone(self.backbone)
        mean, std = checkpoint.metadata.get("mean"), checkpoint.metadata.get("std")
        if mean and std and not (np.allclose(mean, self.config.mean, rtol=1e-3)
                                 and np.allclose(std, self.config.std, rtol=1e-3)):
            raise ValueError(f"the backbone weights {checkpoint.source} expect inputs normalised with "
                             f"mean={[round(v, 6) for v in mean]}, std={[round(v, 6) for v in std]} (RGB, [0, 1] "
                             f"units) but the model config has mean={list(self.config.mean)}, "
                             f"std={list(self.config.std)}; set the config's mean and std (and the training "
                             f"pipeline's Normalize step) to the weights' values")

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def dummy_inputs(self) -> tf.Tensor:
        return tf.zeros([1, *self.config.input_size, 3])

    def build_model(self) -> OneStageModel:
        """Creates every variable by running one dummy batch; returns self."""
        self(self.dummy_inputs)
        return self

    @_traced_as_written
    def call(self, images: tf.Tensor, training: bool = False):
        features = self.backbone(images, return_features=True)
        return self.head(self.neck(features))

    # -- training --------------------------------------------------------------------------------
    def compile(self, optimizer="adam", **kwargs) -> None:
        """Keras compile; the losses come from the head. ``jit_compile`` defaults to the config's; with the
        config's ``jit_optimizer`` the optimizer's updates are XLA-compiled (tf_keras optimizers)."""
        kwargs.setdefault("jit_compile", self.config.jit_compile)
        from tensorflow.python.framework import config as tf_config

        if kwargs["jit_compile"] and tf_config.is_op_determinism_enabled():
            raise ValueError("XLA (jit_compile) cannot train with TensorFlow's deterministic kernels on (a seeded run "
                             "turns them on): XLA has no deterministic max-pool gradient. Train without the seed, or "
                             "without jit_compile (--set jit_compile=False)")
        super().compile(optimizer=optimizer, **kwargs)
        if self.config.jit_optimizer and hasattr(self.optimizer, "_update_step_xla"):
            self.optimizer.jit_compile = True

    @property
    def metrics(self) -> List[tf_keras.metrics.Metric]:
        return list(self.trackers.values())

    def _unpack(self, data) -> Dict[str, tf.Tensor]:
        if isinstance(data, (tuple, list)):
            data = data[0]
        if not isinstance(data, dict) or not {"image", "bboxes", "labels"} <= set(data):
            raise ValueError("OneStageModel expects batches of dicts with 'image', 'bboxes' (pixels), 'labels' "
                             "and 'mask', as the tfdet pipeline + padded_batch produce")
        mask = data.get("mask")
        if mask is None:
            mask = tf.ones_like(data["labels"], tf.bool)
        return {"image": data["image"], "bboxes": data["bboxes"], "labels": data["labels"], "mask": mask}

    def _check_targets(self, batch: Dict[str, tf.Tensor]) -> List[tf.Operation]:
        if self.config.jit_compile:
            return []  # XLA cannot run Assert ops
        mask = tf.cast(batch["mask"], tf.bool)
        labels = tf.where(mask, tf.cast(batch["labels"], tf.int32), 0)
        coords = tf.where(mask[..., None], tf.cast(batch["bboxes"], tf.float32), 0.0)
        any_box = tf.reduce_any(mask)
        return [
            tf.debugging.assert_less(
                tf.reduce_max(labels), self.num_classes,
                message=f"a label id is >= num_classes={self.num_classes}; fix the data or the head's num_classes"),
            tf.debugging.assert_non_negative(tf.reduce_min(labels), message="a label id is negative"),
            tf.debugging.Assert(
                tf.logical_or(tf.logical_not(any_box), tf.reduce_max(coords) > 1.0),
                ["bboxes look normalised to [0, 1]; the model trains on pixel boxes: multiply them by the "
                 "input size (the seed's keep_only does example['bboxes'] * 512.)"]),
        ]

    def compute_losses(self, batch: Dict[str, tf.Tensor], training: bool) -> Dict[str, tf.Tensor]:
        outputs = self(batch["image"], training=training)
        with tf.control_dependencies(self._check_targets(batch)):
            losses = self.head.loss(outputs, batch)
        losses["loss"] = tf.add_n([losses[name] for name in self.head.loss_names])
        if self.losses:
            losses["loss"] += tf.add_n([tf.cast(x, tf.float32) for x in self.losses])
        return losses

    def _record(self, losses: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @_traced_as_written
    def train_step(self, data) -> Dict[str, tf.Tensor]:
        batch = self._unpack(data)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(batch, training=True)
            # Under tf.distribute the replicas' gradients are summed: scale to their mean.
            scaled = losses["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._record(losses)

    @_traced_as_written
    def test_step(self, data) -> Dict[str, tf.Tensor]:
        return self._record(self.compute_losses(self._unpack(data), training=False))

    # -- inference -------------------------------------------------------------------------------
    def _forward(self, images: tf.Tensor):
        """The network's outputs; with ``jit_compile`` an XLA-compiled function (NMS stays outside:
        XLA has no kernel for CombinedNonMaxSuppression)."""
        if not self.config.jit_compile:
            return self(images, training=False)
        if "_xla_forward" not in self.__dict__:
            self.__dict__["_xla_forward"] = tf.function(lambda x: self(x, training=False), jit_compile=True,
                                                        reduce_retracing=True)
        return self.__dict__["_xla_forward"](images)

    @_traced_as_written
    def detect(self, images: tf.Tensor, **overrides: Any) -> Dict[str, tf.Tensor]:
        """Detections for a batch of preprocessed images, boxes normalised to the input."""
        shape = tf.shape(images)
        return self.head.predict(self._forward(images), shape[1], shape[2], **overrides)

    @_traced_as_written
    def predict_step(self, data) -> Dict[str, tf.Tensor]:
        images = data["image"] if isinstance(data, dict) else (data[0] if isinstance(data, (tuple, list)) else data)
        detections = self.detect(images)
        if isinstance(data, dict) and "image_window" in data:
            detections["detection_boxes"] = boxes_to_original(detections["detection_boxes"], data["image_window"])
        return detections

    def predict_images(self, images: Sequence[Union[str, np.ndarray]], batch_size: int = 4,
                       **overrides: Any) -> List[Dict[str, np.ndarray]]:
        """Detects objects in image files or arrays.

        Args:
            images: paths of JPEG/PNG files, or arrays [H, W, 3] (uint8 0-255
                or float 0-1).
            batch_size: images per forward pass.
            **overrides: test_cfg entries, e.g. ``score_thr=0.3``.

        Returns:
            One dict per image: ``boxes`` [K, 4] (ymin, xmin, ymax, xmax) in the
            image's pixels, ``scores`` [K], ``classes`` [K] (int).
        """
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            prepared = [self.preprocessor.decode(tf.io.read_file(item)) if isinstance(item, str)
                        else self.preprocessor(tf.convert_to_tensor(item)) for item in chunk]
            inputs = tf.stack([p[0] for p in prepared])
            windows = tf.stack([p[1] for p in prepared])
            detections = self.detect_function(**overrides)(inputs)
            results += split_detections(detections, [p[2].numpy() for p in prepared], windows)
        return results

    def detect_function(self, **overrides: Any):
        """A traced ``detect`` for these test_cfg overrides, built once and cached on the model."""
        key = json.dumps(overrides, sort_keys=True, default=repr)  # nested values (``nms=dict(...)``) too
        cache = self.__dict__.setdefault("_detect_cache", {})
        if key not in cache:
            cache[key] = tf.function(lambda x: self.detect(x, **overrides), jit_compile=False, reduce_retracing=True)
        return cache[key]

    def get_config(self) -> Dict[str, Any]:
        return {"config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> OneStageModel:
        """Rebuilds the architecture; pretrained weights are not fetched again (the caller sets the weights)."""
        return cls(ConfigOneStage(**config["config"]), load_pretrained=False)
