"""An ordered parallel map over worker processes in which no wait is unbounded.

``multiprocessing.Pool.imap`` waits forever when a worker dies or when a
result cannot be unpickled in the pool's result thread. This map uses
``concurrent.futures.ProcessPoolExecutor``, which notices a dead worker, keeps
a bounded number of chunks in flight (so a generator input is read lazily),
waits on each chunk with a timeout, and turns every failure into a
:class:`WorkerError` that names the item it happened on.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, List

_JOIN_SECONDS = 10.0


class WorkerError(RuntimeError):
    """A worker raised something unexpected, died, or took longer than allowed."""


@dataclass
class _Raised:
    """An exception raised by the mapped function, carried back as plain text."""

    type_name: str
    message: str
    traceback: str


def _run_chunk(function: Callable[[Any], Any], chunk: List[Any]) -> List[Any]:
    results = []
    for item in chunk:
        try:
            results.append(function(item))
        except Exception as error:  # every failure goes back as text, so it always unpickles
            results.append(_Raised(type(error).__name__, str(error), traceback.format_exc()))
    return results


def _unexpected(describe: Callable[[Any], str], item: Any, type_name: str, message: str,
                trace: str = "") -> WorkerError:
    text = (f"{describe(item)}: unexpected {type_name}: {message}. This is a bug or an input tfdet does not "
            f"know; please report it with this message")
    return WorkerError(text + (f"\nworker traceback:\n{trace}" if trace else ""))


def _span(describe: Callable[[Any], str], chunk: List[Any]) -> str:
    return describe(chunk[0]) if len(chunk) == 1 else f"{describe(chunk[0])} .. {describe(chunk[-1])}"


def _stop(executor: ProcessPoolExecutor) -> None:
    """Stops the workers now, busy or not (``shutdown`` alone would wait for a hung one)."""
    processes = list(getattr(executor, "_processes", {}).values())  # no public way before Python 3.14
    for process in processes:
        if process.is_alive():
            process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(_JOIN_SECONDS)
        if process.is_alive():
            process.kill()
            process.join(_JOIN_SECONDS)


def ordered_map(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    num_workers: int,
    chunk_size: int = 4,
    timeout: float = 600.0,
    describe: Callable[[Any], str] = repr,
) -> Iterator[Any]:
    """Yields ``function(item)`` for every item, in input order.

    With ``num_workers <= 1`` it runs in this process. Otherwise the items
    go in chunks to forked worker processes, at most ``2 * num_workers``
    chunks at a time. Close the returned generator (or exhaust it) to stop
    the workers.

    Args:
        function: a module-level function (it is sent to the workers by name).
        items: any iterable; read lazily.
        num_workers: worker processes.
        chunk_size: items per task sent to a worker.
        timeout: seconds to wait for one chunk's results before giving up.
        describe: names an item in error messages.

    Raises:
        WorkerError: when ``function`` raises, a worker dies, a chunk takes
            longer than ``timeout``, or an item or result cannot cross the
            process boundary; the message names the item(s).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    if num_workers <= 1:
        for item in items:
            try:
                result = function(item)
            except Exception as error:
                raise _unexpected(describe, item, type(error).__name__, str(error)) from error
            yield result
        return

    executor = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("fork"))
    iterator = iter(items)
    pending: deque = deque()
    try:
        while True:
            while len(pending) < 2 * num_workers:
                chunk = list(islice(iterator, chunk_size))
                if not chunk:
                    break
                pending.append((chunk, executor.submit(_run_chunk, function, chunk)))
            if not pending:
                return
            chunk, future = pending.popleft()
            try:
                results = future.result(timeout=timeout)
            except FutureTimeout:
                raise WorkerError(f"{_span(describe, chunk)}: no result after {timeout:g} s; a worker is stuck "
                                  f"(e.g. on a file system that does not answer); raise the timeout if the "
                                  f"inputs are really this slow") from None
            except BrokenProcessPool:
                raise WorkerError(f"a worker process died while handling {_span(describe, chunk)} (killed, out of "
                                  f"memory or crashed); run with one worker to see the failure in this "
                                  f"process") from None
            except Exception as error:  # e.g. an item that cannot be pickled
                raise WorkerError(f"{_span(describe, chunk)} could not be handed to a worker process "
                                  f"({type(error).__name__}: {error}); records must be plain data (dicts, "
                                  f"lists, strings, numbers), or run with one worker") from error
            for item, result in zip(chunk, results):
                if isinstance(result, _Raised):
                    raise _unexpected(describe, item, result.type_name, result.message, result.traceback)
                yield result
    finally:
        _stop(executor)
