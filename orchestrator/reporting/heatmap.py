"""The report's heat map: the share of sends answered, by channel, local weekday and
local hour (the debtor's clock), counted as ``at: best`` counts them (``core.besttime``):
a send is answered when, within the policy's ``attribution`` and before the account's
next send, the call was picked up, the link clicked, a reply came, or a conversation,
promise or payment was recorded. Ops read it to set ``hours``, ``days`` and ``window``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from orchestrator.config.models import BestTime
from orchestrator.core.besttime import PORTFOLIO, HourBook, HourLearner
from orchestrator.store.besttime import replay_sends, sends_between

__all__ = ["answer_heatmap"]


def _slot(row: Any) -> int:
    """ISO weekday (1-7) × 24 + hour, from the record's ``YYYY-MM-DDTHH:MM:SS±hh:mm``."""
    text = row.local_time or ""
    try:
        day, hour = date.fromisoformat(text[:10]), int(text[11:13])
    except ValueError:
        day, hour = row.time.date(), row.time.hour
    return day.isoweekday() * 24 + hour


def answer_heatmap(
    conn: Connection, start: datetime, end: datetime, settings: BestTime
) -> dict[str, list[dict[str, Any]]]:
    """Per channel, one cell per (weekday, hour) with a send in ``[start, end)``:
    ``{"weekday": 1..7, "hour": 0..23, "sent": n, "answered": k}``."""
    learner = HourLearner(settings, HourBook(slots=8 * 24))
    before = start - timedelta(microseconds=1)  # ``sends_between`` is (start, end]
    sends = [row for row in sends_between(conn, before, end) if row.time < end]
    replay_sends(conn, learner, sends, before, end + settings.attribution.delta, _slot)
    learner.fold(datetime.max.replace(tzinfo=end.tzinfo))
    out: dict[str, list[dict[str, Any]]] = {}
    for (scope, _, channel), counts in sorted(learner.book.cells.items()):
        if scope != PORTFOLIO:
            continue
        out[channel] = [
            {"weekday": slot // 24, "hour": slot % 24, "sent": sent, "answered": answered}
            for slot, (sent, answered) in enumerate(zip(counts.sent, counts.answered, strict=True))
            if sent
        ]
    return out
