"""Work on a thread of its own: it really runs while the main thread works, keeps the order, and
hands its errors back."""
import threading

import pytest

from utils.background import Behind, ahead


def test_ahead_produces_the_next_item_while_the_consumer_holds_this_one():
    produced = [threading.Event() for _ in range(4)]

    def items():
        for i in range(4):
            produced[i].set()
            yield i

    seen = []
    for item in ahead(items(), depth=1):
        if item + 1 < 4:
            assert produced[item + 1].wait(5), "the next item was not made while this one was in use"
        seen.append(item)
    assert seen == [0, 1, 2, 3]


def test_ahead_raises_the_producers_error_in_order_and_stops_it_when_left():
    def failing():
        yield 1
        raise ValueError("broken source")

    got = []
    with pytest.raises(ValueError, match="broken source"):
        for item in ahead(failing()):
            got.append(item)
    assert got == [1]
    made = []

    def endless():
        while True:
            made.append(len(made))
            yield made[-1]

    for item in ahead(endless(), depth=2):
        if item == 3:
            break
    assert len(made) <= 3 + 1 + 2 + 1  # the producer stopped soon after the consumer left


def test_behind_consumes_in_order_on_another_thread_and_reports_its_error():
    threads, seen = set(), []

    def consume(item):
        threads.add(threading.get_ident())
        seen.append(item)

    with Behind(consume) as behind:
        for i in range(20):
            behind.put(i)
    assert seen == list(range(20)) and threading.get_ident() not in threads

    def fail(item):
        if item == 2:
            raise OSError("disk full")
        seen.append(item)

    seen.clear()
    with pytest.raises(OSError, match="disk full"):
        with Behind(fail) as behind:
            for i in range(5):
                behind.put(i)
    assert seen == [0, 1]  # nothing after the failure was consumed


def test_leaving_ahead_early_never_waits_on_a_full_queue():
    for stop_after in range(4):  # including when the producer has finished and waits to say so
        seen = []
        for item in ahead(iter(range(3)), depth=1):
            seen.append(item)
            if item == stop_after:
                break
        assert seen == list(range(min(stop_after, 2) + 1))
