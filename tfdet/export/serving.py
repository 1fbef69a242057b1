"""The serving directory TF Serving and the Pusher share: numbered versions, the newest complete one served."""

from __future__ import annotations

import os
from typing import List, Optional

import tensorflow as tf

# the rollbacks of a serving directory, beside its versions (not a number: TF Serving passes it by); written by
# pipeline/operations/served.py, read by the model card
ROLLBACKS_FILE = "rollbacks.json"
# where a served version carries its model card (TF Serving ignores assets.extra/)
CARD_PATH = os.path.join("assets.extra", "model_card.html")


def is_complete(version_dir: str) -> bool:
    """Whether a version directory holds a whole SavedModel.

    The Pusher copies ``saved_model.pb`` last, so a version cut short by a crash lacks it (or its
    variables index); TF Serving skips such a version, and so does tfdet.
    """
    return (tf.io.gfile.exists(os.path.join(version_dir, "saved_model.pb"))
            and tf.io.gfile.exists(os.path.join(version_dir, "variables", "variables.index")))


def versions(serving_dir: str) -> List[str]:
    """The complete numbered version directories under ``serving_dir``, oldest first."""
    if not serving_dir or not tf.io.gfile.isdir(serving_dir):
        return []
    numbers = sorted(int(v.rstrip("/")) for v in tf.io.gfile.listdir(serving_dir) if v.rstrip("/").isdigit())
    paths = [os.path.join(serving_dir, str(number)) for number in numbers]
    return [path for path in paths if is_complete(path)]


def latest_version(serving_dir: str) -> Optional[str]:
    """The newest complete version directory under ``serving_dir`` (None when there is none)."""
    found = versions(serving_dir)
    return found[-1] if found else None
