"""A planning round's writes, in a thread of their own, one page behind its planning.

A planning page is read from the database, planned in Python, then written back
(occurrences, due times, stages). Done in turn, the database idles while Python plans
and Python idles while the database writes. So the pages' writes go to a thread of their
own, which writes each page in its own transaction, in order, while the next page is
read and planned; the driver lets go of the interpreter while it waits for the server.
1M accounts on PostgreSQL: the round took 141 s in turn, 98 to 117 s with the writes
behind. (Reading the pages' rows ahead in a third thread gained nothing more: the
threads then wait for the interpreter, not for the database; finding the next
partition's due ids ahead does gain, as that is the server's work. On SQLite, whose
writes are the process's own work, the planner writes its pages itself.)

At most ``depth`` pages wait to be written: memory stays a few pages whatever the
portfolio. A write that fails stops the round: the planner hears of it at its next
page, or when it closes the writer, and the pages not yet written are not written.
Each page is written whole (its own transaction) or not at all, and a round stopped
halfway is finished by the next (planning is idempotent).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["PageWriter"]

P = TypeVar("P")

_DONE = object()


class PageWriter(Generic[P]):
    """Calls ``write(page)`` for each page ``put``, in order, in a thread of its own;
    the sum of what it returned is ``total`` once the writer is closed. Used as a
    context manager: leaving the block waits for the pages put to be written (or, on
    an error in the block, for the page being written) and raises a write's error."""

    def __init__(
        self,
        write: Callable[[P], int],
        *,
        threaded: bool = True,
        depth: int = 2,
        name: str = "planner-writer",
    ):
        self._write = write
        self._threaded = threaded  # False: each page written when put, in this thread
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()  # the planner failed: write nothing more
        self.total = 0
        self.put_count = 0  # pages put so far
        self._written = 0  # pages written so far
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> PageWriter[P]:
        if self._threaded:
            self._thread.start()
        return self

    def put(self, page: P) -> None:
        """Queue a page to be written (waits while ``depth`` pages wait); raises the
        error of a write that failed, if one did."""
        self.put_count += 1
        if not self._threaded:
            self.total += self._write(page)
            self._written += 1
            return
        self._raise()
        while True:
            try:
                self._queue.put(page, timeout=0.5)
                return
            except queue.Full:
                self._raise()
                if not self._thread.is_alive():  # (cannot happen: it stops on _DONE)
                    raise RuntimeError("the planning writer stopped") from None

    def wait(self, count: int) -> None:
        """Wait until the first ``count`` pages put are written; raises the error of a
        write that failed, if one did (those pages will not be)."""
        with self._progress:
            while self._written < count and self._error is None:
                self._progress.wait(timeout=0.5)
        self._raise()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._threaded:
            return
        if kind is not None:
            self._stop.set()
        self._queue.put(_DONE)
        self._thread.join()
        if kind is None:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            page = self._queue.get()
            if page is _DONE:
                return
            if self._error is not None or self._stop.is_set():
                continue  # drain: the round stops
            try:
                self.total += self._write(page)
            except BaseException as exc:  # handed to the planner's thread
                self._error = exc
            with self._progress:
                self._written += 1
                self._progress.notify_all()
