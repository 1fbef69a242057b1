"""The pipeline on an output root whose disk fills up -- during the Trainer's checkpoints, then during the push --
``make test-slow``.

The output root is a tmpfs of its own (mounted here, always unmounted); tests/pipeline/filling_runner.py fills it to
the last byte at the chosen moment. Each time: the run fails with one line naming the path and the free space, the
served version is untouched and complete, MLMD's database still opens, and once the space is freed the next run
completes and pushes.
"""

import hashlib
import os
import subprocess
import sys

import pytest
from learnable_data import write_span  # tests/ is on the path (its conftest)

from pipeline.configs import output_layout
from pipeline.operations.failures import check_metadata
from pipeline.operations.served import lineage
from tfdet.export.serving import is_complete, versions

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
# the disk, not the blessing, is under test: every trained candidate is pushed
ARGS = ["--model-config", "tiny", "--num-classes", "2", "--train-steps", "40", "--min-map50", "0", "--max-map50-drop",
        "1", "--max-class-ap50-drop", "1", "--seed", "0", "--beam", "in-memory"]


@pytest.fixture
def small_disk(tmp_path):
    """A 512 MB tmpfs as the output root, unmounted afterwards whatever happens."""
    root = tmp_path / "out"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tfdet-full-disk-test", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def run(data_root, output_root, moment=None):
    wrapper = [os.path.join(HERE, "filling_runner.py"), moment, str(output_root / "filler")] if moment else [
        "-m", "pipeline.local_runner"]
    return subprocess.run([sys.executable, *wrapper, "--data-root", str(data_root), "--output-root", str(output_root),
                           *ARGS], cwd=REPO, capture_output=True, text=True, timeout=1800)


def digest(version_dir):
    found = hashlib.sha256()
    for directory, dirs, names in sorted(os.walk(version_dir)):
        dirs.sort()
        for name in sorted(names):
            found.update(name.encode() + open(os.path.join(directory, name), "rb").read())
    return found.hexdigest()


def full_disk_line(ran, output_root):
    (line,) = [line for line in ran.stderr.splitlines() if line.startswith("error: the disk is full")]
    assert "Traceback" not in ran.stderr and "Traceback" not in ran.stdout, ran.stderr[-3000:]
    assert f"no space left on device writing {output_root}/" in line
    assert " MB free of 512.0 MB there): free some space or choose another --output-root, then rerun (the served " \
           "model is unchanged)" in line
    return line


def still_whole(served, serving_dir, metadata_path):
    """The served version is the same, complete and alone among the numbered folders; MLMD opens and reads."""
    assert versions(serving_dir) == [path for path, _ in served]
    assert all(is_complete(path) and digest(path) == hashed for path, hashed in served)
    assert sorted(name for name in os.listdir(serving_dir) if name.isdigit()) == [
        os.path.basename(path) for path, _ in served]
    check_metadata(metadata_path)
    assert [entry["path"] for entry in lineage(metadata_path, serving_dir)] == [p for p, _ in reversed(served)]


@pytest.mark.long(12)
@pytest.mark.timeout(3600)
def test_a_full_disk_in_training_and_in_the_push_leaves_the_served_model_whole(small_disk, tmp_path):
    output_root, data_root = small_disk, tmp_path / "data"
    layout = output_layout(str(output_root))
    serving_dir, metadata_path = layout["serving_model_dir"], layout["metadata_path"]
    write_span(str(data_root), 1)
    ran = run(data_root, output_root)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    (first,) = versions(serving_dir)
    served = [(first, digest(first))]

    write_span(str(data_root), 2)  # the disk fills as the Trainer writes its first checkpoint
    ran = run(data_root, output_root, "checkpoint")
    assert ran.returncode == 1
    line = full_disk_line(ran, output_root)
    assert "/Trainer/" in line, line
    still_whole(served, serving_dir, metadata_path)
    os.remove(output_root / "filler")
    ran = run(data_root, output_root)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    second = versions(serving_dir)[-1]
    served.append((second, digest(second)))
    still_whole(served, serving_dir, metadata_path)

    write_span(str(data_root), 3)  # the disk fills as the Pusher copies the model into the serving directory
    ran = run(data_root, output_root, "push")
    assert ran.returncode == 1
    line = full_disk_line(ran, output_root)
    assert f"writing {serving_dir}/.tfdet-push-" in line, line
    still_whole(served, serving_dir, metadata_path)
    assert sorted(os.listdir(serving_dir)) == sorted(os.path.basename(path) for path, _ in served)  # the cut copy too
    os.remove(output_root / "filler")
    ran = run(data_root, output_root)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    third = versions(serving_dir)[-1]
    assert third not in dict(served) and is_complete(third)
    still_whole(served + [(third, digest(third))], serving_dir, metadata_path)
