"""What ``at: best`` learns, in the database: ``contact_hour`` counts, folded in by the
planning round from the decision log and the answers that followed each send.

``fold`` runs at the start of each planning round (one worker at a time:
``Connector.fold_turn``), as ``simulate`` folds before it plans a day: the sends whose
attribution window has closed since the last fold are counted, each once, answered or not
(``core.besttime.HourLearner`` decides which, the same code ``simulate`` runs). The
window closes ``attribution`` after a send, so a count lags the send by that much.
``load_book`` reads what a planning page needs: its debtors' own counts and every
segment's and the portfolio's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.config.models import BestTime
from orchestrator.core.besttime import (
    DEBTOR,
    PORTFOLIO,
    RESPONSE_EVENTS,
    SEGMENT,
    Counts,
    HourBook,
    HourLearner,
)
from orchestrator.core.state import RESPONDED
from orchestrator.store.db import insert_for
from orchestrator.store.inlist import one_of
from orchestrator.store.tables import (
    AccountEvent,
    BestTimeFold,
    ContactHour,
    Decision,
    DeliveryEvent,
    Payment,
    Promise,
    Send,
    UTCDateTime,
    table_of,
)

__all__ = ["FIRST_LOOKBACK", "answers_for", "fold", "load_book", "replay_sends", "sends_between"]

hour_t = table_of(ContactHour)
fold_t = table_of(BestTimeFold)
decision_t = table_of(Decision)
event_t = table_of(AccountEvent)
payment_t = table_of(Payment)
promise_t = table_of(Promise)
delivery_t = table_of(DeliveryEvent)
send_t = table_of(Send)

# The first fold (``at: best`` newly configured) learns from this much history.
FIRST_LOOKBACK = timedelta(days=90)

_T = UTCDateTime()


def sends_between(conn: Connection, start: datetime, now: datetime) -> Sequence[Any]:
    """The ``sent`` decisions of ``(start, now]``, in time order."""
    d = decision_t.c
    return conn.execute(
        sa.select(d.time, d.account_id, d.debtor_id, d.channel, d.segment, d.local_time)
        .where(
            d.decision == "sent",
            d.channel.is_not(None),
            d.message_id.is_not(None),
            d.time > sa.bindparam("start", type_=_T),
            d.time <= sa.bindparam("now", type_=_T),
        )
        .order_by(d.time, d.id),
        {"start": start, "now": now},
    ).all()


def answers_for(
    conn: Connection, accounts: list[str], start: datetime, now: datetime
) -> list[tuple[datetime, str]]:
    """(time, account) of everything that answers a send, for these accounts."""
    params = {"ids": accounts, "start": start, "now": now}
    lo, hi = sa.bindparam("start", type_=_T), sa.bindparam("now", type_=_T)
    e, p, pr = event_t.c, payment_t.c, promise_t.c
    de, s = delivery_t.c, send_t.c
    queries = [
        sa.select(e.time, e.account_id).where(
            one_of(e.account_id, "ids"),
            e.type.in_(sorted(RESPONSE_EVENTS)),
            e.time > lo,
            e.time <= hi,
        ),
        sa.select(p.paid_at, p.account_id).where(
            one_of(p.account_id, "ids"), p.paid_at > lo, p.paid_at <= hi
        ),
        sa.select(pr.made_at, pr.account_id).where(
            one_of(pr.account_id, "ids"), pr.made_at > lo, pr.made_at <= hi
        ),
        sa.select(de.time, s.account_id)
        .join(send_t, s.message_id == de.message_id)
        .where(
            one_of(s.account_id, "ids"),
            de.status.in_(sorted(RESPONDED)),
            de.time > lo,
            de.time <= hi,
        ),
    ]
    out: list[tuple[datetime, str]] = []
    for query in queries:
        out.extend((row[0], row[1]) for row in conn.execute(query, params))
    return out


def _hour(local_time: str | None, fallback: datetime) -> int:
    """The local hour a decision record gives (``YYYY-MM-DDTHH:MM:SS±hh:mm``)."""
    try:
        return int((local_time or "")[11:13])
    except ValueError:
        return fallback.hour


def replay_sends(
    conn: Connection,
    learner: HourLearner,
    sends: Sequence[Any],
    start: datetime,
    now: datetime,
    slot: Callable[[Any], int],
) -> None:
    """Feed ``learner`` these sends (rows of ``sends_between``), each in its ``slot`` (the
    local hour), and the answers on their accounts up to ``now``, in time order."""
    if not sends:
        return
    accounts = sorted({row.account_id for row in sends})
    timeline: list[tuple[datetime, int, Any]] = [(row.time, 0, row) for row in sends]
    timeline.extend((at, 1, account) for at, account in answers_for(conn, accounts, start, now))
    timeline.sort(key=lambda item: (item[0], item[1]))
    for at, what, item in timeline:
        if what == 0:
            learner.sent(
                item.account_id,
                at,
                debtor=item.debtor_id,
                segment=item.segment,
                channel=item.channel,
                slot=slot(item),
            )
        else:
            learner.answered(item, at)


def fold(conn: Connection, now: datetime, settings: BestTime) -> int:
    """Count the sends whose attribution window closed since the last fold; how many."""
    window = settings.attribution.delta
    upto = now - window
    last = conn.execute(sa.select(fold_t.c.folded_until).where(fold_t.c.id == 1)).scalar()
    start = last if last is not None else upto - FIRST_LOOKBACK
    if upto <= start:
        return 0
    sends = sends_between(conn, start, now)
    learner = HourLearner(settings)
    replay_sends(conn, learner, sends, start, now, lambda row: _hour(row.local_time, row.time))
    counted = learner.fold(now)  # exactly the sends up to ``upto``
    _add(conn, learner.book)
    _set_folded(conn, upto, last is None)
    return counted


def _add(conn: Connection, deltas: HourBook) -> None:
    """Add the counts of ``deltas`` to the stored rows (read, add, write: one worker
    folds at a time, ``Connector.fold_turn``)."""
    if not deltas.cells:
        return
    h = hour_t.c
    stored = HourBook()
    for scope in (DEBTOR, SEGMENT, PORTFOLIO):
        keys = sorted({key for s, key, _ in deltas.cells if s == scope})
        if not keys:
            continue
        query = sa.select(h.scope, h.key, h.channel, h.sent, h.answered).where(
            h.scope == scope, one_of(h.key, "keys")
        )
        for row in conn.execute(query, {"keys": keys}):
            stored.put(row.scope, row.key, row.channel, Counts.parse(row.sent, row.answered))
    rows = []
    for (scope, key, channel), delta in deltas.cells.items():
        total = stored.of(scope, key, channel) or Counts.empty()
        sent = [a + b for a, b in zip(total.sent, delta.sent, strict=True)]
        answered = [a + b for a, b in zip(total.answered, delta.answered, strict=True)]
        sent_text, answered_text = Counts(sent, answered).text()
        rows.append(
            {
                "scope": scope,
                "key": key,
                "channel": channel,
                "sent": sent_text,
                "answered": answered_text,
            }
        )
    insert = insert_for(conn)
    statement = insert(hour_t)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["scope", "key", "channel"],
            set_={"sent": statement.excluded.sent, "answered": statement.excluded.answered},
        ),
        rows,
    )


def _set_folded(conn: Connection, upto: datetime, first: bool) -> None:
    if first:
        conn.execute(fold_t.insert().values(id=1, folded_until=upto))
    else:
        conn.execute(fold_t.update().where(fold_t.c.id == 1).values(folded_until=upto))


def load_book(conn: Connection, debtors: Iterable[str]) -> HourBook:
    """These debtors' own counts, and every segment's and the portfolio's (two reads by
    the primary key; one row per debtor and channel)."""
    h = hour_t.c
    columns = (h.scope, h.key, h.channel, h.sent, h.answered)
    book = HourBook()
    for query, params in (
        (sa.select(*columns).where(h.scope.in_([SEGMENT, PORTFOLIO])), {}),
        (
            sa.select(*columns).where(h.scope == DEBTOR, one_of(h.key, "debtors")),
            {"debtors": sorted(set(debtors))},
        ),
    ):
        for scope, key, channel, sent, answered in conn.execute(query, params):
            book.put_text(scope, key, channel, sent, answered)
    return book
