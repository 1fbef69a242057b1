import json
import os

import numpy as np

from tfdet.dataio.synthetic import CLASSES, generate_default_dataset, synthesize_image


def test_same_seed_same_image_and_boxes():
    first = synthesize_image(np.random.RandomState(7))
    second = synthesize_image(np.random.RandomState(7))
    assert np.array_equal(np.asarray(first[0]), np.asarray(second[0]))
    assert first[1:] == second[1:]


def test_images_are_varied_and_boxes_frame_their_objects():
    rng = np.random.RandomState(0)
    sizes, counts, classes, widths, aspects = set(), [], set(), [], []
    for _ in range(120):
        image, boxes, labels = synthesize_image(rng)
        width, height = image.size
        sizes.add((height, width))
        counts.append(len(boxes))
        classes.update(labels)
        for y0, x0, y1, x1 in boxes:
            assert 0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width
            widths.append(x1 - x0)
            aspects.append((x1 - x0) / (y1 - y0))
    assert classes == set(range(len(CLASSES)))
    assert 0 in counts and max(counts) >= 5  # empty images and crowded ones
    assert len(sizes) > 50
    assert min(widths) <= 16 and max(widths) >= 120  # small and large objects
    assert min(aspects) < 0.6 and max(aspects) > 1.6


def test_default_dataset_layout_and_reuse(tmp_path):
    spans = generate_default_dataset(str(tmp_path), spans=(1, 2), num_train=10, num_eval=4, num_shards=2)
    span_dir = spans[2]
    files = sorted(os.listdir(span_dir))
    assert files == ["eval-00000-of-00002.tfrecord", "eval-00001-of-00002.tfrecord", "eval-report.json",
                     "label_map.json", "manifest.json", "train-00000-of-00002.tfrecord",
                     "train-00001-of-00002.tfrecord", "train-report.json"]
    with open(os.path.join(span_dir, "train-report.json")) as handle:
        report = json.load(handle)
    assert report["records_seen"] == report["written"] == 10 and report["rejected"] == 0
    with open(os.path.join(span_dir, "label_map.json")) as handle:
        assert set(json.load(handle).values()) <= set(CLASSES)
    shard = os.path.join(span_dir, "train-00000-of-00002.tfrecord")
    before = os.path.getmtime(shard)
    generate_default_dataset(str(tmp_path), spans=(2,), num_train=10, num_eval=4, num_shards=2)
    assert os.path.getmtime(shard) == before  # identical arguments: reused
    first = open(os.path.join(spans[1], "train-00000-of-00002.tfrecord"), "rb").read()
    assert first != open(shard, "rb").read()  # spans draw different images
