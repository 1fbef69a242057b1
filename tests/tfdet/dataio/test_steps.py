"""Geometry of each step on hand-worked cases."""

import numpy as np
import pytest
import tensorflow as tf

from tfdet.dataio.steps import ColorJitter, Normalize, RandomFlip, RandomResized, Resize, crop_and_resize
from tfdet.dataio.steps.boxes import crop_boxes
from tfdet.registry import PIPELINE_STEPS


def example(height=100, width=200, boxes=((0.2, 0.2, 0.6, 0.6), (0.7, 0.0, 0.9, 0.15)), labels=(3, 1)):
    image = np.zeros((height, width, 3), np.float32)
    image[:, :, 0] = np.arange(width, dtype=np.float32)[None, :] / width
    image[:, :, 1] = np.arange(height, dtype=np.float32)[:, None] / height
    return {
        "image": tf.constant(image),
        "bboxes": tf.constant(boxes, tf.float32, shape=[len(boxes), 4]),
        "labels": tf.constant(labels, tf.int32, shape=[len(labels)]),
        "mask": tf.ones([len(labels)], tf.bool),
    }


def test_crop_and_resize_moves_clips_and_drops_boxes():
    # Image 100x200; crop rows 10..60, cols 50..150. Box 0 (pixels y 20..60, x 40..120) becomes
    # y 10..50, x -10..70 in the crop -> clipped to x 0..70 -> [10/50, 0/100, 50/50, 70/100].
    # Box 1 (rows 70..90) lies below the crop and goes, with its label.
    out = crop_and_resize(example(), tf.constant([10, 50]), tf.constant([50, 100]), 25, 50)
    np.testing.assert_allclose(out["bboxes"].numpy(), [[0.2, 0.0, 1.0, 0.7]], atol=1e-6)
    np.testing.assert_array_equal(out["labels"].numpy(), [3])
    np.testing.assert_array_equal(out["mask"].numpy(), [True])
    assert out["image"].shape == (25, 50, 3)
    # the green channel encodes the source row: the crop starts at row 10 and spans 50 rows
    np.testing.assert_allclose(out["image"].numpy()[0, 0, 1], 0.1 + 0.5 / 100 * 50 / 25 - 0.005, atol=0.006)


def test_crop_boxes_min_visibility():
    # window = right half. Box 0 is [0.2, 0.2, 0.6, 0.6]: 0.1 of its 0.4 width lies inside -> 25 % visible.
    ex = example()
    window = tf.constant([0.0, 0.5, 1.0, 1.0])
    kept = crop_boxes(ex, window, min_visibility=0.2)
    np.testing.assert_allclose(kept["bboxes"].numpy(), [[0.2, 0.0, 0.6, 0.2]], atol=1e-6)
    assert crop_boxes(ex, window, min_visibility=0.3)["bboxes"].shape == (0, 4)


def test_resize_keeps_ratio_and_pads_bottom_right():
    # 100x200 -> scale min(64/100, 64/200) = 0.32 -> 32x64 content, padded to 64x64:
    # y coordinates shrink by 32/64, x stay.
    out = Resize(64, 64)(example())
    assert out["image"].shape == (64, 64, 3)
    np.testing.assert_allclose(out["bboxes"].numpy(), [[0.1, 0.2, 0.3, 0.6], [0.35, 0.0, 0.45, 0.15]], atol=1e-6)
    np.testing.assert_allclose(out["image_window"].numpy(), [0.0, 0.0, 0.5, 1.0])
    image = out["image"].numpy()
    assert np.all(image[32:] == 0.0) and image[31, 63, 0] > 0.9


def test_resize_without_ratio_stretches():
    out = Resize(50, 50, keep_ratio=False)(example())
    assert out["image"].shape == (50, 50, 3)
    np.testing.assert_allclose(out["bboxes"].numpy(), example()["bboxes"].numpy())


def test_resize_without_padding_fits_inside():
    out = Resize(64, 64, pad=False)(example())
    assert out["image"].shape == (32, 64, 3)
    np.testing.assert_allclose(out["bboxes"].numpy(), example()["bboxes"].numpy())


