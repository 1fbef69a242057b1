"""The README's quickstart runs as written: its Python block and its shell block, in a fresh folder."""

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quickstart_blocks():
    text = open(os.path.join(REPO, "README.md")).read()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section, re.S | re.M)  # each match spans one fence pair
    python = [body for kind, body in blocks if kind == "python"]
    shell = [body for kind, body in blocks if not kind]
    assert len(python) == 1 and len(shell) == 1
    return python[0], shell[0]


def test_the_readme_is_short_and_has_both_commands():
    lines = open(os.path.join(REPO, "README.md")).read().splitlines()
    assert len(lines) <= 200 and "make run" in lines[8] + lines[9] and "make test" in lines[9] + lines[10]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_quickstart_runs_as_written(tmp_path):
    python, shell = quickstart_blocks()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    ran = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert re.search(r"^mAP@0\.5 0\.\d{3}$", ran.stdout, re.M) and "cpu_small" in ran.stdout
    commands = shell.replace("\\\n", " ").strip().splitlines()
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    assert os.path.exists(tmp_path / "predictions" / "000000.png") and os.path.exists(tmp_path / "cpu_small.tflite")
    assert os.path.exists(tmp_path / "runs" / "cpu_small" / "saved_model" / "label_map.json")
