"""The label map file: class id -> name, ``label_map.json`` beside the records, in a work dir and in a SavedModel.

The converter writes it beside the shards it makes, training copies it into the work dir, export saves it inside the
SavedModel, and everything that names classes (``tfdet predict`` drawings, evaluation, the pipeline's Trainer)
reads it back through :func:`read_label_map` / :func:`label_map_beside`.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional, Sequence, Union

LABEL_MAP_FILE = "label_map.json"


def label_map_path(directory: str) -> str:
    """``directory/label_map.json``."""
    return os.path.join(directory, LABEL_MAP_FILE)


def read_label_map(path: str) -> Dict[int, str]:
    """The label map in ``path`` (a ``label_map.json`` or a folder holding one, local or any file system TensorFlow
    reads, such as a served model on gs://); {} when there is none."""
    import tensorflow as tf

    if not path.endswith(".json"):
        path = label_map_path(path)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as handle:
        return {int(k): v for k, v in json.load(handle).items()}


def write_label_map(directory: str, names: Mapping[int, str]) -> str:
    """Writes ``names`` to ``directory/label_map.json`` (ids in order, atomically); returns its path."""
    from tfdet.files import write_json

    return write_json(label_map_path(directory), {str(k): v for k, v in sorted(names.items())})


def label_map_beside(pattern: Union[str, Sequence[str]]) -> Optional[Dict[int, str]]:
    """The label map the converter wrote beside the files of ``pattern`` (None when none of them has one)."""
    import glob

    parts = pattern.split(",") if isinstance(pattern, str) else list(pattern)
    for path in sorted(p for part in parts for p in glob.glob(part.strip())):
        found = read_label_map(os.path.dirname(path))
        if found:
            return found
    return None
