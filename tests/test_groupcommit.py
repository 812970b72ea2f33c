"""Group commit: items that share a transaction are each still all-or-nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator import db
from orchestrator.groupcommit import GroupCommit


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table note (id integer primary key, body text)"))
    yield engine
    engine.dispose()


def _insert(n: int, conn: Connection) -> int:
    conn.execute(sa.text("insert into note (id, body) values (:id, 'ok')"), {"id": n})
    if n == 7:
        raise ValueError("item 7 refuses")
    return n


def _stored(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("select id from note order by id"))]


def test_a_failing_item_rolls_back_alone_and_the_rest_commit_once(engine: Engine) -> None:
    batches: list[int] = []
    gate = threading.Event()

    commits = GroupCommit(engine.begin)
    original = commits._run

    def counting(batch):  # type: ignore[no-untyped-def]
        batches.append(len(batch))
        original(batch)

    commits._run = counting  # type: ignore[method-assign]

    def hold(conn: Connection) -> str:
        gate.wait(10)  # the writer is busy: everything below queues up into one batch
        return "held"

    async def main() -> list[object]:
        first = asyncio.ensure_future(commits.submit(hold))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(commits.submit(lambda c, n=n: _insert(n, c), key=str(n)))
                for n in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(main())
    commits.close()

    assert results[0] == "held"
    assert [r for r in results[1:] if not isinstance(r, Exception)] == [
        0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert isinstance(results[8], ValueError)
    assert _stored(engine) == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    # the ten queued items were first tried as one batch, then one by one
    assert batches[:2] == [1, 10]
    assert batches[2:] == [1] * 10


def test_a_lone_item_is_committed_without_waiting_for_company(engine: Engine) -> None:
    commits = GroupCommit(engine.begin)

    async def main() -> int:
        return int(await asyncio.wait_for(commits.submit(lambda c: _insert(1, c)), 5))

    assert asyncio.run(main()) == 1
    commits.close()
    assert _stored(engine) == [1]
