"""TFRecord files: finding them, reading them (compression told by their names), and naming a broken one.

:func:`match_files`, :func:`compression_of`, :func:`read_records` and :func:`count_records` are the one place
that turns a pattern (comma-separated globs, local or ``gs://``) into records: GZIP when every file ends in
``.gz`` (as TFX's ExampleGen writes them), uncompressed otherwise.

TensorFlow reports a damaged file as ``DataLossError: truncated record at N``
without saying which of the files it was reading. A TFRecord file is a chain
of records (8-byte length, 4-byte length checksum, data, 4-byte data
checksum), so walking the length fields finds a cut-short file cheaply, with
one small read per record; :func:`find_damaged_file` reads files fully to
name the one behind an error that the walk cannot see (a bad checksum, a
damaged GZIP stream).
"""

from __future__ import annotations

import os
import re
import struct
from typing import Iterator, List, Optional, Sequence, Union

import tensorflow as tf

_HEADER = 12  # uint64 length + uint32 masked crc of the length
_FOOTER = 4  # uint32 masked crc of the data


class DamagedRecordFile(ValueError):
    """A TFRecord file that cannot be read to its end; the message names it."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        # TensorFlow's message leads with the function and device it failed in and ends with the op: keep the cause
        detail = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$", "", detail, flags=re.S).strip()
        super().__init__(f"{path}: {detail}; the file is damaged (cut short by an interrupted copy or "
                         f"conversion?): copy or convert it again, or leave it out of the pattern")


def match_files(pattern: Union[str, Sequence[str]]) -> List[str]:
    """The files of ``pattern`` (comma-separated globs, or a list of them), sorted, each once.

    Raises:
        FileNotFoundError: nothing matches.
    """
    parts = pattern.split(",") if isinstance(pattern, str) else list(pattern)
    files = sorted({path for part in parts for path in tf.io.gfile.glob(part.strip())})
    if not files:
        raise FileNotFoundError(f"no files match {pattern!r}; convert your data with tfdet convert first")
    return files


def compression_of(files: Sequence[str]) -> str:
    """``"GZIP"`` when every file ends in ``.gz`` (TFX's ExampleGen output), else ``""``."""
    return "GZIP" if files and all(path.endswith(".gz") for path in files) else ""


def iter_records(pattern: Union[str, Sequence[str]]) -> Iterator[bytes]:
    """Every serialized record of the files of ``pattern``, in file order."""
    files = match_files(pattern)
    return tf.data.TFRecordDataset(files, compression_type=compression_of(files)).as_numpy_iterator()


def read_records(pattern: Union[str, Sequence[str]]) -> List[bytes]:
    """Every serialized record of the files of ``pattern`` (see :func:`match_files`), in file order."""
    return list(iter_records(pattern))


def count_records(pattern: Union[str, Sequence[str]]) -> int:
    """How many records the files of ``pattern`` hold (read, not parsed)."""
    return sum(1 for _ in iter_records(pattern))


def is_local(path: str) -> bool:
    """True for paths on this machine's file system (no ``scheme://``)."""
    return "://" not in path


def check_record_file(path: str) -> int:
    """Walks the record headers of an uncompressed, local TFRecord file.

    Returns:
        The number of records.

    Raises:
        DamagedRecordFile: naming the file, the record and the byte offset
            where it ends early.
    """
    size = os.path.getsize(path)
    offset = count = 0
    with open(path, "rb") as handle:
        while offset < size:
            header = handle.read(_HEADER)
            if len(header) < _HEADER:
                raise DamagedRecordFile(path, f"record {count} at byte {offset} has a header of {len(header)} "
                                              f"bytes (needs {_HEADER})")
            (length,) = struct.unpack("<Q", header[:8])
            end = offset + _HEADER + length + _FOOTER
            if end > size:
                raise DamagedRecordFile(path, f"record {count} at byte {offset} needs {end - offset} bytes but the "
                                              f"file ends after {size - offset}")
            handle.seek(end)
            offset, count = end, count + 1
    return count


def find_damaged_file(paths: Sequence[str], compression_type: str = "") -> Optional[DamagedRecordFile]:
    """Reads each file completely; returns the error of the first that fails, or None."""
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(path, compression_type=compression_type):
                pass
        except tf.errors.OpError as error:
            return DamagedRecordFile(path, error.message)
    return None
