"""pipeline/engines/flink.py: the TaskManager's memory as Flink itself sizes it from the configuration tfdet writes.

Needs Flink's jars (``python -m pipeline.engines.cluster fetch``, as ``make test-slow`` does); starts no cluster.
"""

import os
from typing import Dict

import pytest

from pipeline.engines import flink

MIB = 1 << 20


def _memory(command) -> Dict[str, int]:
    """Bytes of each ``-D taskmanager.memory.*`` setting and of ``-XX:MaxDirectMemorySize`` in a command line."""
    sizes = {}
    for i, word in enumerate(command):
        if word.startswith("-XX:MaxDirectMemorySize="):
            sizes["max_direct"] = int(word.split("=")[1])
        if word == "-D" and command[i + 1].startswith("taskmanager.memory."):
            key, value = command[i + 1].split("=")
            sizes[key[len("taskmanager.memory."):]] = int(value.rstrip("b"))
    return sizes


@pytest.mark.cluster
def test_taskmanagers_get_direct_memory_for_beams_grpc_buffers_and_keep_their_task_heap(tmp_path):
    # Transform's image batches at 100k examples overflowed Flink's 128 MB framework off-heap (the default task
    # off-heap is 0): benchmarks/README.md, "Cost as the data grows"
    conf = str(tmp_path / "conf")
    flink.write_config(conf, workers=2, taskmanager_memory=flink.TASKMANAGER_MEMORY)
    sizes = _memory(flink.taskmanager_command(conf, os.path.join(conf, "tm.log"), "tm-1"))
    assert sizes["task.off-heap.size"] == 512 * MIB
    # the JVM's direct-memory cap is Flink's three direct shares, so the tasks' 512 MB is really there
    assert sizes["max_direct"] == sizes["framework.off-heap.size"] + sizes["task.off-heap.size"] + sizes["network.max"]
    assert sizes["task.heap.size"] >= 740 * MIB  # Beam's operators keep the heap they had before
    assert sizes["managed.size"] >= 1100 * MIB  # and the sort buffers most of theirs