def test_horizontal_and_vertical_flips():
    ex = example()
    flipped = RandomFlip("horizontal", p=1.0)(ex)
    np.testing.assert_allclose(flipped["bboxes"].numpy(), [[0.2, 0.4, 0.6, 0.8], [0.7, 0.85, 0.9, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(flipped["image"].numpy()[:, 0], ex["image"].numpy()[:, -1])
    upside = RandomFlip("vertical", p=1.0)(ex)
    np.testing.assert_allclose(upside["bboxes"].numpy(), [[0.4, 0.2, 0.8, 0.6], [0.1, 0.0, 0.3, 0.15]], atol=1e-6)
    np.testing.assert_array_equal(RandomFlip(p=0.0)(ex)["bboxes"].numpy(), ex["bboxes"].numpy())


def test_flip_probability_is_respected():
    step = RandomFlip(p=0.3)
    ex = example(boxes=((0.0, 0.0, 1.0, 0.25),), labels=(0,))
    flips = [float(step(ex)["bboxes"][0, 1]) > 0.5 for _ in range(400)]
    assert 0.22 < np.mean(flips) < 0.38  # 0.3 +- 4 sigma


def test_random_resized_samples_within_scale_and_ratio():
    """Each crop covers 25-50 % of the image's area with a width / height (in pixels) of 1/2 to 2, as asked; read
    back from the channels that encode the source column (red) and row (green)."""
    step = RandomResized(32, 48, scale=(0.25, 0.5), ratio=(0.5, 2.0), seed=11)
    ex = example(boxes=((0.0, 0.0, 1.0, 1.0),), labels=(0,))
    seen = set()
    for _ in range(30):
        out = step(ex)
        assert out["image"].shape == (32, 48, 3)
        # the whole-image box becomes the crop's full frame: [0, 0, 1, 1]
        np.testing.assert_allclose(out["bboxes"].numpy(), [[0.0, 0.0, 1.0, 1.0]], atol=1e-6)
        image = out["image"].numpy()
        # the outermost samples sit half a pixel inside the crop: widen the measured span by one output pixel
        width = (image[0, :, 0].max() - image[0, :, 0].min()) * 48 / 47
        height = (image[:, 0, 1].max() - image[:, 0, 1].min()) * 32 / 31
        assert 0.25 * 0.93 <= width * height <= 0.5 * 1.07, (width, height)
        assert 0.5 * 0.93 <= (width * 200) / (height * 100) <= 2.0 * 1.07, (width, height)
        seen.add((round(float(image[0, 0, 0]), 2), round(float(image[0, 0, 1]), 2)))
    assert len(seen) > 10  # the crops move: different corners from draw to draw


def test_normalize_and_its_unit_check():
    ex = example()
    out = Normalize(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))(ex)
    np.testing.assert_allclose(out["image"].numpy()[10, 100], [(0.5 - 0.5) / 0.5, (0.1 - 0.25) / 0.25, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match=r"look like 0-255 values, but images are in \[0, 1\]; divide them by 255"):
        Normalize(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))


def test_color_jitter_changes_pixels_only():
    ex = example()
    out = ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1, seed=3)(ex)
    np.testing.assert_array_equal(out["bboxes"].numpy(), ex["bboxes"].numpy())
    image = out["image"].numpy()
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert not np.allclose(image, ex["image"].numpy())


def test_steps_round_trip_through_their_config():
    for step in (RandomResized(64, 32, scale=(0.5, 1.0)), Resize(10, 20, keep_ratio=False), RandomFlip("vertical"),
                 ColorJitter(0.1, 0.0, 0.3), Normalize()):
        rebuilt = PIPELINE_STEPS.build(step.get_config())
        assert rebuilt.get_config() == step.get_config()


@pytest.mark.parametrize("config,message", [
    (dict(name="RandomResized", height=0, width=5), "RandomResized: height and width must be positive, got 0x5"),
    (dict(name="RandomResized", height=5, width=5, scale=(0.9, 0.1)), "scale must satisfy 0 < min <= max <= 1"),
    (dict(name="RandomFlip", direction="diagonal"), "direction must be 'horizontal' or 'vertical', got 'diagonal'"),
    (dict(name="Resize", height=5, width=5, method="fancy"), "method must be one of bilinear"),
    (dict(name="RandomFlip", p=1.5), "RandomFlip: p must be in [0, 1], got 1.5"),
])
def test_bad_arguments_are_named(config, message):
    with pytest.raises(ValueError) as error:
        PIPELINE_STEPS.build(config)
    assert message in str(error.value)
