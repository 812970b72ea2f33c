"""Recording sent batches: at once on the dispatcher's connection, or in a thread.

A batch handed to its adapters (``Handed``) is recorded once they made its sends durable
(``Sender.settle``). Where that happens is the database's choice (``Connector.recorder``):
SQLite, one writer in process, records each batch on the dispatcher's connection before
the next is claimed (``Recorder``); PostgreSQL records it in a thread of its own while
the dispatcher claims and sends the next one (``BackgroundRecorder``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine, Row

from orchestrator.dispatch.decider import Outcome

__all__ = ["BackgroundRecorder", "Handed", "Recorder", "Settle"]

T = TypeVar("T")


@dataclass
class Handed:
    """A batch handed to its adapters, to be recorded (``Sender.settle``)."""

    refused: list[Outcome]  # judged at the claim not to go out, recorded already
    done: list[tuple[Row[Any], Outcome, str]]  # (occurrence, outcome, message id)
    unsent: list[tuple[Row[Any], str]]  # claimed, not handed over: stopping
    by_account: dict[str, Row[Any]]
    marks: dict[str, Any]  # the adapters' ``mark()`` just after the last send

    @property
    def opt_outs(self) -> bool:
        return any(o.opt_out for _, o, _ in self.done)


# Records a sent batch on a connection; returns its outcomes, those refused first.
Settle = Callable[[Connection, Handed, datetime], list[Outcome]]


class Recorder:
    """Records each batch on the dispatcher's connection as soon as it is handed over,
    and runs the next page's lease there once this page is done: one writer, in turn."""

    def __init__(self, settle: Settle):
        self._settle = settle

    def ahead(self, conn: Connection, work: Callable[[Connection], T]) -> Callable[[], T]:
        """``work`` (leasing the next page), to run when its result is asked for."""
        return lambda: work(conn)

    def record(self, conn: Connection, handed: Handed, now: datetime) -> list[Outcome]:
        """Record ``handed``; returns the outcomes of what is recorded by now."""
        return self._settle(conn, handed, now)

    def close(self) -> list[Outcome]:
        """The outcomes of what was recorded but not returned yet: none here."""
        return []


class BackgroundRecorder(Recorder):
    """Records sent batches one at a time, in order, in a thread and on a connection of
    its own, while the dispatcher claims and sends the next batch: PostgreSQL's work on
    one batch overlaps Python's on the next.

    The next claim does not need this batch's record: its sends count toward limits from
    ``sending`` on (a send that failed counts until it is recorded failed: a cap may
    hold one batch longer, never less), and its occurrences are no longer due.

    Its connection is in autocommit: what it runs is one statement each (a lease, a
    batch's record: ``Connector.settled``), each its own transaction, with no ``BEGIN``
    and ``COMMIT`` round trips around it. A batch whose record takes more than one
    statement (a provider's opt-out, sends given back) is recorded by the dispatcher,
    never here: the next judgement must see it."""

    def __init__(self, db: Engine, settle: Settle):
        super().__init__(settle)
        self._db = db
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outreach-record")
        self._conn: Connection | None = None
        self._pending: Future[list[Outcome]] | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._db.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _record(self, handed: Handed, now: datetime) -> list[Outcome]:
        return self._settle(self._connection(), handed, now)

    def ahead(self, conn: Connection, work: Callable[[Connection], T]) -> Callable[[], T]:
        """``work`` on this thread's connection, started now, after what was submitted
        before: the next page is leased while this one is sent."""
        return self._pool.submit(lambda: work(self._connection())).result

    def wait(self) -> list[Outcome]:
        """The outcomes of the batch being recorded, once it is ([] if none); raises what
        recording it raised."""
        pending, self._pending = self._pending, None
        return [] if pending is None else pending.result()

    def record(self, conn: Connection, handed: Handed, now: datetime) -> list[Outcome]:
        """Record ``handed`` once the batch before it is; returns that batch's outcomes
        (and this one's when the dispatcher records it itself, on ``conn``)."""
        if handed.opt_outs or handed.unsent:
            return self.wait() + self._settle(conn, handed, now)
        earlier = self.wait()
        self._pending = self._pool.submit(self._record, handed, now)
        return earlier

    def close(self) -> list[Outcome]:
        """Wait for the last batch; returns its outcomes."""
        try:
            return self.wait()
        finally:
            if self._conn is not None:
                self._pool.submit(self._conn.close).result()
            self._pool.shutdown()
