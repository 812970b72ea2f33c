"""Group commit: items that share a transaction are each still all-or-nothing, and a
batch of status callbacks ends exactly as the same callbacks taken one by one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine
from support import insert_sends

from channels.base import DeliveryStatus
from orchestrator.core.records import Reason
from orchestrator.store import db, facts
from orchestrator.store.groupcommit import GroupCommit
from orchestrator.store.tables import Decision, DeliveryEvent, Send, table_of


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


def _each(conn: Connection, works: list[Callable[[Connection], object]]) -> list[object]:
    return [work(conn) for work in works]


def _stored(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("select id from note order by id"))]


def test_a_failing_item_rolls_back_alone_and_the_rest_commit_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    gate = threading.Event()

    commits = GroupCommit(engine.begin, _each)
    original = commits._run

    def counting(batch: list[Any]) -> None:
        batches.append(len(batch))
        original(batch)

    monkeypatch.setattr(commits, "_run", counting)

    def hold(conn: Connection) -> str:
        gate.wait(10)  # the writer is busy: everything below queues up into one batch
        return "held"

    async def main() -> list[object]:
        first = asyncio.ensure_future(commits.submit(hold))
        await asyncio.sleep(0.05)
        rest = [
            asyncio.ensure_future(commits.submit(lambda c, n=n: _insert(n, c), key=str(n)))
            for n in range(10)
        ]
        await asyncio.sleep(0.05)
        gate.set()
        results: list[object] = await asyncio.gather(first, *rest, return_exceptions=True)
        return results

    results = asyncio.run(main())
    commits.close()

    assert results[0] == "held"
    assert [r for r in results[1:] if not isinstance(r, Exception)] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert isinstance(results[8], ValueError)
    assert _stored(engine) == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    # the ten queued items were first tried as one batch, then one by one
    assert batches[:2] == [1, 10]
    assert batches[2:] == [1] * 10


def test_a_lone_item_is_committed_without_waiting_for_company(engine: Engine) -> None:
    commits = GroupCommit(engine.begin, _each)

    async def main() -> int:
        return int(await asyncio.wait_for(commits.submit(lambda c: _insert(1, c)), 5))

    assert asyncio.run(main()) == 1
    commits.close()
    assert _stored(engine) == [1]


# --- many status callbacks at once = the same callbacks one after another ------------------

SEND_STATES = ["sending", "sent", "ambiguous", "delivered", "failed"]
STATUSES = [
    DeliveryStatus.sent,
    DeliveryStatus.delivered,
    DeliveryStatus.undelivered,
    DeliveryStatus.failed,
    DeliveryStatus.queued,
    DeliveryStatus.clicked,
]


@pytest.fixture(scope="module")
def sends_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path_factory.mktemp('deliveries') / 'outreach.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    at = datetime(2026, 3, 10, 15, tzinfo=UTC)
    with engine.begin() as conn:
        insert_sends(
            conn,
            [
                {
                    "message_id": f"m{n}",
                    "provider_id": None if n == 5 else f"SM{n}",
                    "status": SEND_STATES[n % len(SEND_STATES)],
                    "sent_at": at,
                }
                for n in range(6)
            ],
        )
    yield engine
    engine.dispose()


def _state(conn: Connection) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    sends = conn.execute(
        sa.select(
            table_of(Send).c.message_id, table_of(Send).c.status, table_of(Send).c.provider_id
        ).order_by(table_of(Send).c.id)
    ).all()
    events = conn.execute(
        sa.select(
            table_of(DeliveryEvent).c.provider_event_key, table_of(DeliveryEvent).c.status
        ).order_by(table_of(DeliveryEvent).c.provider_event_key)
    ).all()
    return [tuple(r) for r in sends], [tuple(r) for r in events]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from(STATUSES), st.integers(0, 2)),
        min_size=1,
        max_size=12,
    )
)
def test_a_batch_of_callbacks_ends_as_if_taken_one_by_one(
    sends_db: Engine, calls: list[tuple[int, DeliveryStatus, int]]
) -> None:
    at = datetime(2026, 3, 10, 16, tzinfo=UTC)
    deliveries = [
        facts.Delivery(
            provider_id=f"SM{n}",
            message_id=f"m{n}" if n == 5 else None,
            status=status,
            event_key=f"SM{n}:{status}:{seq}",
            at=at,
        )
        for n, status, seq in calls
    ]  # n == 6: no such send; n == 5: found by message id
    outcomes = []
    for together in (False, True):
        with sends_db.connect() as conn, conn.begin() as tx:
            if together:
                results = facts.record_deliveries(conn, deliveries)
            else:
                results = [
                    facts.record_delivery(
                        conn,
                        provider_id=d.provider_id,
                        message_id=d.message_id,
                        status=d.status,
                        event_key=d.event_key,
                        at=d.at,
                    )
                    for d in deliveries
                ]
            outcomes.append((results, _state(conn)))
            tx.rollback()
    assert outcomes[1] == outcomes[0]


def test_a_callback_for_an_ambiguous_send_records_it_sent_by_the_provider(db_url: str) -> None:
    """The send did go out: a second decision says so, at the callback's instant, in the
    debtor's local time (the offset of the ambiguous record), with its own reason code."""
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    sent_at = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    callback = datetime(2026, 3, 2, 15, 7, tzinfo=UTC)
    decision_t = table_of(Decision)
    with engine.begin() as conn:
        insert_sends(
            conn,
            [{"message_id": "m1", "provider_id": "SM1", "status": "ambiguous", "sent_at": sent_at}],
        )
        conn.execute(
            decision_t.insert().values(
                time=sent_at,
                local_time="2026-03-02T10:00:00-05:00",
                account_id="A1",
                debtor_id="D1",
                step="s",
                channel="sms",
                kind="collection",
                decision="ambiguous",
                reason="provider_error",
                message_id="m1",
            )
        )
        facts.record_delivery(
            conn,
            provider_id="SM1",
            message_id=None,
            status=DeliveryStatus.delivered,
            event_key="SM1:delivered",
            at=callback,
        )
    with engine.connect() as conn:
        last = conn.execute(sa.select(decision_t).order_by(decision_t.c.id.desc())).first()
    engine.dispose()
    assert last is not None
    assert (last.decision, last.reason, last.time, last.local_time) == (
        "sent",
        Reason.confirmed_by_provider,
        callback,
        "2026-03-02T10:07:00-05:00",
    )
