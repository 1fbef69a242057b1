import io
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tfdet.dataio import features
from tfdet.dataio.annotations import RecordError, encode_record
from tfdet.dataio.pipeline import pipeline
from tfdet.dataio.tfrecord_files import read_records
from tfdet.dataio.tfrecord_utilts import convert_dataset_to_tfrecord


def record(path, boxes=(), labels=()):
    return {"image_path": path, "bboxes": [list(b) for b in boxes],
            "labels": [{"id": i, "name": n} for i, n in labels]}


def read_examples(pattern):
    ds = pipeline([dict(name="InputReadRecordFiles", pattern_file=pattern)], deterministic=True)
    return list(ds.as_numpy_iterator())


def test_round_trip_keeps_boxes_labels_and_pixels(tmp_path, image_factory):
    first = image_factory("a.png", 100, 200, rectangles=[(20, 40, 60, 120, (255, 0, 0))])
    second = image_factory("b.jpg", 50, 80, image_format="JPEG")
    records = [
        record(first, [(20, 40, 60, 120), (0, 0, 100, 200)], [(1, "cat"), (0, "dog")]),
        record(second),  # a test-set image: no boxes
    ]
    report = convert_dataset_to_tfrecord(records, num_shards=1, output_dir=str(tmp_path / "out"), num_classes=2)
    assert (report.records_seen, report.written, report.rejected, report.boxes_written) == (2, 2, 0, 2)

    a, b = read_examples(str(tmp_path / "out" / "*.tfrecord"))
    np.testing.assert_allclose(a["bboxes"], [[0.2, 0.2, 0.6, 0.6], [0.0, 0.0, 1.0, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(a["labels"], [1, 0])
    np.testing.assert_array_equal(a["mask"], [True, True])
    assert a["image"].shape == (100, 200, 3) and a["image"].dtype == np.float32
    np.testing.assert_allclose(a["image"][30, 50], [1.0, 0.0, 0.0])  # PNG is lossless
    np.testing.assert_array_equal(a["original_size"], [100, 200])
    assert a["image_id"] == b"data-0"
    assert b["bboxes"].shape == (0, 4) and b["labels"].shape == (0,) and b["mask"].shape == (0,)
    assert b["image"].shape == (50, 80, 3)
    with open(tmp_path / "out" / "label_map.json") as handle:
        assert json.load(handle) == {"0": "dog", "1": "cat"}


def test_original_bytes_are_kept(tmp_path, image_factory):
    path = image_factory("a.jpg", 30, 40, image_format="JPEG")
    convert_dataset_to_tfrecord([record(path)], num_shards=1, output_dir=str(tmp_path / "out"))
    raw = next(iter(tf.data.TFRecordDataset(str(tmp_path / "out" / "data-00000-of-00001.tfrecord"))))
    example = tf.train.Example.FromString(raw.numpy())
    feature = example.features.feature
    assert feature[features.ENCODED].bytes_list.value[0] == open(path, "rb").read()
    assert feature[features.FORMAT].bytes_list.value[0] == b"jpeg"
    assert feature[features.FILENAME].bytes_list.value[0] == b"a.jpg"
    assert (feature[features.HEIGHT].int64_list.value[0], feature[features.WIDTH].int64_list.value[0]) == (30, 40)


def test_other_formats_are_stored_as_png(tmp_path, image_factory):
    path = image_factory("a.bmp", 10, 12, image_format="BMP", rectangles=[(0, 0, 5, 6, (0, 255, 0))])
    convert_dataset_to_tfrecord([record(path)], num_shards=1, output_dir=str(tmp_path / "out"))
    (example,) = read_examples(str(tmp_path / "out" / "*.tfrecord"))
    np.testing.assert_allclose(example["image"][2, 3], [0.0, 1.0, 0.0])
    (raw,) = read_records(str(tmp_path / "out" / "*.tfrecord"))
    assert tf.train.Example.FromString(raw).features.feature[features.FORMAT].bytes_list.value == [b"png"]


def test_a_png_keeps_its_bytes_and_an_rgba_image_of_another_format_is_stored_as_rgb(tmp_path):
    from PIL import Image

    png = str(tmp_path / "a.png")  # stored uncompressed: a re-encoding by Pillow would not give these bytes back
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (10, 12, 3)).astype(np.uint8)).save(png, compress_level=0)
    tiff = str(tmp_path / "b.tiff")
    Image.fromarray(np.full((10, 12, 4), 200, np.uint8), mode="RGBA").save(tiff, format="TIFF")
    convert_dataset_to_tfrecord([record(png), record(tiff)], num_shards=1, output_dir=str(tmp_path / "out"))
    stored = [tf.train.Example.FromString(raw).features.feature[features.ENCODED].bytes_list.value[0]
              for raw in read_records(str(tmp_path / "out" / "*.tfrecord"))]
    with open(png, "rb") as handle:
        assert stored[0] == handle.read()
    assert Image.open(io.BytesIO(stored[1])).mode == "RGB"


def test_a_file_that_cannot_be_read_is_named(tmp_path):
    # /proc/self/mem exists and is a file, but reading it from offset 0 fails (EIO)
    with pytest.raises(RecordError) as error:
        convert_dataset_to_tfrecord([record("/proc/self/mem")], 1, str(tmp_path / "out"))
    assert (error.value.index, error.value.image_path, error.value.code) == (0, "/proc/self/mem", "unreadable_file")
    assert str(error.value).startswith("record 0 (/proc/self/mem): cannot read the image file: [Errno 5]")


def test_label_ids_are_checked_against_num_classes_or_only_below_zero(tmp_path, image_factory):
    path = image_factory("a.png", 10, 10)
    with pytest.raises(RecordError, match=r"label 0 \('cat'\) has id 3, outside 0 <= id < 3;"):
        convert_dataset_to_tfrecord([record(path, [(0, 0, 5, 5)], [(3, "cat")])], 1, str(tmp_path / "a"), num_classes=3)
    with pytest.raises(RecordError) as error:
        convert_dataset_to_tfrecord([record(path, [(0, 0, 5, 5)], [(-1, "cat")])], 1, str(tmp_path / "b"))
    assert str(error.value).startswith(f"record 0 ({path}): label 0 ('cat') has id -1, outside 0 <= id;")


def test_sharding_is_round_robin_and_workers_do_not_change_the_bytes(tmp_path, image_factory):
    paths = [image_factory(f"{i}.png", 20 + i, 30) for i in range(40)]
    records = [record(p, [(1, 2, 10, 20)], [(i % 3, f"c{i % 3}")]) for i, p in enumerate(paths)]
    inline = convert_dataset_to_tfrecord(records, num_shards=3, output_dir=str(tmp_path / "one"), num_workers=1)
    pooled = convert_dataset_to_tfrecord(records, num_shards=3, output_dir=str(tmp_path / "two"), num_workers=2)
    assert inline.examples_per_shard == pooled.examples_per_shard == [14, 13, 13]
    for left, right in zip(inline.shards, pooled.shards):
        assert open(left, "rb").read() == open(right, "rb").read()
    ids = [tf.train.Example.FromString(r.numpy()).features.feature[features.SOURCE_ID].bytes_list.value[0]
           for r in tf.data.TFRecordDataset(inline.shards[1])]
    assert ids == [f"data-{i}".encode() for i in range(1, 40, 3)]


def test_reconversion_replaces_old_shards(tmp_path, image_factory):
    path = image_factory("a.png", 10, 10)
    out = str(tmp_path / "out")
    convert_dataset_to_tfrecord([record(path)] * 3, num_shards=3, output_dir=out, prefix="train")
    convert_dataset_to_tfrecord([record(path)] * 3, num_shards=2, output_dir=out, prefix="train")
    assert sorted(f for f in os.listdir(out) if f.endswith(".tfrecord")) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]


