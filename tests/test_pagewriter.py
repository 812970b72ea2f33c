"""The planning round's page writer (a thread one page behind the planner) and the
collector held off while a page is planned."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from orchestrator.dispatch.gcpause import collector_held
from orchestrator.dispatch.pagewriter import PageWriter


def test_pages_are_written_in_order_in_another_thread_and_counted() -> None:
    written: list[int] = []
    threads: set[str] = set()

    def write(page: int) -> int:
        time.sleep(0.001 * (page % 3))  # pages of uneven cost
        threads.add(threading.current_thread().name)
        written.append(page)
        return page

    with PageWriter(write, depth=2) as writer:
        for page in range(50):
            writer.put(page)
    assert written == list(range(50))
    assert writer.total == sum(range(50))
    assert threads == {"planner-writer"}


def test_inline_writes_each_page_when_put() -> None:
    written: list[int] = []

    def write(page: int) -> int:
        written.append(page)
        return 1

    with PageWriter(write, threaded=False) as writer:
        writer.put(1)
        assert written == [1]  # at once, in this thread
        writer.put(2)
    assert writer.total == 2


def test_a_failed_write_stops_the_round_and_reaches_the_planner() -> None:
    written: list[int] = []

    def write(page: int) -> int:
        if page == 3:
            raise RuntimeError("database gone")
        written.append(page)
        return 1

    with pytest.raises(RuntimeError, match="database gone"):
        with PageWriter(write, depth=1) as writer:
            for page in range(20):
                writer.put(page)
    assert written == [0, 1, 2]  # nothing after the page that failed


def test_a_failed_write_of_the_last_page_is_raised_on_leaving() -> None:
    def write(page: int) -> int:
        raise ValueError("bad page")

    with pytest.raises(ValueError, match="bad page"):
        with PageWriter(write) as writer:
            writer.put(1)


def test_a_planner_that_fails_leaves_the_pages_waiting_unwritten() -> None:
    started, release = threading.Event(), threading.Event()
    written: list[int] = []

    def write(page: int) -> int:
        started.set()
        release.wait(5)
        written.append(page)
        return 1

    with pytest.raises(KeyError):
        with PageWriter(write, depth=3) as writer:
            writer.put(1)
            started.wait(5)
            writer.put(2)
            writer.put(3)
            release.set()
            raise KeyError("planner failed")
    assert written == [1]  # the page being written is finished; the queued ones are not


def test_wait_returns_once_the_pages_put_before_are_written() -> None:
    """A partition is let go once its pages are written, while later pages wait."""
    release = threading.Event()
    written: list[int] = []

    def write(page: int) -> int:
        if page == 3:
            release.wait(5)
        written.append(page)
        return 1

    with PageWriter(write, depth=3) as writer:
        for page in range(3):
            writer.put(page)
        mark = writer.put_count
        writer.put(3)  # held until released
        writer.wait(mark)
        assert written == [0, 1, 2]
        release.set()
        writer.wait(writer.put_count)
        assert written == [0, 1, 2, 3]


def test_wait_raises_the_error_of_a_page_that_failed() -> None:
    def write(page: int) -> int:
        if page == 1:
            raise RuntimeError("database gone")
        return 1

    with pytest.raises(RuntimeError, match="database gone"):
        with PageWriter(write) as writer:
            writer.put(0)
            writer.put(1)
            writer.put(2)
            writer.wait(writer.put_count)  # does not wait for the page never written


def test_wait_inline_has_nothing_to_wait_for() -> None:
    def write(page: int) -> int:
        return 1

    with PageWriter(write, threaded=False) as writer:
        writer.put(1)
        writer.wait(writer.put_count)
    assert writer.total == 1


def test_the_collector_is_held_while_a_page_runs_and_back_after() -> None:
    assert gc.isenabled()
    with collector_held():
        assert not gc.isenabled()
        with collector_held():  # nested (or another thread's page)
            assert not gc.isenabled()
        assert not gc.isenabled()  # still held by the outer page
    assert gc.isenabled()


def test_the_collector_stays_off_when_it_was_off_before() -> None:
    gc.disable()
    try:
        with collector_held():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_pages_held_in_two_threads_share_one_hold() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collector_held():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    with collector_held():
        pass
    assert not gc.isenabled()  # the other thread's page still runs
    leave.set()
    thread.join()
    assert gc.isenabled()
