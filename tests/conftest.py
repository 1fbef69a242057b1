"""Shared fixtures: tiny images and records made by the tests themselves."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Callable, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``long(minutes)`` run first, longest first (stable order otherwise): with one worker per
    core, a test of several minutes started late would leave the other worker idle at the end of the run."""

    def minutes(item) -> float:
        marker = item.get_closest_marker("long")
        return float(marker.args[0]) if marker else 0.0

    items.sort(key=lambda item: -minutes(item))


def write_image(path: str, height: int, width: int, colour=(40, 40, 40),
                rectangles: Sequence[Tuple[int, int, int, int, Tuple[int, int, int]]] = (),
                image_format: str = "PNG") -> str:
    """Writes an image with filled rectangles (y0, x0, y1, x1 exclusive, colour)."""
    pixels = np.zeros((height, width, 3), np.uint8) + np.array(colour, np.uint8)
    for y0, x0, y1, x1, fill in rectangles:
        pixels[y0:y1, x0:x1] = fill
    Image.fromarray(pixels).save(path, format=image_format)
    return path


@pytest.fixture
def image_factory(tmp_path) -> Callable[..., str]:
    """``image_factory(name, height, width, ...)`` writes an image under tmp_path."""

    def make(name: str, height: int = 100, width: int = 200, **kwargs) -> str:
        return write_image(str(tmp_path / name), height, width, **kwargs)

    return make


@pytest.fixture(scope="session")
def default_data(tmp_path_factory) -> str:
    """A small copy of the embedded default dataset (one span)."""
    from tfdet.dataio.synthetic import generate_default_dataset

    root = str(tmp_path_factory.mktemp("data"))
    generate_default_dataset(root, spans=(1,), num_train=48, num_eval=16, num_shards=2)
    return os.path.join(root, "default", "span-1")


def tiny_model_config(num_classes: int = 5, size: int = 128, **head_overrides) -> dict:
    """A detector small enough to train in seconds on 2 cores."""
    head = dict(
        name="AnchorHead", num_classes=num_classes,
        anchor_config=dict(octave_base_scale=2, scales_per_octave=2, ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64]),
        loss_cls=dict(name="focalloss"), loss_bbox=dict(name="L1Loss"), stacked_convs=1, feat_channels=32,
        norm_cfg=dict(name="GN", groups=8),
    )
    head.update(head_overrides)
    return dict(
        backbone=dict(name="resnetv2", input_size=(size, size), nb_blocks=(1, 1, 1, 1), width_factor=0.25, groups=8),
        neck=dict(name="fpn", start_level=1, num_nb_ins=4, num_nb_outs=4, filters=32, add_extra_convs=True),
        head=head,
    )


@pytest.fixture
def tiny_config():
    return tiny_model_config
