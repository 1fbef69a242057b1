"""Post-processing: pre-NMS top-k, class-wise NMS or Soft-NMS (tf.image), max detections, box voting."""

from __future__ import annotations

from typing import Dict, List

import tensorflow as tf

from tfdet.core.box_ops import pairwise_iou

# mmdetection's RetinaNet test settings: every head's defaults (heads/base.DEFAULT_TEST_CFG) and this module's
NMS_PRE, SCORE_THR, IOU_THRESHOLD, MAX_PER_IMG = 1000, 0.05, 0.5, 100


def top_k_per_level(scores: tf.Tensor, k: int) -> tf.Tensor:
    """Indices [B, k'] of the ``k`` anchors with the highest best-class score; k' = min(k, N)."""
    best = tf.reduce_max(scores, axis=-1)
    k = tf.minimum(k, tf.shape(best)[1])
    return tf.math.top_k(best, k=k, sorted=False).indices


def _normalised(boxes: tf.Tensor, image_height, image_width) -> tf.Tensor:
    """Pixel boxes (y first) as fractions of the input size."""
    size = tf.cast(tf.stack([image_height, image_width, image_height, image_width]), tf.float32)
    return tf.cast(boxes, tf.float32) / size


def class_wise_nms(boxes: tf.Tensor, scores: tf.Tensor, image_height, image_width, score_thr: float = SCORE_THR,
                   iou_threshold: float = IOU_THRESHOLD, max_per_img: int = MAX_PER_IMG,
                   soft_nms_sigma: float = 0.0) -> Dict[str, tf.Tensor]:
    """Per-class NMS over candidate boxes of a batch.

    Args:
        boxes: [B, K, 4] pixel boxes (ymin, xmin, ymax, xmax), shared by all classes.
        scores: [B, K, C] class probabilities.
        image_height, image_width: the network input size, to normalise and clip.
        soft_nms_sigma: 0 for greedy NMS; above 0, Gaussian Soft-NMS (Bodla et al., 2017): a candidate's score is
            multiplied by ``exp(-IoU^2 / sigma)`` for each box kept before it instead of being dropped, so that
            touching objects of one class survive each other (the paper's and mmdetection's sigma; 0.5 theirs).
            ``iou_threshold`` still drops overlaps above it outright (TensorFlow's op); give 1.0 for the Gaussian
            decay alone.

    Returns:
        ``detection_boxes`` [B, max_per_img, 4] normalised, clipped and ordered;
        ``detection_scores`` [B, max_per_img] (descending; decayed under Soft-NMS); ``detection_classes``
        int32 [B, max_per_img]; ``num_detections`` int32 [B]. Rows past
        ``num_detections`` are zero.
    """
    if not soft_nms_sigma >= 0.0:  # also NaN
        raise ValueError(f"soft_nms_sigma must be 0 (greedy NMS) or above (Gaussian Soft-NMS; 0.5 is the paper's), "
                         f"got {soft_nms_sigma}")
    normalised = _normalised(boxes, image_height, image_width)
    if soft_nms_sigma > 0.0:
        return _soft_nms(tf.clip_by_value(normalised, 0.0, 1.0), tf.cast(scores, tf.float32), score_thr,
                         iou_threshold, max_per_img, soft_nms_sigma)
    nms_boxes, nms_scores, nms_classes, valid = tf.image.combined_non_max_suppression(
        normalised[:, :, None, :], tf.cast(scores, tf.float32), max_output_size_per_class=max_per_img,
        max_total_size=max_per_img, iou_threshold=iou_threshold, score_threshold=score_thr, clip_boxes=True)
    return {
        "detection_boxes": nms_boxes,
        "detection_scores": nms_scores,
        "detection_classes": tf.cast(nms_classes, tf.int32),
        "num_detections": tf.cast(valid, tf.int32),
    }


