"""What stops a run before or while it goes, as one line that names the thing and the fix.

* :func:`check_data_root`: a data root without the ``span-<N>/`` folders the patterns look for (TFX's own message
  only names the pattern);
* :func:`data_classes`: the class count the data's ``label_map.json`` gives, and a ``--num-classes`` that disagrees
  with it;
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
from typing import Dict, Iterator, Optional, Tuple

from tfdet.dataio.spans import any_span


class PreflightError(RuntimeError):
    """The run cannot start; the message says why and what to do."""


def check_data_root(data_root: str, train_pattern: str, eval_pattern: str) -> None:
    """Raises :class:`PreflightError` when no span under ``data_root`` has files for both patterns (local roots)."""
    if "://" in data_root:
        return  # a remote root is ExampleGen's to read
    if not os.path.isdir(data_root):
        raise PreflightError(f"the data root {data_root} does not exist: convert your data into it (tfdet convert ... "
                             f"--output {data_root}/span-1 --prefix train, and --prefix eval) or pass --data-root")
    for split, pattern in (("train", train_pattern), ("eval", eval_pattern)):
        if not glob.glob(os.path.join(data_root, any_span(pattern))):
            spans = sorted(name for name in os.listdir(data_root) if re.fullmatch(r"span-\d+", name))
            found = f"its span folders ({', '.join(spans)}) hold" if spans else "it has no span-<N>/ folder and holds"
            raise PreflightError(f"the data root {data_root} has no {split} files: the pipeline reads "
                                 f"{os.path.join(data_root, pattern)} (e.g. span-1/{split}-00000-of-00004.tfrecord), "
                                 f"but {found} none; convert with `tfdet convert ... --output {data_root}/span-1 "
                                 f"--prefix {split}` or pass --{split}-pattern")


def label_maps(data_root: str, train_pattern: str) -> Dict[str, Dict[int, str]]:
    """Each span's ``label_map.json`` (the converter writes it beside the train files) by path, newest span first."""
    from tfdet.dataio.label_map import label_map_path, read_label_map

    folders = {os.path.dirname(path) for path in glob.glob(os.path.join(data_root, any_span(train_pattern)))}
    number = lambda folder: int(re.sub(r"\D", "", os.path.basename(folder)) or 0)  # noqa: E731
    found = {label_map_path(folder): read_label_map(folder) for folder in sorted(folders, key=number, reverse=True)}
    return {path: names for path, names in found.items() if names}


def data_classes(data_root: str, train_pattern: str, num_classes: Optional[int],
                 default: int) -> Tuple[int, Dict[int, str]]:
    """The run's class count and the names the spans' label maps give: the count is the highest id named, plus one
    (a span may lack a class); ``default`` when no span has a label map. Raises :class:`PreflightError` when
    ``num_classes`` (the flag) says otherwise, or two spans give one id different names."""
    if "://" in data_root:
        return num_classes or default, {}
    maps = label_maps(data_root, train_pattern)
    if not maps:
        return num_classes or default, {}
    names: Dict[int, str] = {}
    seen_in: Dict[int, str] = {}
    for path, found in maps.items():
        for label, name in found.items():
            if label in names and names[label] != name:
                raise PreflightError(f"class {label} is {names[label]!r} in {seen_in[label]} but {name!r} in {path}: "
                                     f"one id must mean one class in every span; convert the spans again with one "
                                     f"class list (tfdet convert voc --classes a,b,c gives the same ids in each)")
            names.setdefault(label, name)
            seen_in.setdefault(label, path)
    count = max(names) + 1
    if num_classes is not None and num_classes != count:
        listed = ", ".join(f"{k}: {v}" for k, v in sorted(names.items()))
        raise PreflightError(f"--num-classes {num_classes} but the data's label maps ({', '.join(maps)}) name "
                             f"{count} classes ({listed}): drop --num-classes to take the data's, or fix the label "
                             f"maps")
    return count, dict(sorted(names.items()))


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


def disk_full(error: BaseException, output_root: str, running_dir: Optional[str] = None) -> Optional[str]:
    """The one-line reason when ``error`` (or what caused it) is a full disk, else None. It names the file being
    written: the first path under ``output_root`` that any full-disk error of the chain names (an outer one may
    name none, and TensorFlow's op errors name device strings like ``/job:localhost`` before the file), else
    ``running_dir``, the output folder of the component that was running (when TFX's record of the failure met the
    full disk too, MLMD's error replaces the component's and names no file), else the output root."""
    named, full_seen = [], False
    for link in _chain(error):
        text = str(link)
        if not ("No space left on device" in text or "database or disk is full" in text  # SQLite's (MLMD's) words
                or (isinstance(link, OSError) and link.errno == errno.ENOSPC)):
            continue
        full_seen = True
        named += [str(path) for path in (getattr(link, "filename", None), *re.findall(r"(/[^\s;:'\"]+)", text))
                  if path]
    if not full_seen:
        return None
    root = os.path.join(os.path.abspath(output_root), "")
    path = next((p for p in named if os.path.abspath(p).startswith(root)), None) or running_dir or output_root
    where = path
    while where and not os.path.exists(where):
        where = os.path.dirname(where)
    usage = shutil.disk_usage(where or output_root)
    return (f"the disk is full: no space left on device writing {path} ({usage.free / 2**20:.1f} MB free of "
            f"{usage.total / 2**20:.1f} MB there): free some space or choose another --output-root, then rerun "
            f"(the served model is unchanged)")
