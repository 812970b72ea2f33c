"""The events outbound webhooks carry, read from the tables the rest of the product
already writes (no sender has to remember to emit): each source is a table read past a
cursor (its highest row id queued, ``webhook_cursor``) and a function from one row to an
``EventDraft`` holding ids, channels, statuses and amounts only.

``emit`` reads every source past its cursor, queues one ``webhook_delivery`` row per
(subscription, event) the subscription wants, under the unique (subscription, event key),
and moves the cursors, in one transaction: reading the same rows again queues nothing.
A new source is one ``Source`` line in ``SOURCES`` (and its family in
``orchestrator.core.webhooks.EVENT_FAMILIES``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import takewhile
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchestrator.config.models import WebhookSubscription
from orchestrator.core.records import iso_utc
from orchestrator.core.webhooks import (
    EVENT_FAMILIES,
    EventDraft,
    matches,
    payload_body,
    webhook_id,
)
from orchestrator.store.db import insert_for
from orchestrator.store.tables import (
    AccountEvent,
    AuditLog,
    Decision,
    DeliveryEvent,
    OptOut,
    Payment,
    Promise,
    Send,
    WebhookCursor,
    WebhookDelivery,
    table_of,
)

__all__ = ["SOURCES", "Source", "emit"]

decision_t = table_of(Decision)
delivery_t = table_of(DeliveryEvent)
send_t = table_of(Send)
event_t = table_of(AccountEvent)
opt_out_t = table_of(OptOut)
promise_t = table_of(Promise)
payment_t = table_of(Payment)
audit_t = table_of(AuditLog)
cursor_t = table_of(WebhookCursor)
outbox_t = table_of(WebhookDelivery)

READ_BATCH = 1000  # rows read from one source in one pass
# Ids below a cursor looked at again at each pass: on PostgreSQL a transaction can commit
# a row after another transaction's row with a higher id was read (ids are handed out at
# insert, rows seen at commit). Such a row, found with no delivery queued, is queued then.
LATE_WINDOW = 500


def _money(value: Any) -> str | None:
    return None if value is None else f"{value:.2f}"


def _decision(row: Row[Any]) -> EventDraft:
    return EventDraft(
        key=f"decision:{row.id}",
        type=f"decision.{row.decision}",
        time=row.time,
        account_id=row.account_id,
        data={
            "debtor_id": row.debtor_id,
            "decision": row.decision,
            "reason": row.reason,
            "until": iso_utc(row.until),
            "stage": row.stage,
            "step": row.step,
            "channel": row.channel,
            "kind": row.kind,
            "message_id": row.message_id,
            "segment": row.segment,
            "experiment": row.experiment,
            "variant": row.variant,
        },
    )


def _delivery(row: Row[Any]) -> EventDraft:
    return EventDraft(
        key=f"delivery:{row.id}",
        type="delivery",
        time=row.time,
        account_id=row.account_id,
        data={"message_id": row.message_id, "channel": row.channel, "status": row.status},
    )


def _account_event(family: str) -> Callable[[Row[Any]], EventDraft]:
    """An ``account_event`` row: its channel and, for a click, the message clicked; for
    an inbound text, what it was read as (``kind``), never its words."""

    def draft(row: Row[Any]) -> EventDraft:
        detail = row.detail or {}
        data: dict[str, Any] = {"channel": row.channel}
        if family == "click":
            data["message_id"] = detail.get("message_id")
        if family == "inbound":
            data["kind"] = detail.get("kind")
        return EventDraft(f"{family}:{row.id}", family, row.time, row.account_id, data)

    return draft


def _opt_out(row: Row[Any]) -> EventDraft:
    return EventDraft(
        key=f"opt_out:{row.id}",
        type="opt_out",
        time=row.created_at,
        account_id=row.account_id,
        data={"debtor_id": row.debtor_id, "channel": row.channel, "source": row.source},
    )


def _promise(row: Row[Any]) -> EventDraft:
    data = {"promise_id": row.id, "amount": _money(row.amount), "due": row.due.isoformat()}
    if row.waived is not None:  # a settlement: what is waived if it is paid by its due date
        data["waived"] = _money(row.waived)
    return EventDraft(
        key=f"promise:{row.id}",
        type="promise",
        time=row.made_at,
        account_id=row.account_id,
        data=data,
    )


def _payment(row: Row[Any]) -> EventDraft:
    return EventDraft(
        key=f"payment:{row.id}",
        type="payment",
        time=row.paid_at,
        account_id=row.account_id,
        data={
            "payment_id": row.payment_id,
            "amount": _money(row.amount),
            "currency": row.currency,
            "source": row.source,
        },
    )


def _audited(family: str) -> Callable[[Row[Any]], EventDraft]:
    """An ``audit_log`` entry of a case or a task: its id, who acted, and the entry's
    detail (kinds, categories, types, outcomes: never free text)."""

    def draft(row: Row[Any]) -> EventDraft:
        data = {f"{family}_id": int(row.object_id), "actor": row.actor, **(row.detail or {})}
        return EventDraft(f"{family}:{row.id}", row.action, row.time, row.account_id, data)

    return draft


def _audit_of(family: str) -> sa.Select[Any]:
    return sa.select(audit_t).where(audit_t.c.action.in_(EVENT_FAMILIES[family]))


@dataclass(frozen=True)
class Source:
    """One table read for events: ``select`` gives its rows (with an ``id`` column) and
    ``draft`` makes each an event."""

    name: str
    select: Callable[[], sa.Select[Any]]
    draft: Callable[[Row[Any]], EventDraft]
    id_column: Callable[[], sa.ColumnElement[Any]]


def _events_of(type_: str) -> sa.Select[Any]:
    return sa.select(event_t).where(event_t.c.type == type_)


def _deliveries() -> sa.Select[Any]:
    return sa.select(
        delivery_t.c.id,
        delivery_t.c.time,
        delivery_t.c.status,
        delivery_t.c.message_id,
        send_t.c.account_id,
        send_t.c.channel,
    ).join(send_t, send_t.c.id == delivery_t.c.send_id)


SOURCES: tuple[Source, ...] = (
    Source("decision", lambda: sa.select(decision_t), _decision, lambda: decision_t.c.id),
    Source("delivery", _deliveries, _delivery, lambda: delivery_t.c.id),
    Source("click", lambda: _events_of("click"), _account_event("click"), lambda: event_t.c.id),
    Source(
        "inbound",
        lambda: _events_of("inbound_sms"),
        _account_event("inbound"),
        lambda: event_t.c.id,
    ),
    Source("opt_out", lambda: sa.select(opt_out_t), _opt_out, lambda: opt_out_t.c.id),
    Source("promise", lambda: sa.select(promise_t), _promise, lambda: promise_t.c.id),
    Source("payment", lambda: sa.select(payment_t), _payment, lambda: payment_t.c.id),
    Source("case", lambda: _audit_of("case"), _audited("case"), lambda: audit_t.c.id),
    Source("task", lambda: _audit_of("task"), _audited("task"), lambda: audit_t.c.id),
)


_RANK = {source.name: rank for rank, source in enumerate(SOURCES)}


def _cursor(conn: Connection, source: str) -> tuple[int, int]:
    """How far ``source`` was read, and where reading started (0, 0: from its first row;
    the migration that made the outbox set each source at its end, so upgrading does not
    post the past)."""
    found = conn.execute(
        sa.select(cursor_t.c.last_id, cursor_t.c.start_id).where(cursor_t.c.source == source)
    ).first()
    return (0, 0) if found is None else (int(found.last_id), int(found.start_id))


def _end(conn: Connection, source: Source) -> int:
    """The highest row id of ``source`` now (0 when empty)."""
    return int(conn.execute(sa.select(sa.func.max(source.id_column()))).scalar() or 0)


def _move_cursor(
    conn: Connection, source: str, last_id: int, now: datetime, *, restart: bool = False
) -> None:
    """Record ``source`` read up to ``last_id``; with ``restart``, also as where reading
    starts (nothing up to it is ever posted)."""
    insert = insert_for(conn)
    values = {"source": source, "last_id": last_id, "start_id": last_id if restart else 0}
    statement = insert(cursor_t).values(**values, updated_at=now)
    update = {"last_id": statement.excluded.last_id, "updated_at": now}
    if restart:
        update["start_id"] = statement.excluded.start_id
    conn.execute(statement.on_conflict_do_update(index_elements=["source"], set_=update))


def _read(conn: Connection, source: Source, limit: int) -> tuple[list[EventDraft], bool]:
    """The events of ``source`` past its cursor, in row order (at most ``limit``), and
    whether there may be more."""
    column = source.id_column()
    query = source.select().where(column > _cursor(conn, source.name)[0])
    rows = conn.execute(query.order_by(column).limit(limit)).all()
    return [source.draft(row) for row in rows], len(rows) >= limit


def _late(
    conn: Connection, source: Source, subscriptions: Sequence[WebhookSubscription]
) -> list[EventDraft]:
    """Events of the ``LATE_WINDOW`` ids up to the cursor that were never queued: rows
    committed after the cursor passed them. A row queued for none of the subscriptions
    counts as not read (one that no subscription wanted is then dropped again)."""
    cursor, start = _cursor(conn, source.name)
    if cursor <= start:
        return []
    column = source.id_column()
    window = sa.and_(column > max(cursor - LATE_WINDOW, start), column <= cursor)
    events = [source.draft(row) for row in conn.execute(source.select().where(window))]
    if not events:
        return []
    o = outbox_t.c
    queued = set(
        conn.execute(
            sa.select(o.event_key).where(
                o.subscription_id.in_([sub.id for sub in subscriptions]),
                o.event_key.in_([e.key for e in events]),
            )
        ).scalars()
    )
    return [e for e in events if e.key not in queued]


def _row_id(event: EventDraft) -> int:
    return int(event.key.split(":", 1)[1])


def emit(
    conn: Connection,
    subscriptions: Sequence[WebhookSubscription],
    now: datetime,
    *,
    limit: int = READ_BATCH,
) -> int:
    """Queue the events written since the last pass for the subscriptions that want them,
    oldest first across sources; the number of deliveries queued. Without subscriptions
    the cursors only move to the end, so subscribing later does not replay history.

    When a source has more than ``limit`` new rows (a backlog), only events up to the
    latest instant read from it are queued from the others, so that a later pass does not
    queue an account's older events after its newer ones; the rest are read again then."""
    if not subscriptions:
        for source in SOURCES:
            _move_cursor(conn, source.name, _end(conn, source), now, restart=True)
        return 0
    drafts = [late for source in SOURCES for late in _late(conn, source, subscriptions)]
    read = {source.name: _read(conn, source, limit) for source in SOURCES}
    full = [max(e.time for e in events) for events, more in read.values() if more]
    horizon = min(full, default=None)
    for name, (events, _) in read.items():
        taken = events if horizon is None else list(takewhile(lambda e: e.time <= horizon, events))
        drafts.extend(taken)
        if taken:
            _move_cursor(conn, name, _row_id(taken[-1]), now)
    queued = 0
    for event in sorted(drafts, key=_order):
        for sub in subscriptions:
            if matches(sub.events, event.type):
                queued += _enqueue(conn, sub.id, event, now)
    return queued


def _order(event: EventDraft) -> tuple[datetime, int, int]:
    """Events queue in time order; at the same instant, in ``SOURCES`` order, then row."""
    source, row_id = event.key.split(":", 1)
    return (event.time, _RANK[source], int(row_id))


def _enqueue(conn: Connection, subscription: str, event: EventDraft, now: datetime) -> int:
    insert = insert_for(conn)
    result = conn.execute(
        insert(outbox_t)
        .values(
            subscription_id=subscription,
            event_key=event.key,
            webhook_id=webhook_id(subscription, event.key),
            type=event.type,
            account_id=event.account_id,
            order_key=event.order_key,
            event_time=event.time,
            body=payload_body(event),
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["subscription_id", "event_key"])
        .returning(outbox_t.c.id)
    ).first()
    return 0 if result is None else 1
