import math

import numpy as np

from tfdet.core.anchors import AnchorGenerator


def retinanet():
    return AnchorGenerator(strides=[8, 16, 32, 64, 128], ratios=[0.5, 1.0, 2.0], octave_base_scale=4,
                           scales_per_octave=3)


def test_base_anchors_match_mmdetection_conventions():
    base = retinanet().base_anchors(0)
    assert base.shape == (9, 4)
    # ratio 0.5 (h/w), scale 4: h = 8 * sqrt(0.5) * 4 = 22.627, w = 8 / sqrt(0.5) * 4 = 45.255, centred on 0.
    # mmdetection prints this first RetinaNet anchor as x1y1x2y2 [-22.6274, -11.3137, 22.6274, 11.3137].
    np.testing.assert_allclose(base[0], [-11.3137, -22.6274, 11.3137, 22.6274], atol=1e-4)
    # ratio-outer, scale-inner: anchor 1 is ratio 0.5 at scale 4 * 2**(1/3)
    scale = 4 * 2 ** (1 / 3)
    np.testing.assert_allclose(base[1, 3] * 2, 8 / math.sqrt(0.5) * scale, rtol=1e-5)
    # anchor 4 is ratio 1 at scale 4 * 2**(1/3): a square of side 8 * scale
    np.testing.assert_allclose(base[4], [-4 * scale, -4 * scale, 4 * scale, 4 * scale], rtol=1e-5)
    # ratio 2: twice as tall as wide, same area as ratio 1 at that scale
    h, w = base[6, 2] - base[6, 0], base[6, 3] - base[6, 1]
    np.testing.assert_allclose([h / w, h * w], [2.0, (8 * 4) ** 2], rtol=1e-5)


def test_grid_is_location_major_centred_on_multiples_of_the_stride():
    generator = retinanet()
    level = generator.level_anchors(1, 3, 5).numpy()  # stride 16, 3 rows x 5 columns
    assert level.shape == (3 * 5 * 9, 4)
    base = generator.base_anchors(1)
    row, col = 2, 3
    block = level[(row * 5 + col) * 9:(row * 5 + col + 1) * 9]
    np.testing.assert_allclose(block, base + [row * 16, col * 16, row * 16, col * 16], atol=1e-4)


def test_center_offset_and_explicit_scales():
    generator = AnchorGenerator(strides=[10], ratios=[1.0], scales=[2.0], octave_base_scale=None, center_offset=0.5)
    np.testing.assert_allclose(generator.level_anchors(0, 1, 2).numpy(), [[-5, -5, 15, 15], [-5, 5, 15, 25]])


def test_levels_must_match_strides():
    import pytest

    with pytest.raises(ValueError, match=r"2 feature maps but 5 anchor strides \[8, 16, 32, 64, 128\]"):
        retinanet()([(4, 4), (2, 2)])
