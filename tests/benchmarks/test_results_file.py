"""A benchmark's results file is replaced whole or not at all: trees.py saves hours of trainings as it goes."""

import json
import os

import pytest
import tensorflow as tf

from benchmarks import report


def test_a_save_cut_short_keeps_the_old_results_and_leaves_no_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", str(tmp_path))
    monkeypatch.setattr(report, "STARTED", {"commit": "abc1234"})
    path = report.save("state.json", {"runs": {"seed0": 0.5}}, show=False)
    assert path == str(tmp_path / "state.json")
    saved = json.load(open(path))
    assert saved["runs"] == {"seed0": 0.5} and saved["measured"]["commit"] == "abc1234"
    written = tf.io.gfile.GFile.write

    def cut_short(handle, text):  # half the file reaches the disk, then the process is stopped
        written(handle, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.io.gfile.GFile, "write", cut_short)
    with pytest.raises(KeyboardInterrupt):
        report.save("state.json", {"runs": {"seed0": 0.5, "seed1": 0.6}}, show=False)
    assert json.load(open(path))["runs"] == {"seed0": 0.5}
    assert os.listdir(tmp_path) == ["state.json"]
