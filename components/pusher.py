"""TFX's Pusher, made safe to rerun right after a push that was cut short.

TFX names a version by the second it is pushed and, when that directory already exists, skips the copy and still
records the push as done. A run that follows a crashed push within the same second (a cached rerun takes about
one) would then report as served a version that has no ``saved_model.pb``. This Pusher waits for a second whose
directory does not exist yet, so every push writes a whole version of its own.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List

from tfx import types
from tfx import v1 as tfx
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

#: how long to wait for a free version second before giving up (someone keeps creating version directories)
MAX_WAIT_SECONDS = 30.0


def wait_for_free_version(base_directory: str, max_wait: float = MAX_WAIT_SECONDS) -> str:
    """Blocks until ``base_directory/<int(time.time())>`` does not exist; returns that version name.

    Raises:
        RuntimeError: when every second for ``max_wait`` seconds already has a directory.
    """
    deadline = time.monotonic() + max_wait
    while True:
        version = str(int(time.time()))
        if not os.path.exists(os.path.join(base_directory, version)):
            return version
        if time.monotonic() > deadline:
            raise RuntimeError(f"every version directory under {base_directory} for {max_wait:.0f} s already exists "
                               f"(the newest: {version}); is another process pushing there? Stop it and rerun.")
        time.sleep(0.05)


class Executor(tfx_pusher.Executor):
    """TFX's Pusher executor that never pushes into a version directory that already exists."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") == "filesystem" and self.CheckBlessing(input_dict):
            wait_for_free_version(destination.filesystem.base_directory)
        super().Do(input_dict, output_dict, exec_properties)


class Pusher(tfx.components.Pusher):
    """``tfx.components.Pusher`` (same arguments, same node id) with :class:`Executor`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
