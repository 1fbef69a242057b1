import os
import time

import pytest

from tfdet.dataio.workers import WorkerError, ordered_map

PARENT = os.getpid()


def square(item):
    return item * item


def die_on_seven(item):
    if item == 7 and os.getpid() != PARENT:
        os._exit(3)
    return item


def fail_on_five(item):
    if item == 5:
        raise ZeroDivisionError("five is not welcome")
    return item


def hang_on_three(item):
    if item == 3:
        time.sleep(60)
    return item


def name(item):
    return f"item {item}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 2])
def test_results_keep_the_input_order_and_generators_are_read_lazily(workers):
    pulled = []

    def numbers():
        for i in range(50):
            pulled.append(i)
            yield i

    stream = ordered_map(square, numbers(), num_workers=workers, chunk_size=3)
    assert [next(stream) for _ in range(5)] == [0, 1, 4, 9, 16]
    assert len(pulled) <= 5 + 2 * workers * 3  # at most 2 * workers chunks ahead
    assert list(stream) == [i * i for i in range(5, 50)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 2])
def test_an_unexpected_exception_names_the_item(workers):
    with pytest.raises(WorkerError) as error:
        list(ordered_map(fail_on_five, range(20), num_workers=workers, describe=name))
    assert str(error.value).startswith("item 5: unexpected ZeroDivisionError: five is not welcome. This is a bug or "
                                       "an input tfdet does not know; please report it with this message")
    if workers > 1:
        assert "worker traceback:" in str(error.value) and "fail_on_five" in str(error.value)


@pytest.mark.timeout(60)
def test_a_dead_worker_ends_the_map_with_an_error_instead_of_a_hang():
    with pytest.raises(WorkerError, match=r"a worker process died while handling item 4 \.\. item 7 \(killed, out of "
                                          r"memory or crashed\); run with one worker"):
        list(ordered_map(die_on_seven, range(40), num_workers=2, chunk_size=4, describe=name))


@pytest.mark.timeout(60)
def test_a_stuck_worker_is_stopped_after_the_timeout():
    started = time.perf_counter()
    with pytest.raises(WorkerError, match=r"^item 3: no result after 1 s; a worker is stuck"):
        list(ordered_map(hang_on_three, range(10), num_workers=2, chunk_size=1, timeout=1.0, describe=name))
    assert time.perf_counter() - started < 30  # the stuck worker was terminated, not waited for


@pytest.mark.timeout(60)
def test_an_item_that_cannot_be_sent_to_a_worker_is_named():
    items = [1, 2, lambda: 3, 4]
    with pytest.raises(WorkerError, match=r"item 1 \.\. item 4 could not be handed to a worker process "
                                          r"\((PicklingError|AttributeError): .*\); records must be plain data"):
        list(ordered_map(square, items, num_workers=2, chunk_size=4, describe=name))


def test_closing_early_stops_the_workers():
    import multiprocessing

    stream = ordered_map(square, range(100), num_workers=2)
    assert next(stream) == 0
    stream.close()
    deadline = time.time() + 20
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.1)
    assert multiprocessing.active_children() == []


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout must be positive seconds, got 0"):
        list(ordered_map(square, [1], num_workers=1, timeout=0))
