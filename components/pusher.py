"""The Pusher: TFX's, except that a version appears in the serving directory whole or not at all.

TF Serving's file-system source aspires every numbered directory under the model's base path and loads the newest;
a version whose load failed is not tried again (tensorflow/serving#1738). TFX's Pusher copies the model into the
numbered directory in place, so for the whole copy TF Serving can see a version without its ``saved_model.pb``, and
a push cut short leaves one behind for good. This Pusher:

* on a local or POSIX file system, copies the model into a hidden, non-numeric folder of the serving directory
  (``.tfdet-push-<version>-<random>``: TF Serving ignores names that are not numbers), flushes every file to disk,
  then renames the folder to its number -- one atomic step. A folder left by a push that was killed is removed by
  the next push, and no numbered directory of a cut push ever exists;
* on an object store (``gs://``, ``s3://``: a rename there is a copy and a delete, not atomic), copies into the
  numbered directory with ``saved_model.pb`` last, as TFX does (TF Serving loads a version only once that file is
  there), and the served-version rule (:func:`tfdet.export.serving.is_complete`) skips a cut one;
* names every version by a second whose directory does not exist yet (TFX would skip the copy into an existing
  one and still record the push), so each push writes a version of its own.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging
from tfx import types
from tfx import v1 as tfx
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, json_utils, proto_utils

from components.model_card import CARD_FILE, ModelCardArtifact
from tfdet.export.serving import CARD_PATH

#: how long to wait for a free version second before giving up (someone keeps creating version directories)
MAX_WAIT_SECONDS = 30.0
STAGING_PREFIX = ".tfdet-push-"
MODEL_CARD_KEY = "model_card"
SAVED_MODEL = "saved_model.pb"


def wait_for_free_version(base_directory: str, max_wait: float = MAX_WAIT_SECONDS) -> str:
    """Blocks until ``base_directory/<int(time.time())>`` does not exist; returns that version name.

    Raises:
        RuntimeError: when every second for ``max_wait`` seconds already has a directory.
    """
    deadline = time.monotonic() + max_wait
    while True:
        version = str(int(time.time()))
        if not tf.io.gfile.exists(os.path.join(base_directory, version)):
            return version
        if time.monotonic() > deadline:
            raise RuntimeError(f"every version directory under {base_directory} for {max_wait:.0f} s already exists "
                               f"(the newest: {version}); is another process pushing there? Stop it and rerun.")
        time.sleep(0.05)


def is_local(path: str) -> bool:
    """Whether ``path`` is on a file system with an atomic rename (no URL scheme, or ``file://``)."""
    return "://" not in path or path.startswith("file://")


def _copy_file(source: str, target: str) -> None:
    """One file of a push, flushed to disk before the next (the single place a push writes a file)."""
    try:
        with open(source, "rb") as reader, open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
    except OSError as error:
        if error.filename is None:  # a failed write names no file (a full disk): name the one being written
            raise OSError(error.errno, error.strerror, target) from error
        raise


def _fsync_directory(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def copy_model(source: str, target: str) -> None:
    """Copies the SavedModel folder ``source`` to ``target`` file by file, ``saved_model.pb`` last, each flushed."""
    files = []
    for directory, dirs, names in os.walk(source):
        dirs.sort()
        relative = os.path.relpath(directory, source)
        os.makedirs(os.path.join(target, relative), exist_ok=True)
        files += [os.path.normpath(os.path.join(relative, name)) for name in sorted(names)]
    files.sort(key=lambda name: name == SAVED_MODEL)
    for name in files:
        _copy_file(os.path.join(source, name), os.path.join(target, name))
    for directory, _, _ in os.walk(target, topdown=False):
        _fsync_directory(directory)


def clear_leftovers(base_directory: str) -> List[str]:
    """Removes the staging folders of pushes that were cut short (one run at a time holds the output root, so none
    is in use); returns their names."""
    found = [name for name in os.listdir(base_directory) if name.startswith(STAGING_PREFIX)]
    for name in found:
        shutil.rmtree(os.path.join(base_directory, name), ignore_errors=True)
    return found


def push_version(model_path: str, base_directory: str, card: Optional[str] = None) -> str:
    """Copies the SavedModel at ``model_path`` into ``base_directory`` as a new numbered version; returns its path.

    Locally the version appears by one rename of a finished, flushed copy; on an object store it is written in
    place with ``saved_model.pb`` last (see the module docstring). ``card``: a model card copied into the version
    (``assets.extra/model_card.html``) before it appears.
    """
    if not is_local(base_directory):
        version = wait_for_free_version(base_directory)
        serving_path = os.path.join(base_directory, version)
        io_utils.copy_dir(model_path, serving_path, deny_regex_patterns=[r"saved_model\.pb"])
        if card:
            io_utils.copy_file(card, os.path.join(serving_path, CARD_PATH))
        io_utils.copy_file(os.path.join(model_path, SAVED_MODEL), os.path.join(serving_path, SAVED_MODEL))
        return serving_path
    base_directory = base_directory[len("file://"):] if base_directory.startswith("file://") else base_directory
    os.makedirs(base_directory, exist_ok=True)
    for name in clear_leftovers(base_directory):
        logging.info("Removed %s, left by a push that was cut short.", name)
    version = wait_for_free_version(base_directory)
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        if card:
            os.makedirs(os.path.dirname(os.path.join(staging, CARD_PATH)), exist_ok=True)
            _copy_file(card, os.path.join(staging, CARD_PATH))
        copy_model(model_path, staging)
        serving_path = os.path.join(base_directory, version)
        os.rename(staging, serving_path)  # fails rather than merge if the number was taken meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_directory(base_directory)
    return serving_path


class Executor(tfx_pusher.Executor):
    """TFX's Pusher executor with :func:`push_version`: whole versions only, each under a number of its own."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"the tfdet Pusher writes to a file system; got {destination}")
        model_path = self.GetModelPath(input_dict)
        cards = input_dict.get(MODEL_CARD_KEY) or []
        card = os.path.join(cards[0].uri, CARD_FILE) if cards else None
        serving_path = push_version(model_path, destination.filesystem.base_directory,
                                    card if card and tf.io.gfile.exists(card) else None)
        logging.info("Model written to serving path %s.", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)  # the archive copy TFX keeps with the artifact
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=os.path.basename(serving_path))


class PusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher spec and an optional model card to put into the version."""

    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              MODEL_CARD_KEY: component_spec.ChannelParameter(type=ModelCardArtifact, optional=True)}


class Pusher(tfx.components.Pusher):
    """``tfx.components.Pusher`` (same arguments, same node id) with :class:`Executor`, and ``model_card``: the
    ModelCard component's card, pushed inside the version."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model=None, model_blessing=None, push_destination=None, model_card=None) -> None:
        spec = PusherSpec(model=model, model_blessing=model_blessing, push_destination=push_destination,
                          custom_config=json_utils.dumps(None),
                          pushed_model=types.Channel(type=standard_artifacts.PushedModel), model_card=model_card)
        base_component.BaseComponent.__init__(self, spec=spec)