BAD_BOX_CASES = [
    ((0, 0, 50, 300), "box_outside_image",
     "box 0 [0, 0, 50, 300] lies outside the 100x200 (height x width) image "
     "(boxes are [y_min, x_min, y_max, x_max] in pixels, y first)"),
    ((0.1, 0.1, 0.5, 0.5), "box_looks_normalised",
     "every box lies within [0, 1] pixels of a 100x200 image; boxes look normalised: multiply y by the height "
     "and x by the width (boxes are [y_min, x_min, y_max, x_max] in pixels, y first)"),
    ((50, 10, 20, 40), "box_inverted",
     "box 0 [50, 10, 20, 40] is inverted (needs y_min < y_max and x_min < x_max; "
     "boxes are [y_min, x_min, y_max, x_max] in pixels, y first)"),
    ((10, 10, 10, 40), "box_zero_area", "box 0 [10, 10, 10, 40] has zero area; drop it or fix its size"),
    ((10, 40, 20, 40), "box_zero_area", "box 0 [10, 40, 20, 40] has zero area; drop it or fix its size"),
    *[(box, "box_outside_image", f"box 0 [{', '.join(f'{v:g}' for v in box)}] lies outside the 100x200 (height x "
       "width) image (boxes are [y_min, x_min, y_max, x_max] in pixels, y first)")
      for box in ((-1, 10, 20, 40), (10, -1, 20, 40), (10, 10, 101, 40))],  # each side alone is enough
    (("1", 0, 10, 10), "malformed_record",
     "box 0 is ['1', 0, 10, 10]; expected 4 numbers (boxes are [y_min, x_min, y_max, x_max] in pixels, y first)"),
    ((math.nan, 0, 10, 10), "box_not_finite", "box 0 [nan, 0, 10, 10] has a NaN or infinite coordinate"),
    ((0, 0, math.inf, 10), "box_not_finite", "box 0 [0, 0, inf, 10] has a NaN or infinite coordinate"),
    ((0, 0, 10), "malformed_record",
     "box 0 is [0, 0, 10]; expected 4 numbers (boxes are [y_min, x_min, y_max, x_max] in pixels, y first)"),
]


