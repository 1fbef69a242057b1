from tfdet.cli import inspect_records, main


def test_generate_then_inspect(tmp_path, capsys):
    root = str(tmp_path)
    assert main(["generate", "--root", root, "--num-train", "12", "--num-eval", "4"]) == 0
    assert f"span 1: {root}/default/span-1" in capsys.readouterr().out
    summary = inspect_records(f"{root}/default/span-1/train-*.tfrecord", size=64, batch_size=4)
    assert summary["examples"] == 12
    assert summary["first_batch"]["image"] == [4, 64, 64, 3]
    assert set(summary["boxes_per_class"]) <= {"rectangle", "ellipse", "triangle", "cross", "ring"}
    assert main(["inspect", f"{root}/default/span-1/eval-*.tfrecord", "--size", "64"]) == 0
    assert "eval-*.tfrecord: 4 images" in capsys.readouterr().out


def test_inspect_without_files_is_a_clear_error(tmp_path, capsys):
    assert main(["inspect", f"{tmp_path}/none-*.tfrecord"]) == 2
    assert "tfdet inspect: error: InputReadRecordFiles: no files match" in capsys.readouterr().err
