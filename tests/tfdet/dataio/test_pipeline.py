"""The pipeline as a whole: seed output contract, box/pixel consistency, errors."""

import numpy as np
import pytest
import tensorflow as tf

from tfdet.dataio.converter import convert_dataset_to_tfrecord
from tfdet.dataio.pipeline import pipeline, pipeline_config, training_batches
from tfdet.registry import RegistryError


@pytest.fixture
def painted_records(tmp_path, image_factory):
    """PNG images with white rectangles on black, one box per rectangle (y0, x0, y1, x1 pixels)."""
    specs = [
        (120, 160, [(30, 40, 70, 100), (90, 10, 115, 50)]),
        (90, 200, [(10, 150, 80, 190)]),
        (150, 100, [(60, 20, 120, 60), (5, 70, 40, 95)]),
    ]
    records = []
    for i, (h, w, boxes) in enumerate(specs):
        path = image_factory(f"{i}.png", h, w, colour=(0, 0, 0),
                             rectangles=[(*b, (255, 255, 255)) for b in boxes])
        records.append({"image_path": path, "bboxes": [list(b) for b in boxes],
                        "labels": [{"id": j, "name": f"c{j}"} for j in range(len(boxes))]})
    convert_dataset_to_tfrecord(records, 2, str(tmp_path / "rec"))
    return str(tmp_path / "rec" / "*.tfrecord")


def white_extent(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Pixel extent [y0, x0, y1, x1] of the white pixels inside ``box`` (pixels, slightly enlarged)."""
    h, w = image.shape[:2]
    y0, x0 = max(int(box[0]) - 2, 0), max(int(box[1]) - 2, 0)
    y1, x1 = min(int(np.ceil(box[2])) + 2, h), min(int(np.ceil(box[3])) + 2, w)
    region = image[y0:y1, x0:x1].min(axis=-1) > 0.5
    rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    return np.array([rows[0] + y0, cols[0] + x0, rows[-1] + 1 + y0, cols[-1] + 1 + x0], np.float32)


def test_geometric_steps_keep_boxes_on_their_pixels(painted_records):
    # A second method: wherever the augmentations move a box, the white pixels it covers must move
    # with it. Rectangles do not overlap, so each kept box must frame exactly its white region.
    steps = [
        dict(name="InputReadRecordFiles", pattern_file=painted_records, repeat=True),
        dict(name="RandomResized", height=96, width=96, scale=(0.3, 1.0), ratio=(0.6, 1.6), method="nearest"),
        dict(name="RandomFlip", direction="horizontal", p=0.5),
        dict(name="RandomFlip", direction="vertical", p=0.5),
        dict(name="Resize", height=80, width=64, method="nearest"),
    ]
    checked = 0
    for ex in pipeline(steps).take(60).as_numpy_iterator():
        image, boxes = ex["image"], ex["bboxes"] * [80, 64, 80, 64]
        assert boxes.shape[0] == ex["labels"].shape[0] == ex["mask"].shape[0]
        assert np.all(ex["bboxes"] >= 0.0) and np.all(ex["bboxes"] <= 1.0)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        for box in boxes:
            if min(box[2] - box[0], box[3] - box[1]) < 3:
                continue  # a sliver: nearest-neighbour sampling may not show it
            np.testing.assert_allclose(white_extent(image, box), box, atol=1.6)
            checked += 1
        covered = np.zeros(image.shape[:2], bool)
        for y0, x0, y1, x1 in boxes:
            covered[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
        white = image.min(axis=-1) > 0.5
        assert white[~covered].sum() <= 2 * (image.shape[0] + image.shape[1])  # no white region lost its box
    assert checked > 60


def test_seed_output_contract_and_padded_batch(painted_records):
    ds = pipeline([
        dict(name="InputReadRecordFiles", pattern_file=painted_records),
        dict(name="RandomResized", height=64, width=64, scale=(0.8, 1.0), ratio=(0.75, 1.3333333333333333)),
        dict(name="Normalize", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), p=1.0),
    ])
    spec = ds.element_spec
    assert spec["image"].shape.as_list() == [64, 64, 3] and spec["image"].dtype == tf.float32
    assert spec["bboxes"].shape.as_list() == [None, 4] and spec["labels"].dtype == tf.int32
    assert spec["mask"].dtype == tf.bool
    batch = next(iter(ds.map(lambda e: {k: e[k] for k in ("image", "bboxes", "labels", "mask")}).padded_batch(3)))
    mask = batch["mask"].numpy()
    assert batch["image"].shape == (3, 64, 64, 3)
    assert mask.shape == batch["labels"].shape and mask.sum() <= 5
    assert np.all(batch["bboxes"].numpy()[~mask] == 0.0)


def test_pipeline_errors_say_what_to_do(tmp_path, painted_records):
    with pytest.raises(FileNotFoundError, match=r"no files match pattern_file='.*nothing-\*\.tfrecord'; convert"):
        pipeline([dict(name="InputReadRecordFiles", pattern_file=str(tmp_path / "nothing-*.tfrecord"))])
    with pytest.raises(ValueError, match="a pipeline must start with a source step such as InputReadRecordFiles, "
                                         "got Normalize"):
        pipeline([dict(name="Normalize")])
    with pytest.raises(RegistryError, match=r"pipeline step 1: unknown pipeline step 'RandomResize'\. "
                                            r"Did you mean 'RandomResized'\?"):
        pipeline([dict(name="InputReadRecordFiles", pattern_file=painted_records),
                  dict(name="RandomResize", height=5, width=5)])
    with pytest.raises(TypeError, match="pipeline step 1: cannot build pipeline step 'Normalize'"):
        pipeline([dict(name="InputReadRecordFiles", pattern_file=painted_records), dict(name="Normalize", sd=1)])


def test_gzip_records_are_read_like_examplegen_output(tmp_path, painted_records):
    raw = list(tf.data.TFRecordDataset(tf.io.gfile.glob(painted_records)).as_numpy_iterator())
    path = str(tmp_path / "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for item in raw:
            writer.write(item)
    examples = list(pipeline([dict(name="InputReadRecordFiles", pattern_file=path)]).as_numpy_iterator())
    assert len(examples) == 3


def test_dataset_steps_and_config_round_trip(painted_records):
    steps = [dict(name="InputReadRecordFiles", pattern_file=painted_records, shuffle=True, seed=1),
             dict(name="Repeat", count=2), dict(name="FilterEmpty"), dict(name="Shuffle", buffer_size=4)]
    assert len(list(pipeline(steps).as_numpy_iterator())) == 6
    config = pipeline_config(steps)
    assert config[0]["name"] == "InputReadRecordFiles" and config[0]["seed"] == 1
    assert pipeline_config(config) == config


def test_autotuning_is_off_down_to_the_training_batches_unless_asked_for(painted_records):
    steps = [dict(name="InputReadRecordFiles", pattern_file=painted_records),
             dict(name="Resize", height=64, width=64)]
    default, tuned = pipeline(steps), pipeline(steps, autotune=True)
    assert default.options().autotune.enabled is False and tuned.options().autotune.enabled is True
    batches = training_batches(default.repeat(), 2)  # what fit() iterates and deletes half-consumed
    assert batches.options().autotune.enabled is False
    for a, b in zip(default.take(4), tuned.take(4)):  # the same examples either way
        np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())
