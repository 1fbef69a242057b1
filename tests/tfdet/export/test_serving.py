"""tfdet/export/serving.py: which versions of a serving directory count -- whole ones only, by number."""

import os

from tfdet.export.serving import is_complete, latest_version, versions


def make_version(root, name, pb=True, index=True):
    path = os.path.join(root, name)
    os.makedirs(os.path.join(path, "variables"))
    if pb:
        open(os.path.join(path, "saved_model.pb"), "w").close()
    if index:
        open(os.path.join(path, "variables", "variables.index"), "w").close()
    return path


def test_only_whole_numbered_versions_count_ordered_by_number(tmp_path):
    root = str(tmp_path / "serving")
    v2, v10 = make_version(root, "2"), make_version(root, "10")  # 10 after 2: numbers, not strings
    make_version(root, "11", pb=False)  # a push cut short before saved_model.pb
    make_version(root, "12", index=False)  # variables not there yet
    make_version(root, "latest")  # not a version number
    make_version(root, "14X")  # nor is a number with a letter after it
    os.makedirs(os.path.join(root, "13"))  # an empty folder
    assert versions(root) == [v2, v10]
    assert latest_version(root) == v10
    assert is_complete(v2) and not is_complete(os.path.join(root, "11")) and not is_complete(os.path.join(root, "12"))


def test_an_empty_missing_or_unset_serving_directory_serves_nothing(tmp_path):
    assert versions(str(tmp_path / "nowhere")) == [] and latest_version(str(tmp_path / "nowhere")) is None
    assert latest_version("") is None and latest_version(None) is None
    os.makedirs(tmp_path / "empty")
    assert latest_version(str(tmp_path / "empty")) is None


def test_directory_names_with_a_trailing_slash_count_as_their_number(tmp_path, monkeypatch):
    import tensorflow as tf

    # gfile lists a gs:// directory as "10/"; no bucket here, so the local listing is given GCS's shape
    local_listdir = tf.io.gfile.listdir
    monkeypatch.setattr(tf.io.gfile, "listdir", lambda path: [name + "/" for name in local_listdir(path)])
    root = str(tmp_path / "serving")
    v9, v10 = make_version(root, "9"), make_version(root, "10")
    assert versions(root) == [v9, v10] and latest_version(root) == v10
