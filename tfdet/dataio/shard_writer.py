"""Sharded TFRecord files written whole or not at all, and only as many as the data fills.

``{prefix}-XXXXX-of-YYYYY.tfrecord`` in a folder: records go to temporary files (``*.tfrecord.tmp``) while they are
written; on success the older shards of exactly this prefix are removed and the temporary files that hold records are
renamed to their final names, numbered 0..K-1 of K (a shard left empty -- more shards asked for than records -- is
not made); on failure the temporary files are removed and the older shards stay. Temporary files left by a writer
that was killed are removed when the next one starts. Files of any other prefix (``train-hard`` beside ``train``) are
never touched.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple

import tensorflow as tf

TEMP_SUFFIX = ".tmp"


def shard_name(prefix: str, index: int, count: int) -> str:
    """``{prefix}-{index:05d}-of-{count:05d}.tfrecord``."""
    return f"{prefix}-{index:05d}-of-{count:05d}.tfrecord"


def files_of_prefix(output_dir: str, prefix: str) -> Tuple[List[str], List[str]]:
    """(shards, temporary files) of exactly this prefix: ``{prefix}-NNNNN-of-NNNNN.tfrecord[.tmp]``.

    A glob such as ``train-*`` would also match another prefix (``train-hard``).
    """
    pattern = re.compile(rf"{re.escape(prefix)}-\d{{5}}-of-\d{{5}}\.tfrecord({re.escape(TEMP_SUFFIX)})?")
    shards, temps = [], []
    for name in sorted(os.listdir(output_dir)):
        match = pattern.fullmatch(name)
        if match:
            (temps if match.group(1) else shards).append(os.path.join(output_dir, name))
    return shards, temps


class ShardWriter:
    """``with ShardWriter(folder, prefix, num_shards) as shards: shards.write(index, serialized)``.

    Record ``index`` goes to shard ``index % num_shards``, so the output depends only on the records' order. After a
    clean exit, :attr:`shards` are the files made (empty shards left out, the rest numbered 0..K-1 of K),
    :attr:`examples_per_shard` their record counts and :attr:`replaced` the older files removed.
    """

    def __init__(self, output_dir: str, prefix: str, num_shards: int) -> None:
        if not isinstance(num_shards, int) or num_shards < 1:
            raise ValueError(f"num_shards must be a positive integer, got {num_shards!r}")
        if not re.fullmatch(r"[\w.][\w.-]*", prefix):
            raise ValueError(f"prefix must be a plain file-name prefix (letters, digits, '_', '.', '-'), got "
                             f"{prefix!r}")
        self.output_dir, self.prefix, self.num_shards = output_dir, prefix, num_shards
        self.counts = [0] * num_shards
        self.shards: List[str] = []
        self.examples_per_shard: List[int] = []
        self.replaced: List[str] = []
        self._temps: List[str] = []
        self._stale: List[str] = []
        self._writers: List[Optional[tf.io.TFRecordWriter]] = []

    def __enter__(self) -> ShardWriter:
        os.makedirs(self.output_dir, exist_ok=True)
        _, stale = files_of_prefix(self.output_dir, self.prefix)
        for path in stale:  # left by a writer that was killed
            os.remove(path)
        self._stale = [os.path.basename(path) for path in stale]
        self._temps = [os.path.join(self.output_dir, shard_name(self.prefix, i, self.num_shards) + TEMP_SUFFIX)
                       for i in range(self.num_shards)]
        self._writers = [tf.io.TFRecordWriter(path) for path in self._temps]
        return self

    def write(self, index: int, serialized: bytes) -> int:
        """Writes one record (the ``index``-th of the input); returns its shard."""
        shard = index % self.num_shards
        self._writers[shard].write(serialized)
        self.counts[shard] += 1
        return shard

    def __exit__(self, kind, error, trace) -> None:
        for writer in self._writers:
            writer.close()
        if kind is not None:
            for path in self._temps:
                if os.path.exists(path):
                    os.remove(path)
            return
        old, _ = files_of_prefix(self.output_dir, self.prefix)
        for path in old:
            os.remove(path)
        self.replaced = [os.path.basename(path) for path in old] + self._stale  # finished shards, then leftovers
        filled = [(temp, count) for temp, count in zip(self._temps, self.counts) if count]
        for temp, _ in zip(self._temps, self.counts):
            if temp not in dict(filled):
                os.remove(temp)
        for number, (temp, count) in enumerate(filled):
            final = os.path.join(self.output_dir, shard_name(self.prefix, number, len(filled)))
            os.replace(temp, final)
            self.shards.append(final)
            self.examples_per_shard.append(count)