@pytest.mark.parametrize("box,code,detail", BAD_BOX_CASES)
def test_each_bad_box_is_named(tmp_path, image_factory, box, code, detail):
    path = image_factory("a.png", 100, 200)
    records = [record(path, [box], [(0, "cat")])]
    with pytest.raises(RecordError) as error:
        convert_dataset_to_tfrecord(records, 1, str(tmp_path / "out"))
    assert error.value.code == code
    assert str(error.value) == f"record 0 ({path}): {detail}"


def test_small_pixel_boxes_beside_larger_ones_are_legal(tmp_path, image_factory):
    path = image_factory("a.png", 100, 200)
    records = [record(path, [(0.1, 0.1, 0.9, 0.9), (10, 10, 30, 30)], [(0, "a"), (0, "a")])]
    assert convert_dataset_to_tfrecord(records, 1, str(tmp_path / "o")).written == 1


def test_bad_records_are_named(tmp_path, image_factory):
    good = image_factory("good.png", 10, 10)
    text = tmp_path / "text.jpg"
    text.write_bytes(b"this is not an image")
    jpeg = image_factory("whole.jpg", 64, 64, image_format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(open(jpeg, "rb").read()[:300])
    missing = str(tmp_path / "missing.png")
    cases = [
        (record(missing), "missing_file", f"record 0 ({missing}): image file does not exist; check image_path"),
        (record(str(tmp_path)), "unreadable_file",
         f"record 0 ({tmp_path}): image_path is a directory, not an image file"),
        (record(str(text)), "undecodable_image",
         f"record 0 ({text}): the file is not a decodable image (not a format Pillow recognises)"),
        (record(str(truncated)), "undecodable_image",
         f"record 0 ({truncated}): the file is not a decodable image ({pillow_error(truncated)})"),
        ({"bboxes": [], "labels": []}, "malformed_record", "record 0: missing key(s) image_path"),
        ({"image_path": good, "bboxes": []}, "malformed_record", f"record 0 ({good}): missing key(s) labels"),
        ({"image_path": good}, "malformed_record", f"record 0 ({good}): missing key(s) bboxes, labels"),
        ({"image_path": good, "bboxes": "0 0 5 5", "labels": []}, "malformed_record",
         f"record 0 ({good}): bboxes and labels must be lists"),
        ({"image_path": good, "bboxes": [], "labels": {"id": 0}}, "malformed_record",
         f"record 0 ({good}): bboxes and labels must be lists"),
        ({"image_path": good, "bboxes": [[0, 0, 5, 5]], "labels": [{"id": 0}]}, "malformed_record",
         f"record 0 ({good}): label 0 is {{'id': 0}}; expected {{'id': int, 'name': str}}"),
        (record(good, [(0, 0, 5, 5)], [(0, "")]), "malformed_record",
         f"record 0 ({good}): label 0 name '' is not a non-empty string"),
        ({"image_path": 17, "bboxes": [], "labels": []}, "malformed_record",
         "record 0: image_path must be a string, got 17"),
        ("a string", "malformed_record", "record 0: expected a dict with image_path, bboxes and labels, got str"),
        (record(good, [(0, 0, 5, 5)], []), "malformed_record",
         f"record 0 ({good}): 1 bboxes but 0 labels; give one label per box"),
        ({"image_path": good, "bboxes": [[0, 0, 5, 5]], "labels": [3]}, "malformed_record",
         f"record 0 ({good}): label 0 is 3; expected {{'id': int, 'name': str}}"),
        (record(good, [(0, 0, 5, 5)], [(5, "cat")]), "label_out_of_range",
         f"record 0 ({good}): label 0 ('cat') has id 5, outside 0 <= id < 3; "
         f"map class ids to 0-based ids or raise num_classes"),
        (record(good, [(0, 0, 5, 5)], [(-1, "cat")]), "label_out_of_range",
         f"record 0 ({good}): label 0 ('cat') has id -1, outside 0 <= id < 3"),
        (record(good, [(0, 0, 5, 5)], [(1.0, "cat")]), "malformed_record",
         f"record 0 ({good}): label 0 id 1.0 is not an integer"),
    ]
    for bad, code, message in cases:
        with pytest.raises(RecordError) as error:
            convert_dataset_to_tfrecord([bad], 1, str(tmp_path / "out"), num_classes=3)
        assert error.value.code == code
        assert str(error.value).startswith(message), (str(error.value), message)


def pillow_error(path):
    """What Pillow itself says when it fully decodes ``path``: the reference for the converter's message."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # noqa: BLE001 (whatever Pillow raises is the expected text)
        return f"{type(error).__name__}: {error}"
    raise AssertionError(f"{path} decodes; the test needs a corrupt file")


@pytest.mark.parametrize("size,box,flagged", [
    ((3, 3), (0, 0, 1, 1), True),  # a 3-pixel side is the smallest image whose unit boxes look normalised
    ((2, 2), (0, 0, 1, 1), False),  # on a 2x2 image a 1-pixel box is a plausible pixel box
    ((100, 200), (0, 0, 1, 1), True),  # a coordinate of exactly 1.0 is still inside [0, 1]
    ((100, 200), (0, 0, 1, 1.5), False),  # one coordinate past 1.0 means pixels
])
def test_normalised_box_check_boundaries(tmp_path, image_factory, size, box, flagged):
    path = image_factory("a.png", *size)
    records = [record(path, [box], [(0, "cat")])]
    if flagged:
        with pytest.raises(RecordError) as error:
            convert_dataset_to_tfrecord(records, 1, str(tmp_path / "out"))
        assert error.value.code == "box_looks_normalised"
    else:
        assert convert_dataset_to_tfrecord(records, 1, str(tmp_path / "out")).written == 1


def test_encode_record_default_source_id_is_the_index(image_factory):
    encoded = encode_record(7, record(image_factory("a.png", 10, 10)), num_classes=None)
    assert encoded.source_id == "7"
    example = tf.train.Example.FromString(encoded.serialized)
    assert example.features.feature[features.SOURCE_ID].bytes_list.value[0] == b"7"


def test_label_conflicts_name_the_earlier_record(tmp_path, image_factory):
    a = image_factory("a.png", 10, 10)
    records = [record(a, [(0, 0, 5, 5)], [(0, "cat")]), record(a, [(0, 0, 5, 5)], [(0, "dog")])]
    with pytest.raises(RecordError) as error:
        convert_dataset_to_tfrecord(records, 1, str(tmp_path / "one"))
    assert str(error.value) == (f"record 1 ({a}): label id 0 is named 'dog' here but 'cat' in record 0 ({a}); "
                                f"one id must have one name")
    records[1] = record(a, [(0, 0, 5, 5)], [(1, "cat")])
    with pytest.raises(RecordError, match="label name 'cat' has id 1 here but id 0 in record 0"):
        convert_dataset_to_tfrecord(records, 1, str(tmp_path / "two"))


def test_eval_split_is_checked_against_the_train_label_map(tmp_path, image_factory):
    a = image_factory("a.png", 10, 10)
    out = str(tmp_path / "span")
    convert_dataset_to_tfrecord([record(a, [(0, 0, 5, 5)], [(0, "cat")])], 1, out, prefix="train")
    with pytest.raises(RecordError, match=r"'dog' here but 'cat' in .*label_map.json, the ids this folder's other "
                                          r"splits use; one id must have one name"):
        convert_dataset_to_tfrecord([record(a, [(0, 0, 5, 5)], [(0, "dog")])], 1, out, prefix="eval")


def test_a_failed_conversion_leaves_no_shards(tmp_path, image_factory):
    good = image_factory("a.png", 10, 10)
    out = tmp_path / "out"
    with pytest.raises(RecordError):
        convert_dataset_to_tfrecord([record(good), record(str(tmp_path / "nope.png"))], 2, str(out))
    assert os.listdir(out) == []


def test_skip_mode_reports_every_rejection_and_counts_add_up(tmp_path, image_factory):
    good = image_factory("a.png", 100, 200)
    records = [
        record(good, [(10, 10, 20, 20)], [(0, "cat")]),
        record(str(tmp_path / "missing.png")),
        record(good, [(50, 10, 20, 40)], [(0, "cat")]),
        record(good),
        record(good, [(10, 10, 20, 20)], [(0, "dog")]),
        record(good, [(10, 10, 20, 20)], [(7, "eel")]),
    ]
    out = str(tmp_path / "out")
    report = convert_dataset_to_tfrecord(records, 2, out, num_classes=3, on_error="skip", prefix="train")
    assert (report.records_seen, report.written, report.rejected) == (6, 2, 4)
    assert report.records_seen == report.written + report.rejected
    assert [(r.index, r.code) for r in report.rejections] == [
        (1, "missing_file"), (2, "box_inverted"), (4, "label_conflict"), (5, "label_out_of_range")]
    assert report.rejected_by_reason == {"missing_file": 1, "box_inverted": 1, "label_conflict": 1,
                                         "label_out_of_range": 1}
    with open(os.path.join(out, "train-report.json")) as handle:
        saved = json.load(handle)
    assert saved["rejected"] == 4 and saved["rejections"][2]["message"].startswith("record 4 (")
    assert saved["label_map"] == {"0": "cat"}
    assert len(read_examples(os.path.join(out, "train-*.tfrecord"))) == 2


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip', got 'ignore'"):
        convert_dataset_to_tfrecord([], 1, str(tmp_path), on_error="ignore")
    with pytest.raises(ValueError, match="num_shards must be a positive integer, got 0"):
        convert_dataset_to_tfrecord([], 0, str(tmp_path))


def test_exif_orientation_is_applied_so_boxes_drawn_on_the_upright_photo_fit(tmp_path):
    from PIL import Image

    # a phone photo stored 40 high x 100 wide with orientation 6: it is shown 100 high x 40 wide
    upright = np.zeros((100, 40, 3), np.uint8)
    upright[70:90, 5:25] = (255, 255, 255)  # the object, where the person drawing the box saw it
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / "phone.jpg")
    stored.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    assert Image.open(path).size == (100, 40)
    report = convert_dataset_to_tfrecord([record(path, [(70, 5, 90, 25)], [(0, "box")])], 1, str(tmp_path / "out"))
    assert (report.written, report.reoriented) == (1, [0])
    (example,) = read_examples(str(tmp_path / "out" / "*.tfrecord"))
    assert example["image"].shape == (100, 40, 3) and tuple(example["original_size"]) == (100, 40)
    np.testing.assert_allclose(example["bboxes"], [[0.7, 0.125, 0.9, 0.625]], atol=1e-6)
    inside = example["image"][72:88, 7:23].mean()
    outside = example["image"][10:60].mean()
    assert inside > 0.9 and outside < 0.1  # the box lies on the object
    # still a JPEG (a PNG would multiply the size), at quality 95: Pillow's quality-95 quantisation tables
    (raw,) = read_records(str(tmp_path / "out" / "*.tfrecord"))
    stored_feature = tf.train.Example.FromString(raw).features.feature
    encoded = stored_feature["image/encoded"].bytes_list.value[0]
    assert stored_feature["image/format"].bytes_list.value == [b"jpeg"] and encoded[:2] == b"\xff\xd8"
    reference = io.BytesIO()
    Image.fromarray(upright).save(reference, format="JPEG", quality=95)
    assert Image.open(io.BytesIO(encoded)).quantization == Image.open(reference).quantization


def test_an_orientation_outside_exifs_eight_is_left_alone(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 9  # EXIF defines 1-8; a camera writing 9 says nothing about how to turn the picture
    path = str(tmp_path / "odd.jpg")
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(path, format="JPEG", exif=exif.tobytes())
    report = convert_dataset_to_tfrecord([record(path, [(2, 2, 10, 10)], [(0, "box")])], 1, str(tmp_path / "out"))
    assert (report.written, report.reoriented) == (1, [])
    (raw,) = read_records(str(tmp_path / "out" / "*.tfrecord"))
    with open(path, "rb") as handle:  # the file's own bytes, not a re-encoding
        assert tf.train.Example.FromString(raw).features.feature["image/encoded"].bytes_list.value == [handle.read()]


def test_a_mirrored_png_is_stored_upright_and_lossless(tmp_path):
    from PIL import Image

    upright = np.random.RandomState(0).randint(0, 256, (30, 50, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 2  # mirrored left to right
    path = str(tmp_path / "scan.png")
    Image.fromarray(upright[:, ::-1]).save(path, format="PNG", exif=exif.tobytes())
    report = convert_dataset_to_tfrecord([record(path, [(5, 5, 20, 30)], [(0, "box")])], 1, str(tmp_path / "out"))
    assert report.reoriented == [0]
    (example,) = read_examples(str(tmp_path / "out" / "*.tfrecord"))
    np.testing.assert_array_equal(np.round(example["image"] * 255).astype(np.uint8), upright)  # still PNG: exact


def test_coordinates_too_large_for_a_float_are_not_finite(tmp_path, image_factory):
    path = image_factory("a.png", 10, 10)
    records = [record(path, [(0, 0, 10**400, 5)], [(0, "cat")]), record(path)]
    with pytest.raises(RecordError) as error:
        convert_dataset_to_tfrecord(records, 1, str(tmp_path / "raise"))
    assert (error.value.index, error.value.image_path, error.value.code) == (0, path, "box_not_finite")
    assert str(error.value) == f"record 0 ({path}): box 0 has a coordinate too large for a float; boxes are pixel " \
                               "coordinates"
    report = convert_dataset_to_tfrecord(records, 1, str(tmp_path / "skip"), on_error="skip")
    assert (report.records_seen, report.written, report.rejected_by_reason) == (2, 1, {"box_not_finite": 1})


def test_duplicate_paths_and_source_ids_are_reported(tmp_path, image_factory):
    a, b = image_factory("a.png", 10, 10), image_factory("b.png", 10, 10)
    records = [dict(record(a), source_id="x"), dict(record(b), source_id="x"), record(a)]
    report = convert_dataset_to_tfrecord(records, 1, str(tmp_path / "out"))
    assert report.written == 3
    assert report.duplicate_images == {a: [0, 2]} and report.duplicate_source_ids == {"x": [0, 1]}
    with open(tmp_path / "out" / "data-report.json") as handle:
        assert json.load(handle)["duplicate_images"] == {a: [0, 2]}
