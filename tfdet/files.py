"""tfdet's files: written whole or not at all, and the cache of downloads verified by sha256.

* :func:`write_text` / :func:`write_json`: a temporary file, then a rename, so that a crash never leaves half of
  one; through ``tf.io.gfile``, so the same code writes local paths and remote stores (``gs://``; there a rename is
  a copy and a delete, still never a half-written file under the final name).
* :func:`cache_dir`, :func:`download`, :func:`sha256_of`: the cache lives in ``$TFDET_HOME`` (default
  ``~/.cache/tfdet``; pretrained weights, Flink's jars, the workers' packages, benchmark corpora). A download is
  written to a temporary file, hashed while it streams, and renamed into place only when its sha256 matches; a
  mismatch deletes it and raises.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import uuid
from typing import Any, Optional

_CHUNK = 1 << 20


def write_text(path: str, text: str) -> str:
    """Writes ``text`` to ``path`` atomically (temporary file + rename); returns ``path``."""
    import tensorflow as tf

    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with tf.io.gfile.GFile(temp, "w") as handle:
            handle.write(text)
        tf.io.gfile.rename(temp, path, overwrite=True)
    except BaseException:  # a failed or interrupted write leaves the old file and no temporary beside it
        if tf.io.gfile.exists(temp):
            tf.io.gfile.remove(temp)
        raise
    return path


def write_json(path: str, content: Any) -> str:
    """``content`` as indented JSON at ``path``, atomically; returns ``path``."""
    return write_text(path, json.dumps(content, indent=2, default=str))


class FetchError(RuntimeError):
    """A download that failed or did not match its expected sha256."""


def cache_dir(*parts: str) -> str:
    """``$TFDET_HOME/<parts>`` (default home ``~/.cache/tfdet``), created if missing."""
    home = os.environ.get("TFDET_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tfdet")
    path = os.path.join(home, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def sha256_of(path: str) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, destination: str, sha256: Optional[str], *, show_progress: bool = True,
             timeout: float = 60.0) -> str:
    """Downloads ``url`` to ``destination`` unless a file with that sha256 is already there.

    Args:
        url: http(s) or file URL.
        destination: the final path.
        sha256: the expected hex digest; None only for sources that publish
            none (the caller must then verify by other means).
        show_progress: a tqdm bar.
        timeout: seconds without data before giving up.

    Returns:
        ``destination``.

    Raises:
        FetchError: the download failed (naming the URL) or its sha256 differs.
    """
    from tqdm.auto import tqdm

    if os.path.exists(destination) and (sha256 is None or sha256_of(destination) == sha256):
        return destination
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    digest = hashlib.sha256()
    handle, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(destination)), suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http(s) and file URLs)
            except OSError as error:
                raise FetchError(f"cannot download {url}: {error}; check the network, or download it by hand "
                                 f"and pass the local file") from None
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(destination),
                          disable=not show_progress) as bar:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        if sha256 is not None and digest.hexdigest() != sha256:
            raise FetchError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {sha256}; the "
                             f"download is corrupt or the file changed upstream: it was not kept")
        shutil.move(temp, destination)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return destination
