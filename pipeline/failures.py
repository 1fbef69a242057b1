"""What stops a run before or while it goes, as one line that names the thing and the fix.

* :func:`check_data_root`: a data root without the ``span-<N>/`` folders the patterns look for (TFX's own message
  only names the pattern);
* :func:`check_metadata`: the MLMD database is not SQLite (corrupt) or another process holds a write lock on it
  (MLMD would wait half a minute, then blame missing tables);
* :func:`disk_full`: a run that failed because a disk filled up (checkpoints, the push, the database), with the path
  and the free space.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import sqlite3
from typing import Iterator, Optional

from tfdet.dataio.spans import any_span


class PreflightError(RuntimeError):
    """The run cannot start; the message says why and what to do."""


def check_data_root(data_root: str, train_pattern: str, eval_pattern: str) -> None:
    """Raises :class:`PreflightError` when no span under ``data_root`` has files for both patterns (local roots)."""
    if "://" in data_root:
        return  # a remote root is ExampleGen's to read
    if not os.path.isdir(data_root):
        raise PreflightError(f"the data root {data_root} does not exist: convert your data into it (tfdet convert ... "
                             f"--out {data_root}/span-1) or pass --data-root")
    for split, pattern in (("train", train_pattern), ("eval", eval_pattern)):
        if not glob.glob(os.path.join(data_root, any_span(pattern))):
            spans = sorted(name for name in os.listdir(data_root) if re.fullmatch(r"span-\d+", name))
            found = f"its span folders ({', '.join(spans)}) hold" if spans else "it has no span-<N>/ folder and holds"
            raise PreflightError(f"the data root {data_root} has no {split} files: the pipeline reads "
                                 f"{os.path.join(data_root, pattern)} (e.g. span-1/{split}-00000-of-00004.tfrecord), "
                                 f"but {found} none; convert with `tfdet convert ... --out {data_root}/span-1 --prefix "
                                 f"{split}` or pass --{split}-pattern")


def check_metadata(metadata_path: str) -> None:
    """Raises :class:`PreflightError` when the MLMD database at ``metadata_path`` is not SQLite or is locked."""
    if not os.path.exists(metadata_path):
        return
    try:
        connection = sqlite3.connect(metadata_path, timeout=2.0, isolation_level=None)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            raise PreflightError(f"the pipeline's metadata database {metadata_path} is locked by another process (a "
                                 f"notebook or a tool holding it open?): close it and rerun") from None
        raise PreflightError(f"the pipeline's metadata database {metadata_path} cannot be opened ({error})") from None
    except sqlite3.DatabaseError as error:
        raise PreflightError(f"the pipeline's metadata database {metadata_path} is not a readable SQLite database "
                             f"({error}): move it aside and rerun (the served models stay; the run history starts "
                             f"anew)") from None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def disk_full(error: BaseException, output_root: str) -> Optional[str]:
    """The one-line reason when ``error`` (or what caused it) is a full disk, else None."""
    for link in _chain(error):
        text = str(link)
        full = ("No space left on device" in text or "database or disk is full" in text  # SQLite's (MLMD's) words
                or (isinstance(link, OSError) and link.errno == errno.ENOSPC))
        if not full:
            continue
        path = getattr(link, "filename", None) or next(iter(re.findall(r"(/[^\s;:'\"]+)", text)), None) or output_root
        where = path
        while where and not os.path.exists(where):
            where = os.path.dirname(where)
        usage = shutil.disk_usage(where or output_root)
        return (f"the disk is full: no space left on device writing {path} ({usage.free / 2**20:.1f} MB free of "
                f"{usage.total / 2**20:.1f} MB there): free some space or choose another --output-root, then rerun "
                f"(the served model is unchanged)")
    return None
