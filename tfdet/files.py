"""Writing files so that a crash never leaves half of one: a temporary file, then a rename.

Through ``tf.io.gfile``, so the same code writes local paths and remote stores (``gs://``; there a
rename is a copy and a delete, still never a half-written file under the final name).
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any


def write_text(path: str, text: str) -> str:
    """Writes ``text`` to ``path`` atomically (temporary file + rename); returns ``path``."""
    import tensorflow as tf

    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with tf.io.gfile.GFile(temp, "w") as handle:
        handle.write(text)
    tf.io.gfile.rename(temp, path, overwrite=True)
    return path


def write_json(path: str, content: Any) -> str:
    """``content`` as indented JSON at ``path``, atomically; returns ``path``."""
    return write_text(path, json.dumps(content, indent=2, default=str))
