"""The outbox of outbound webhooks (``webhook_delivery``): which deliveries may be posted
now, their claim by one worker, their outcome, the dead letters and their replay.

Order per account: a delivery is posted only when no earlier delivery of the same
subscription and ``order_key`` (the account) is still pending or being sent, so a
receiver never sees an account's next event while the previous one is retrying. A dead
letter no longer holds the account back: it waits for ``outreach webhooks replay``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchestrator.core.records import iso_utc
from orchestrator.store.tables import AuditLog, WebhookDelivery, table_of

__all__ = [
    "OPEN",
    "claim",
    "due_heads",
    "listing",
    "record_delivered",
    "record_failed",
    "replay",
    "summary",
]

outbox_t = table_of(WebhookDelivery)
audit_t = table_of(AuditLog)
OPEN = ("pending", "sending")  # not yet delivered nor given up


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Pending and due (NULL: at once, as a replay leaves it), or left ``sending`` by a
    worker whose lease ran out."""
    o = outbox_t.c
    return sa.or_(
        sa.and_(
            o.state == "pending", sa.or_(o.next_attempt_at.is_(None), o.next_attempt_at <= now)
        ),
        sa.and_(o.state == "sending", o.lease_until <= now),
    )


def due_heads(
    conn: Connection, subscriptions: Collection[str], now: datetime, limit: int
) -> list[Row[Any]]:
    """Deliveries that may be posted at ``now``: due (or left ``sending`` by a worker
    whose lease ran out), of a configured subscription, and each the earliest open one
    of its (subscription, account)."""
    o = outbox_t.c
    earlier = outbox_t.alias("earlier")
    e = earlier.c
    blocked = (
        sa.select(e.id)
        .where(
            e.subscription_id == o.subscription_id,
            e.order_key == o.order_key,
            e.id < o.id,
            e.state.in_(OPEN),
        )
        .exists()
    )
    query = (
        sa.select(outbox_t)
        .where(_due(now), o.subscription_id.in_(list(subscriptions)), ~blocked)
        .order_by(o.id)
        .limit(limit)
    )
    return list(conn.execute(query).all())


def claim(conn: Connection, delivery_id: int, now: datetime, lease: timedelta) -> bool:
    """Take one delivery for posting until ``now + lease``; False if another worker has
    it (or it is no longer due)."""
    o = outbox_t.c
    result = conn.execute(
        outbox_t.update()
        .where(
            o.id == delivery_id,
            _due(now),
        )
        .values(state="sending", lease_until=now + lease)
    )
    return result.rowcount == 1


def record_delivered(conn: Connection, delivery_id: int, status: int, now: datetime) -> None:
    conn.execute(
        outbox_t.update()
        .where(outbox_t.c.id == delivery_id)
        .values(
            state="delivered",
            attempts=outbox_t.c.attempts + 1,
            last_status=status,
            last_error=None,
            lease_until=None,
            delivered_at=now,
        )
    )


def record_failed(
    conn: Connection,
    delivery_id: int,
    *,
    status: int | None,
    error: str,
    now: datetime,
    retry_at: datetime | None,
) -> None:
    """A failed attempt: tried again at ``retry_at``, or dead-lettered when None."""
    values: dict[str, Any] = {
        "attempts": outbox_t.c.attempts + 1,
        "last_status": status,
        "last_error": error[:500],
        "lease_until": None,
    }
    if retry_at is None:
        values.update(state="dead", dead_at=now, next_attempt_at=None)
    else:
        values.update(state="pending", next_attempt_at=retry_at)
    conn.execute(outbox_t.update().where(outbox_t.c.id == delivery_id).values(values))


def replay(
    conn: Connection,
    now: datetime,
    actor: str,
    *,
    subscription: str | None = None,
    since: datetime | None = None,
    ids: Sequence[int] = (),
) -> list[int]:
    """Queue deliveries again, due at once (``next_attempt_at`` NULL, whatever clock the
    daemon runs on) with their attempts reset: those of ``ids``
    (whatever their state, but not one being sent), else every dead letter (of
    ``subscription``, dead since ``since``). The ids queued, in order; audited as
    ``webhooks.replay`` by ``actor``."""
    o = outbox_t.c
    where: list[Any] = []
    if ids:
        where.append(o.id.in_(list(ids)))
        where.append(o.state != "sending")
    else:
        where.append(o.state == "dead")
        if since is not None:
            where.append(o.dead_at >= since)
    if subscription is not None:
        where.append(o.subscription_id == subscription)
    chosen = [int(i) for i in conn.execute(sa.select(o.id).where(*where).order_by(o.id)).scalars()]
    if chosen:
        conn.execute(
            outbox_t.update()
            .where(o.id.in_(chosen))
            .values(
                state="pending",
                attempts=0,
                next_attempt_at=None,
                lease_until=None,
                dead_at=None,
                delivered_at=None,
            )
        )
        conn.execute(
            audit_t.insert().values(
                time=now,
                actor=actor,
                action="webhooks.replay",
                object_type="webhook_delivery",
                object_id=None,
                detail={"ids": chosen, "subscription": subscription},
            )
        )
    return chosen


def _as_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription": row.subscription_id,
        "webhook_id": row.webhook_id,
        "type": row.type,
        "account_id": row.account_id,
        "event_time": iso_utc(row.event_time),
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": iso_utc(row.next_attempt_at),
        "last_status": row.last_status,
        "last_error": row.last_error,
        "delivered_at": iso_utc(row.delivered_at),
        "dead_at": iso_utc(row.dead_at),
    }


def listing(
    conn: Connection,
    *,
    dead: bool = False,
    subscription: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The latest deliveries (only dead letters with ``dead``), newest first."""
    o = outbox_t.c
    query = sa.select(outbox_t).order_by(o.id.desc()).limit(limit)
    if dead:
        query = query.where(o.state == "dead")
    if subscription is not None:
        query = query.where(o.subscription_id == subscription)
    return [_as_json(row) for row in conn.execute(query)]


def summary(conn: Connection) -> dict[str, Any]:
    """What ``outreach status`` shows: deliveries pending (of which retrying: failed at
    least once), being sent and dead, per subscription; the oldest open event."""
    o = outbox_t.c
    retrying = sa.func.sum(sa.case((sa.and_(o.state == "pending", o.attempts > 0), 1), else_=0))
    rows = conn.execute(
        sa.select(o.subscription_id, o.state, sa.func.count(), retrying)
        .where(o.state != "delivered")
        .group_by(o.subscription_id, o.state)
        .order_by(o.subscription_id, o.state)
    ).all()
    per: dict[str, dict[str, int]] = {}
    for sub, state, n, retried in rows:
        counts = per.setdefault(sub, {"pending": 0, "retrying": 0, "sending": 0, "dead": 0})
        counts[state] = int(n)
        if state == "pending":
            counts["retrying"] = int(retried or 0)
    oldest = conn.execute(sa.select(sa.func.min(o.event_time)).where(o.state.in_(OPEN))).scalar()
    return {
        "subscriptions": per,
        "dead": sum(c["dead"] for c in per.values()),
        "retrying": sum(c["retrying"] for c in per.values()),
        "oldest_open_event": iso_utc(oldest),
    }
