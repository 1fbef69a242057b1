"""pipeline/operations/failures.py: what stops a run is one line naming the thing and the fix -- a data root without
spans, a class count the data disagrees with, a corrupt or locked metadata database, a full disk -- through the
runner's own exit status."""

import errno
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from pipeline.local_runner import main
from pipeline.operations.failures import PreflightError, check_data_root, check_metadata, data_classes, disk_full

PATTERNS = ("span-{SPAN}/train-*.tfrecord", "span-{SPAN}/eval-*.tfrecord")


def test_a_data_root_without_span_folders_names_the_root_and_the_layout(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000-of-00001.tfrecord").write_bytes(b"")  # converted without --out .../span-1
    with pytest.raises(PreflightError) as error:
        check_data_root(str(tmp_path / "data"), *PATTERNS)
    assert str(error.value) == (
        f"the data root {tmp_path}/data has no train files: the pipeline reads {tmp_path}/data/span-{{SPAN}}/train-"
        f"*.tfrecord (e.g. span-1/train-00000-of-00004.tfrecord), but it has no span-<N>/ folder and holds none; "
        f"convert with `tfdet convert ... --output {tmp_path}/data/span-1 --prefix train` or pass --train-pattern")
    (tmp_path / "data" / "span-1").mkdir()
    (tmp_path / "data" / "span-1" / "train-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(PreflightError, match=r"has no eval files: .* but its span folders \(span-1\) hold none"):
        check_data_root(str(tmp_path / "data"), *PATTERNS)
    (tmp_path / "data" / "span-1" / "eval-00000-of-00001.tfrecord").write_bytes(b"")
    check_data_root(str(tmp_path / "data"), *PATTERNS)
    with pytest.raises(PreflightError, match=r"^the data root .*/nowhere does not exist"):
        check_data_root(str(tmp_path / "nowhere"), *PATTERNS)
    check_data_root("gs://bucket/data", *PATTERNS)  # remote roots are ExampleGen's to read
    # through the runner: exit 2, one line, before anything slow
    assert main(["--data-root", str(tmp_path / "empty"), "--output-root", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: the data root {tmp_path}/empty does not exist")


def test_the_class_count_comes_from_the_newest_spans_label_map_and_a_flag_that_disagrees_stops_the_run(tmp_path,
                                                                                                       capsys):
    import json

    data = tmp_path / "data"
    for span, names in ((1, {"0": "cat", "1": "dog"}), (2, {"0": "cat", "1": "dog", "2": "eel"})):
        (data / f"span-{span}").mkdir(parents=True)
        for split in ("train", "eval"):
            (data / f"span-{span}" / f"{split}-00000-of-00001.tfrecord").write_bytes(b"")
        (data / f"span-{span}" / "label_map.json").write_text(json.dumps(names))
    assert data_classes(str(data), PATTERNS[0], None, 5) == (3, {0: "cat", 1: "dog", 2: "eel"})
    assert data_classes(str(data), PATTERNS[0], 3, 5)[0] == 3
    with pytest.raises(PreflightError) as error:
        data_classes(str(data), PATTERNS[0], 5, 5)
    assert str(error.value) == (
        f"--num-classes 5 but the data's label maps ({data}/span-2/label_map.json, {data}/span-1/label_map.json) "
        f"name 3 classes (0: cat, 1: dog, 2: eel): drop --num-classes to take the data's, or fix the label maps")
    (data / "span-2" / "label_map.json").write_text(json.dumps({"2": "eel"}))  # a span without cats or dogs
    assert data_classes(str(data), PATTERNS[0], None, 5) == (3, {0: "cat", 1: "dog", 2: "eel"})
    (data / "span-2" / "label_map.json").write_text(json.dumps({"1": "eel"}))
    with pytest.raises(PreflightError) as error:
        data_classes(str(data), PATTERNS[0], None, 5)
    assert str(error.value).startswith(f"class 1 is 'eel' in {data}/span-2/label_map.json but 'dog' in "
                                       f"{data}/span-1/label_map.json: one id must mean one class in every span")
    (data / "span-2" / "label_map.json").unlink()
    (data / "span-1" / "label_map.json").unlink()
    assert data_classes(str(data), PATTERNS[0], None, 5) == (5, {})  # no label map anywhere: the default
    assert data_classes(str(data), PATTERNS[0], 4, 5) == (4, {})
    # through the runner: exit 2, one line, before anything slow
    (data / "span-2" / "label_map.json").write_text(json.dumps({"0": "cat"}))
    assert main(["--data-root", str(data), "--output-root", str(tmp_path / "out"), "--num-classes", "2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --num-classes 2 but the data's label maps ")


def test_a_corrupt_or_locked_metadata_database_is_one_line(tmp_path):
    check_metadata(str(tmp_path / "absent.db"))  # a first run creates it
    good = tmp_path / "good.db"
    sqlite3.connect(good).execute("CREATE TABLE t (x)").connection.commit()
    check_metadata(str(good))
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database, it was overwritten" * 100)
    with pytest.raises(PreflightError) as error:
        check_metadata(str(corrupt))
    assert str(error.value) == (f"the pipeline's metadata database {corrupt} is not a readable SQLite database (file "
                                f"is not a database): move it aside and rerun (the served models stay; the run "
                                f"history starts anew)")
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); c.execute('BEGIN EXCLUSIVE'); print('held', flush=True); "
                               "time.sleep(60)", str(good)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PreflightError) as error:
            check_metadata(str(good))
        assert str(error.value) == (f"the pipeline's metadata database {good} is locked by another process (a "
                                    f"notebook or a tool holding it open?): close it and rerun")
    finally:
        holder.kill()
        holder.wait()


def test_a_full_disk_is_named_with_the_path_and_the_free_space(tmp_path):
    usage = shutil.disk_usage(tmp_path)
    path = str(tmp_path / "ckpt-3.data-00000-of-00001")
    found = disk_full(OSError(errno.ENOSPC, "No space left on device", path), str(tmp_path))
    assert found.startswith(f"the disk is full: no space left on device writing {path} (")
    free = float(found.split("(")[1].split(" MB free")[0])
    assert abs(free - usage.free / 2**20) < 64 and f"of {usage.total / 2**20:.1f} MB there)" in found
    assert found.endswith("free some space or choose another --output-root, then rerun (the served model is "
                          "unchanged)")
    # TensorFlow's own error, wrapped by the component that raised it: the path is read from the message
    try:
        try:
            raise RuntimeError(f"{tmp_path}/serving/.tfdet-push-1/variables/variables.data; No space left on device")
        except RuntimeError as cause:
            raise ValueError("the Trainer failed") from cause
    except ValueError as wrapped:
        assert f"writing {tmp_path}/serving/.tfdet-push-1/variables/variables.data (" in disk_full(wrapped, "/")
    # an outer full-disk error naming no file, over TensorFlow's op error whose first path is its device string:
    # the file under the output root is named, not the device or the root
    written = f"{tmp_path}/Trainer/ckpt/ckpt-1_temp/part-00000-of-00001.data-00000-of-00001.tempstate113"
    try:
        try:
            raise RuntimeError("{{function_node __wrapped__SaveV2_dtypes_3_device_/job:localhost/replica:0/task:0/"
                               f"device:CPU:0}}}} {written}; No space left on device [Op:SaveV2]")
        except RuntimeError as cause:
            raise OSError(errno.ENOSPC, "No space left on device") from cause
    except OSError as outer:
        assert f"writing {written} (" in disk_full(outer, str(tmp_path))
    # MLMD's own disk-full error over a bare OSError (TFX's record of the failure met the full disk too): the
    # folder of the component that was running
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("Error when executing query: database or disk is full query: UPDATE `Execution`")  # noqa: B904  (as TFX raises it: the context, not a cause)
    except RuntimeError as recorded:
        trainer = f"{tmp_path}/tfdet/Trainer/"
        assert f"writing {trainer} (" in disk_full(recorded, str(tmp_path), trainer)
        assert f"writing {tmp_path} (" in disk_full(recorded, str(tmp_path))
    assert disk_full(OSError(errno.EACCES, "Permission denied", path), str(tmp_path)) is None
    assert disk_full(ValueError("bad box"), str(tmp_path)) is None
    assert os.path.exists(tmp_path)
