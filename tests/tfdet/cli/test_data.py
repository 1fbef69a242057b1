import glob

import tensorflow as tf

from tfdet.cli import inspect_records, main
from tfdet.dataio import features


def read_examples(pattern):
    return [tf.train.Example.FromString(r).features.feature
            for r in tf.data.TFRecordDataset(sorted(glob.glob(pattern))).as_numpy_iterator()]


def test_generate_then_inspect(tmp_path, capsys):
    root = str(tmp_path)
    assert main(["generate", "--root", root, "--num-train", "12", "--num-eval", "4", "--num-unlabelled", "3"]) == 0
    assert f"span 1: {root}/default/span-1" in capsys.readouterr().out
    unlabelled = read_examples(f"{root}/default/span-1/unlabelled-*.tfrecord")
    assert len(unlabelled) == 3 and all(not f[features.YMIN].float_list.value for f in unlabelled)
    summary = inspect_records(f"{root}/default/span-1/train-*.tfrecord", size=64, batch_size=4)
    assert summary["examples"] == 12
    assert summary["first_batch"]["image"] == [4, 64, 64, 3]
    assert set(summary["boxes_per_class"]) <= {"rectangle", "ellipse", "triangle", "cross", "ring"}
    assert main(["inspect", f"{root}/default/span-1/eval-*.tfrecord", "--size", "64"]) == 0
    assert "eval-*.tfrecord: 4 images" in capsys.readouterr().out


def test_inspect_without_files_is_a_clear_error(tmp_path, capsys):
    assert main(["inspect", f"{tmp_path}/none-*.tfrecord"]) == 2
    assert "tfdet inspect: error: InputReadRecordFiles: no files match" in capsys.readouterr().err


def test_convert_images_writes_every_image_without_boxes(tmp_path, capsys, image_factory):
    photos = tmp_path / "photos"
    (photos / "later").mkdir(parents=True)
    image_factory(str(photos / "b.png"), 30, 40)
    image_factory(str(photos / "later" / "a.jpg"), 20, 50, image_format="JPEG")
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "span-2"
    assert main(["convert", "images", "--images", str(photos), "--output", str(out), "--prefix", "unlabelled",
                 "--num-shards", "1"]) == 0
    assert "images: 2 files without annotations" in capsys.readouterr().out
    found = read_examples(f"{out}/unlabelled-*.tfrecord")
    assert sorted(f[features.SOURCE_ID].bytes_list.value[0].decode() for f in found) == ["b.png", "later/a.jpg"]
    assert [len(f[features.LABEL].int64_list.value) for f in found] == [0, 0]
    assert sorted((f[features.HEIGHT].int64_list.value[0], f[features.WIDTH].int64_list.value[0])
                  for f in found) == [(20, 50), (30, 40)]
    (tmp_path / "empty").mkdir()
    assert main(["convert", "images", "--images", str(tmp_path / "empty"), "--output", str(out),
                 "--prefix", "unlabelled"]) == 2
    assert capsys.readouterr().err == f"tfdet convert: error: no .jpg, .jpeg, .png files below " \
                                      f"'{tmp_path / 'empty'}'\n"
