import json
import os

import numpy as np
import pytest

from tfdet.cli import main
from tfdet.dataio.importers import load_coco_records, load_voc_records
from tfdet.dataio.pipeline import pipeline


@pytest.fixture
def coco_files(tmp_path, image_factory):
    os.makedirs(tmp_path / "images")
    image_factory("images/1.jpg", 100, 200, image_format="JPEG")
    image_factory("images/2.jpg", 50, 50, image_format="JPEG")
    coco = {
        "images": [{"id": 2, "file_name": "2.jpg", "height": 50, "width": 50},
                   {"id": 1, "file_name": "1.jpg", "height": 100, "width": 200}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 18, "bbox": [40.0, 20.0, 80.0, 40.0], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [150.5, 90.0, 50.0, 10.4], "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 3, "bbox": [0, 0, 30, 30], "iscrowd": 1},
            {"id": 13, "image_id": 1, "category_id": 3, "bbox": [5, 5, 0, 10], "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return str(path), str(tmp_path / "images")


def test_coco_ids_become_0_based_and_boxes_y_first(coco_files):
    records, label_map, summary = load_coco_records(*coco_files)
    assert label_map == {0: "person", 1: "car", 2: "dog"}  # by increasing COCO id: 1, 3, 18
    assert [r["source_id"] for r in records] == ["1", "2"]
    first = records[0]
    # [x, y, w, h] = [40, 20, 80, 40] -> [y, x, y + h, x + w]; the second overhangs x = 200.5 -> clipped to 200
    np.testing.assert_allclose(first["bboxes"], [[20, 40, 60, 120], [90, 150.5, 100, 200]])
    assert first["labels"] == [{"id": 2, "name": "dog"}, {"id": 0, "name": "person"}]
    assert records[1]["bboxes"] == [] and records[1]["labels"] == []
    assert (summary.images, summary.boxes, summary.skipped_boxes) == (2, 2, {"crowd": 1, "no_area": 1})


def test_coco_crowd_boxes_can_be_kept(coco_files):
    records, _, summary = load_coco_records(*coco_files, include_crowd=True)
    assert len(records[0]["bboxes"]) == 3 and summary.skipped_boxes == {"no_area": 1}


def test_not_a_coco_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"x.json: not a COCO instances file, it has no 'annotations' list"):
        load_coco_records(str(path), str(tmp_path))


def test_cli_converts_coco_and_records_the_full_label_map(tmp_path, coco_files, capsys):
    out = str(tmp_path / "out")
    annotations, images = coco_files
    code = main(["convert", "coco", "--annotations", annotations, "--images", images, "--output", out,
                 "--prefix", "train", "--num-shards", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "COCO: 2 images, 2 boxes, left out {'crowd': 1, 'no_area': 1}" in printed
    assert "records seen 2: written 2, rejected 0" in printed
    with open(os.path.join(out, "label_map.json")) as handle:
        assert json.load(handle) == {"0": "person", "1": "car", "2": "dog"}
    examples = list(pipeline([dict(name="InputReadRecordFiles", pattern_file=f"{out}/train-*.tfrecord")],
                             deterministic=True).as_numpy_iterator())
    np.testing.assert_allclose(examples[0]["bboxes"], [[0.2, 0.2, 0.6, 0.6], [0.9, 0.7525, 1.0, 1.0]], atol=1e-6)


def write_voc(root, name, filename, objects):
    body = "".join(
        f"<object><name>{cls}</name><difficult>{int(hard)}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for cls, b, hard in objects)
    (root / "Annotations" / f"{name}.xml").write_text(
        f"<annotation><filename>{filename}</filename><size><width>200</width><height>100</height>"
        f"<depth>3</depth></size>{body}</annotation>")


@pytest.fixture
def voc_root(tmp_path, image_factory):
    root = tmp_path / "VOC"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(root / sub)
    image_factory("VOC/JPEGImages/a.jpg", 100, 200, image_format="JPEG")
    image_factory("VOC/JPEGImages/b.jpg", 100, 200, image_format="JPEG")
    write_voc(root, "a", "a.jpg", [("dog", (40, 20, 120, 60), False), ("cat", (0, 0, 10, 10), True)])
    write_voc(root, "b", "b.jpg", [("cat", (100, 50, 200, 100), False)])
    (root / "ImageSets" / "Main" / "train.txt").write_text("b\n")
    return str(root)


def test_voc_reads_boxes_y_first_with_sorted_class_ids(voc_root):
    records, label_map, summary = load_voc_records(voc_root)
    assert label_map == {0: "cat", 1: "dog"}
    assert records[0]["bboxes"] == [[20, 40, 60, 120], [0, 0, 10, 10]]
    assert records[0]["labels"] == [{"id": 1, "name": "dog"}, {"id": 0, "name": "cat"}]
    assert records[0]["image_path"].endswith(os.path.join("JPEGImages", "a.jpg"))
    assert (summary.images, summary.boxes) == (2, 3)


def test_voc_split_difficult_and_explicit_classes(voc_root):
    records, label_map, _ = load_voc_records(voc_root, split="train", class_names=["bird", "cat", "dog"])
    assert [r["source_id"] for r in records] == ["b"] and label_map == {0: "bird", 1: "cat", 2: "dog"}
    assert records[0]["labels"] == [{"id": 1, "name": "cat"}]
    _, _, summary = load_voc_records(voc_root, include_difficult=False)
    assert summary.skipped_boxes == {"difficult": 1}
    with pytest.raises(ValueError, match=r"a.xml: object class 'dog' is not in class_names \['cat'\]"):
        load_voc_records(voc_root, class_names=["cat"])


def test_cli_voc_conversion_and_error_exit(tmp_path, voc_root, capsys):
    out = str(tmp_path / "out")
    assert main(["convert", "voc", "--root", voc_root, "--output", out, "--num-shards", "1"]) == 0
    assert "records seen 2: written 2, rejected 0 (3 boxes in 1 shards" in capsys.readouterr().out
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"image_path": str(tmp_path / "gone.jpg"), "bboxes": [], "labels": []}) + "\n")
    assert main(["convert", "records", "--input", str(records), "--output", out]) == 2
    assert "tfdet convert: error: record 0 (" in capsys.readouterr().err
    assert main(["convert", "records", "--input", str(records), "--output", out, "--on-error", "skip"]) == 1
    printed = capsys.readouterr()
    assert "records seen 1: written 0, rejected 1" in printed.out and "rejected     1  missing_file" in printed.out
    assert printed.err.endswith(f"tfdet convert: error: nothing was written (all 1 records were rejected); the "
                                f"shards in {out} are empty. Fix the input using the report above and convert "
                                f"again\n")
