"""The dense-head contract every one-stage head follows, and the parts heads share.

A head is a Keras layer that

* ``call(features)`` -> its per-level outputs (a tuple of lists, one tensor per pyramid level);
* ``loss(outputs, batch)`` -> a dict of scalar losses named in ``loss_names`` (``batch``: ``bboxes``
  [B, M, 4] in input pixels, ``labels`` [B, M], ``mask`` [B, M]);
* ``predict(outputs, image_height, image_width, **test_cfg)`` -> ``detection_boxes`` [B, K, 4]
  normalised to the input, ``detection_scores``, ``detection_classes``, ``num_detections``;
* names in ``class_dependent_layers`` the layers whose shapes depend on ``num_classes`` (they are
  re-initialised when a checkpoint has another class count).

The detector traces its parts as written, without AutoGraph (it halves the tracing before the first
step and in an export): branch on tensors with ``tf.cond`` / ``tf.where``; a method that needs Python
control flow on tensors is decorated with ``tf.function``, which converts it (the same holds for
backbones and necks).

Its priors (anchors or points) are its own business. :class:`DenseHead` supplies the conv towers
(stacked 3x3 convs, optional GroupNorm, an activation), the classifier with RetinaNet's prior
bias, top-k-per-level candidates and class-wise NMS, so that a new head is one file: its
predictors, its targets and its losses.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras

from tfdet.core.postprocess import (
    IOU_THRESHOLD,
    MAX_PER_IMG,
    NMS_PRE,
    SCORE_THR,
    box_voting,
    class_wise_nms,
    gather_levels,
    top_k_per_level,
)
from tfdet.models.layers import activation, group_norm

DEFAULT_TEST_CFG = {"nms_pre": NMS_PRE, "score_thr": SCORE_THR, "nms": {"iou_threshold": IOU_THRESHOLD},
                    "max_per_img": MAX_PER_IMG}


NMS_KEYS = ("iou_threshold", "soft_nms_sigma")


def nms_settings(test_cfg: Mapping[str, Any], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """The NMS settings of ``test_cfg`` with ``overrides`` on top, key by key (so ``nms=dict(soft_nms_sigma=0.5)``
    keeps the configured IoU threshold); in each, a top-level ``iou_threshold`` or ``soft_nms_sigma`` wins over its
    ``nms`` dict."""
    settings: Dict[str, Any] = {}
    for source in (test_cfg, overrides):
        settings.update(source.get("nms") or {})
        settings.update({key: source[key] for key in NMS_KEYS if key in source})
    return settings


def conv3x3(filters: int, name: str, bias_init: float = 0.0) -> tf_keras.layers.Conv2D:
    """A 3x3 'same' conv with N(0, 0.01) weights, as mmdetection initialises head convs."""
    return tf_keras.layers.Conv2D(filters, 3, padding="same", name=name,
                                  kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.01),
                                  bias_initializer=tf_keras.initializers.Constant(bias_init))


def prior_bias(prior_prob: float) -> float:
    """The classifier bias that makes every initial score ``prior_prob`` (RetinaNet: -log(99))."""
    return -math.log((1 - prior_prob) / prior_prob)


class Scale(tf_keras.layers.Layer):
    """A learnable scalar multiplier (mmdetection's ``Scale``; FCOS has one per pyramid level)."""

    def __init__(self, initial: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.initial = float(initial)

    def build(self, input_shape) -> None:
        self.scale = self.add_weight("scale", shape=(), initializer=tf_keras.initializers.Constant(self.initial))
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return x * tf.cast(self.scale, x.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "initial": self.initial}


class DenseHead(tf_keras.layers.Layer):
    """Base of the dense heads (see the module docstring for the contract).

    Args:
        num_classes: object classes (sigmoid scores, no background class).
        stacked_convs: 3x3 convs per tower.
        feat_channels: their channels.
        act_cfg: activation after each tower conv.
        norm_cfg: None or ``dict(name="GN", groups=32)``: GroupNorm after each tower conv.
        test_cfg: ``nms_pre`` (top-k per level before NMS), ``score_thr``, ``nms.iou_threshold``
            (class-wise), ``nms.soft_nms_sigma`` (0: greedy NMS; above 0: Gaussian Soft-NMS,
            :func:`~tfdet.core.postprocess.class_wise_nms`), ``max_per_img``, ``box_voting_iou`` (None: off; else
            each kept box becomes the score-weighted mean of the candidates overlapping it this much,
            :func:`~tfdet.core.postprocess.box_voting`).
        prior_prob: initial foreground probability of the classifier.
    """

    class_dependent_layers: Tuple[str, ...] = ()
    loss_names: Tuple[str, ...] = ("loss_cls", "loss_bbox")

    def __init__(self, num_classes: int, stacked_convs: int = 4, feat_channels: int = 256, act_cfg: Any = "relu",
                 norm_cfg: Optional[Mapping[str, Any]] = None, test_cfg: Optional[Mapping[str, Any]] = None,
                 prior_prob: float = 0.01, **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", "head"), **kwargs)
        if num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.stacked_convs, self.feat_channels = int(stacked_convs), int(feat_channels)
        self.act_cfg, self.act = act_cfg, activation(act_cfg)
        self.norm_cfg = dict(norm_cfg) if norm_cfg else None
        if self.norm_cfg and self.norm_cfg.get("name", "GN") not in ("GN", "GroupNorm"):
            raise ValueError(f"{type(self).__name__}: norm_cfg supports GroupNorm only (name='GN'), "
                             f"got {self.norm_cfg}")
        self.test_cfg = {**DEFAULT_TEST_CFG, **dict(test_cfg or {})}
        self.prior_prob = float(prior_prob)

    # -- shared parts ----------------------------------------------------------------------------
    def conv_tower(self, prefix: str) -> Tuple[List[tf_keras.layers.Conv2D], List[Optional[tf_keras.layers.Layer]]]:
        """``stacked_convs`` convs named ``{prefix}.{i}.conv`` and their norms (``{prefix}.{i}.gn`` or None)."""
        convs = [conv3x3(self.feat_channels, f"{prefix}.{i}.conv") for i in range(self.stacked_convs)]
        groups = int((self.norm_cfg or {}).get("groups", 32))
        norms = [group_norm(groups, name=f"{prefix}.{i}.gn") if self.norm_cfg else None
                 for i in range(self.stacked_convs)]
        return convs, norms

    def run_tower(self, x: tf.Tensor, convs: Sequence[tf_keras.layers.Layer],
                  norms: Sequence[Optional[tf_keras.layers.Layer]]) -> tf.Tensor:
        for conv, norm in zip(convs, norms):
            x = conv(x)
            x = self.act(norm(x) if norm is not None else x)
        return x

    def classifier(self, filters: int, name: str) -> tf_keras.layers.Conv2D:
        """The classification predictor, its bias set to the prior probability."""
        return conv3x3(filters, name, bias_init=prior_bias(self.prior_prob))

    @staticmethod
    def flatten(outputs: Sequence[tf.Tensor], last: int) -> tf.Tensor:
        """Per-level [B, H, W, A * last] -> [B, sum(H * W * A), last] in float32 (location-major)."""
        batch = tf.shape(outputs[0])[0]
        return tf.concat([tf.reshape(tf.cast(o, tf.float32), [batch, -1, last]) for o in outputs], axis=1)

    @staticmethod
    def level_sizes(outputs: Sequence[tf.Tensor]) -> List[tuple]:
        """(height, width) of each level, static where known (so that priors become graph constants)."""
        sizes = []
        for output in outputs:
            dynamic = tf.shape(output)
            sizes.append(tuple(output.shape[i] if output.shape[i] is not None else dynamic[i] for i in (1, 2)))
        return sizes

    def select_and_nms(self, scores: Sequence[tf.Tensor], boxes: Sequence[tf.Tensor], image_height, image_width,
                       **overrides: Any) -> Dict[str, tf.Tensor]:
        """Top ``nms_pre`` candidates per level of per-level scores [B, N_l, C] and boxes [B, N_l, 4] (pixels),
        then class-wise NMS; see :func:`~tfdet.core.postprocess.class_wise_nms`."""
        cfg = {**self.test_cfg, **overrides}
        nms = nms_settings(self.test_cfg, overrides)
        picks = [top_k_per_level(level, int(cfg["nms_pre"])) for level in scores]
        boxes, scores = gather_levels(list(boxes), picks), gather_levels(list(scores), picks)
        found = class_wise_nms(boxes, scores, image_height, image_width, score_thr=float(cfg["score_thr"]),
                               iou_threshold=float(nms.get("iou_threshold", IOU_THRESHOLD)),
                               max_per_img=int(cfg["max_per_img"]),
                               soft_nms_sigma=float(nms.get("soft_nms_sigma") or 0.0))
        if cfg.get("box_voting_iou"):
            found = box_voting(found, boxes, scores, image_height, image_width, float(cfg["box_voting_iou"]),
                               float(cfg["score_thr"]))
        return found

    # -- the contract ----------------------------------------------------------------------------
    def loss(self, outputs, batch: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """The losses named in ``loss_names`` for one batch."""
        raise TypeError(f"{type(self).__name__} does not follow the dense-head contract: define loss(outputs, batch)")

    def predict(self, outputs, image_height, image_width, **overrides: Any) -> Dict[str, tf.Tensor]:
        """Detections of one batch of outputs."""
        raise TypeError(f"{type(self).__name__} does not follow the dense-head contract: define "
                        f"predict(outputs, image_height, image_width)")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "stacked_convs": self.stacked_convs,
                       "feat_channels": self.feat_channels, "act_cfg": self.act_cfg, "norm_cfg": self.norm_cfg,
                       "test_cfg": self.test_cfg, "prior_prob": self.prior_prob})
        return config


def padded_targets(batch: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Boxes [B, M+1, 4], labels [B, M+1], mask [B, M+1] with one masked padding row, so that a batch whose
    images all lack boxes (M = 0) still gathers."""
    boxes = tf.pad(tf.cast(batch["bboxes"], tf.float32), [[0, 0], [0, 1], [0, 0]])
    labels = tf.pad(tf.cast(batch["labels"], tf.int32), [[0, 0], [0, 1]])
    mask = tf.pad(tf.cast(batch["mask"], tf.bool), [[0, 0], [0, 1]])
    return boxes, labels, mask
