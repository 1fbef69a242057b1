"""tfdet: one-stage object detection in TensorFlow, with a production TFX pipeline.

Importing tfdet selects Keras 2 (tf_keras) for TensorFlow's Keras, which the
SavedModel export, tensorflow-transform and TFMA all need; set
``TF_USE_LEGACY_KERAS`` yourself before importing TensorFlow to override.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

# the seed's import paths of modules that have moved since: the old name imports the module where it lives now
MOVED = {"tfdet.models.callbacks": "tfdet.training.callbacks"}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves each :data:`MOVED` name as the module it moved to (one module object under both names)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        """The module was executed under its own name already."""


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())


def version_info() -> dict:
    """tfdet's version and, where it is known, the code's commit (``$TFDET_COMMIT``, else git)."""
    import subprocess

    commit = os.environ.get("TFDET_COMMIT")
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=os.path.dirname(__file__),
                                    capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"version": __version__, "commit": commit or "unknown"}


def create_model(*args, **kwargs):
    """Builds a zoo detector by name; see :func:`tfdet.zoo.create_model`."""
    from tfdet.zoo import create_model as create

    return create(*args, **kwargs)


def list_models(pattern: str = "*"):
    """The zoo's model names matching ``pattern``; see :func:`tfdet.zoo.list_models`."""
    from tfdet.zoo import list_models as names

    return names(pattern)
