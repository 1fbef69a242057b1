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
    with pytest.raises(SystemExit) as stopped:  # the prefix decides whether the pipeline reads the files
        main(["convert", "voc", "--root", voc_root, "--output", out])
    assert stopped.value.code == 2 and "the following arguments are required: --prefix" in capsys.readouterr().err
    assert main(["convert", "voc", "--root", voc_root, "--output", out, "--prefix", "train", "--num-shards", "1"]) == 0
    assert "records seen 2: written 2, rejected 0 (3 boxes in 1 shards" in capsys.readouterr().out
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"image_path": str(tmp_path / "gone.jpg"), "bboxes": [], "labels": []}) + "\n")
    assert main(["convert", "records", "--input", str(records), "--output", out, "--prefix", "eval"]) == 2
    assert "tfdet convert: error: record 0 (" in capsys.readouterr().err
    assert main(["convert", "records", "--input", str(records), "--output", out, "--prefix", "eval",
                 "--on-error", "skip"]) == 1
    printed = capsys.readouterr()
    assert "records seen 1: written 0, rejected 1" in printed.out and "rejected     1  missing_file" in printed.out
    assert printed.err.endswith(f"tfdet convert: error: nothing was written (all 1 records were rejected); no "
                                f"shard was made in {out}. Fix the input using the report above and convert "
                                f"again\n")
    assert not [name for name in os.listdir(out) if name.startswith("eval-") and ".tfrecord" in name]  # train stays


def test_coco_file_names_that_escape_the_image_folder_are_refused(tmp_path, coco_files, image_factory):
    annotations, images = coco_files
    secret = image_factory("secret.jpg", 10, 10, image_format="JPEG")
    coco = json.loads(open(annotations).read())
    for name in ("../secret.jpg", secret):
        coco["images"][0]["file_name"] = name
        path = tmp_path / "hostile.json"
        path.write_text(json.dumps(coco))
        with pytest.raises(ValueError) as error:
            load_coco_records(str(path), images)
        assert str(error.value) == (
            f"{path}: image 2: image file {name!r} lies outside the image folder {images}; move the image into it, "
            f"or allow it explicitly (allow_outside=True, --allow-outside-images) if the annotations are trusted")
    records, _, _ = load_coco_records(str(path), images, allow_outside=True)
    assert records[1]["image_path"] == secret


def test_coco_annotations_without_an_image_are_counted_not_dropped_silently(tmp_path, coco_files):
    annotations, images = coco_files
    coco = json.loads(open(annotations).read())
    coco["annotations"] += [{"id": 20, "image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5]},
                            {"id": 21, "image_id": 98, "category_id": 1, "bbox": [0, 0, 5, 5]}]
    path = tmp_path / "orphans.json"
    path.write_text(json.dumps(coco))
    _, _, summary = load_coco_records(str(path), images)
    assert summary.skipped_boxes == {"crowd": 1, "no_area": 1, "no_image": 2}
    assert summary.skipped_ids["no_image"] == ["20", "21"]
    total = len(coco["annotations"])
    assert summary.boxes + sum(summary.skipped_boxes.values()) == total  # every annotation accounted for


@pytest.mark.parametrize("content,message", [
    ("", r"orphans.json: not valid JSON \(Expecting value: line 1 column 1 \(char 0\)\); is it a COCO instances"),
    ("[1, 2]", "orphans.json: not a COCO instances file, its top level is a list"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 5}], "annotations": [], "categories": []}),
     "orphans.json: image 1 lacks 'height'"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 5, "height": 5}], "categories": [],
                 "annotations": [{"id": 7, "image_id": 1, "category_id": 1}]}),
     "orphans.json: annotation 7 of image 1 lacks 'bbox'"),
])
def test_broken_coco_files_are_named(tmp_path, content, message):
    path = tmp_path / "orphans.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_coco_records(str(path), str(tmp_path))


def test_voc_hostile_and_broken_xml_is_named(voc_root):
    annotations = os.path.join(voc_root, "Annotations")
    cases = {
        "broken": ("<annotation><filename>a.jpg</filename>", r"broken.xml: not well-formed XML \(no element found"),
        "bomb": ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
                 "<annotation><filename>&lol2;</filename></annotation>",
                 r"bomb.xml: refused: .*VOC annotations need no entities or DTDs"),
        "escape": ("<annotation><filename>../../../etc/hostname</filename></annotation>",
                   r"escape.xml: image file '../../../etc/hostname' lies outside the image folder"),
        "nan": ("<annotation><filename>a.jpg</filename><object><name>cat</name><bndbox><xmin>1</xmin><ymin>x</ymin>"
                "<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>",
                r"nan.xml: object 0 has <ymin>x</ymin>, not a number"),
    }
    for name, (text, message) in cases.items():
        path = os.path.join(annotations, f"{name}.xml")
        with open(path, "w") as handle:
            handle.write(text)
        with pytest.raises(ValueError, match=message):
            load_voc_records(voc_root)
        os.remove(path)


def test_voc_eval_split_without_classes_reuses_the_train_ids(tmp_path, voc_root, capsys):
    out = str(tmp_path / "out")
    # train has cat and dog; the eval split (b only) has cat alone: without --classes it must keep cat = 0, dog = 1
    assert main(["convert", "voc", "--root", voc_root, "--output", out, "--prefix", "train", "--num-shards", "1"]) == 0
    assert main(["convert", "voc", "--root", voc_root, "--split", "train", "--output", out, "--prefix", "eval",
                 "--num-shards", "1"]) == 0
    assert "classes from " in capsys.readouterr().out
    with open(os.path.join(out, "label_map.json")) as handle:
        assert json.load(handle) == {"0": "cat", "1": "dog"}
    write_voc(tmp_path / "VOC", "c", "a.jpg", [("eel", (1, 1, 5, 5), False)])
    assert main(["convert", "voc", "--root", voc_root, "--output", out, "--prefix", "more"]) == 2
    assert ("object class 'eel' is not in class_names ['cat', 'dog']; pass every class name in id order (tfdet "
            "convert voc --classes a,b,c)") in capsys.readouterr().err
