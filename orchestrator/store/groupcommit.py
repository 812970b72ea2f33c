"""Group commit: many small write transactions from concurrent requests run as one.

A burst of provider status callbacks is hundreds of tiny transactions a second, each
costing a commit (an fsync on PostgreSQL) and a thread hop. A writer thread takes
whatever has queued up since its last commit, runs every item on one connection, in one
transaction, and commits once. Nothing waits for a batch to fill: a lone request is
committed at once; under load the batches grow by themselves. SQLite has one writer
thread (it has one writer anyway); PostgreSQL a few, so that one batch's round trips
overlap another's.

The caller says how a list of items is written (``run(conn, items) -> results``, one result
per item, as if each had been written alone in that order): one statement for many items
where it can, saving round trips as well as commits. Each item is all-or-nothing as before. If one item raises, the whole transaction is
rolled back and the items are run again one transaction each, so the failing item gets
its own exception and the others are still stored exactly once. Items are run in the
order of their ``key`` (stable, so two callbacks for the same send keep their order),
which keeps concurrent batches from taking row locks in opposite orders.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

log = logging.getLogger("outreach.groupcommit")

RunMany = Callable[[Connection, list[Any]], list[Any]]


@dataclass
class _Item:
    payload: Any
    key: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommit:
    """Writer threads; ``await submit(item)`` returns the item's result once committed."""

    def __init__(
        self,
        tx: Callable[[], AbstractContextManager[Connection]],
        run: RunMany,
        *,
        writers: int = 1,
        limit: int = 100,
        name: str = "outreach-commit",
    ):
        self._tx = tx
        self._run_many = run
        self._limit = limit
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    async def submit(self, payload: Any, key: str = "") -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Item(payload, key, loop, future))
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _batches(self) -> Iterator[list[_Item]]:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._limit:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    yield batch
                    return
                batch.append(item)
            yield batch

    def _loop(self) -> None:
        for batch in self._batches():
            batch.sort(key=lambda item: item.key)
            self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        try:
            with self._tx() as conn:
                results = self._run_many(conn, [item.payload for item in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
            if len(batch) > 1:
                log.info(
                    "batch rolled back, retrying its items one by one", extra={"items": len(batch)}
                )
                for item in batch:
                    self._run([item])
                return
            self._deliver(batch[0], None, exc)
            return
        for item, result in zip(batch, results, strict=True):
            self._deliver(item, result, None)

    @staticmethod
    def _deliver(item: _Item, result: Any, error: BaseException | None) -> None:
        try:
            item.loop.call_soon_threadsafe(_settle, item.future, result, error)
        except RuntimeError:  # the request's loop has closed: nobody is waiting
            pass