def _soft_nms(boxes: tf.Tensor, scores: tf.Tensor, score_thr: float, iou_threshold: float, max_per_img: int,
              sigma: float) -> Dict[str, tf.Tensor]:
    """:func:`class_wise_nms` with Gaussian decay: tf.image's Soft-NMS (one image and class at a time, as the op
    takes them), then the best ``max_per_img`` over the classes, padded with zeros."""
    num_classes = scores.shape[-1]
    if num_classes is None:
        raise ValueError("Soft-NMS needs the number of classes known when the graph is built (scores [B, K, C])")

    def one_image(args):
        image_boxes, image_scores = args
        kept_boxes, kept_scores, kept_classes = [], [], []
        for c in range(num_classes):  # the op has no class axis; C is small and static
            index, decayed = tf.image.non_max_suppression_with_scores(
                image_boxes, image_scores[:, c], max_per_img, iou_threshold=iou_threshold,
                score_threshold=score_thr, soft_nms_sigma=sigma / 2.0)  # tf.image decays by exp(-IoU^2 / 2s)
            kept_boxes.append(tf.gather(image_boxes, index))
            kept_scores.append(decayed)
            kept_classes.append(tf.fill(tf.shape(decayed), c))
        all_scores = tf.concat(kept_scores, 0)
        count = tf.minimum(tf.shape(all_scores)[0], max_per_img)
        best = tf.math.top_k(all_scores, k=count).indices
        pad = max_per_img - count
        return (tf.pad(tf.gather(tf.concat(kept_boxes, 0), best), [[0, pad], [0, 0]]),
                tf.pad(tf.gather(all_scores, best), [[0, pad]]),
                tf.pad(tf.gather(tf.concat(kept_classes, 0), best), [[0, pad]]),
                count)

    found_boxes, found_scores, found_classes, counts = tf.map_fn(
        one_image, (boxes, scores), fn_output_signature=(
            tf.TensorSpec([max_per_img, 4], tf.float32), tf.TensorSpec([max_per_img], tf.float32),
            tf.TensorSpec([max_per_img], tf.int32), tf.TensorSpec([], tf.int32)))
    return {"detection_boxes": found_boxes, "detection_scores": found_scores, "detection_classes": found_classes,
            "num_detections": counts}


def box_voting(detections: Dict[str, tf.Tensor], boxes: tf.Tensor, scores: tf.Tensor, image_height, image_width,
               iou_threshold: float, score_thr: float = SCORE_THR) -> Dict[str, tf.Tensor]:
    """Each kept box becomes the score-weighted mean of the candidates of its class that overlap it by at least
    ``iou_threshold`` (Gidaris and Komodakis, "Object detection via a multi-region & semantic segmentation-aware
    CNN model", 2015): NMS keeps one of many nearby boxes, the mean of them sits closer to the object.

    Args:
        detections: :func:`class_wise_nms`'s output for ``boxes`` and ``scores``.
        boxes: [B, K, 4] the candidate pixel boxes NMS chose from; ``scores`` [B, K, C] their class probabilities.
        image_height, image_width: the network input size.
        iou_threshold: how far a candidate may be from a kept box and still vote.
        score_thr: candidates scoring less do not vote.

    Returns:
        ``detections`` with ``detection_boxes`` replaced (normalised and clipped, as before); scores, classes and
        counts unchanged.
    """
    candidates = tf.clip_by_value(_normalised(boxes, image_height, image_width), 0.0, 1.0)  # [B, K, 4]
    kept = detections["detection_boxes"]  # [B, D, 4]
    overlap = pairwise_iou(kept, candidates)  # [B, D, K]
    class_scores = tf.gather(tf.cast(scores, tf.float32), detections["detection_classes"], axis=2, batch_dims=1)
    class_scores = tf.transpose(class_scores, [0, 2, 1])  # [B, D, K]: each candidate's score for the kept class
    weights = tf.where((overlap >= iou_threshold) & (class_scores >= score_thr), class_scores, 0.0)
    total = tf.reduce_sum(weights, axis=-1, keepdims=True)
    voted = tf.matmul(weights, candidates) / tf.maximum(total, 1e-12)
    return {**detections, "detection_boxes": tf.where(total > 0.0, voted, kept)}


def gather_levels(tensors: List[tf.Tensor], indices: List[tf.Tensor]) -> tf.Tensor:
    """Gathers per-level candidates [B, N_l, ...] at [B, k_l] and concatenates over levels."""
    return tf.concat([tf.gather(t, i, batch_dims=1) for t, i in zip(tensors, indices)], axis=1)
