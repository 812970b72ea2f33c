"""Frequency limits and pauses after events: when may the next send of a channel go?

Pure functions of (limit or pause, account, send history, now). Each returns the earliest
instant at or after ``t`` at which that single rule lets a send through (``t`` itself when
it already does), or ``None`` when it never will (a ``max: 0`` limit). The gate combines
these with permitted hours until every rule agrees on one instant.

Windows (docs/configuration.md): ``Nd`` is the local calendar day of the send and the N-1
days before it, in the account's primary zone; ``Nh``/``Nm`` is the half-open interval
(t - N, t]. A pause's day 1 is the event's local date; sends before the event that day are
not affected.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.config.models import Limit, Pause
from orchestrator.core.hours import local_day_start
from orchestrator.core.state import EventRecord, SendHistory, SendRecord

_TINY = timedelta(microseconds=1)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def _counted(limit: Limit, sends: list[SendRecord], account_id: str) -> list[SendRecord]:
    channels = set(limit.channels)
    return [
        s
        for s in sends
        if s.channel in channels
        and (limit.scope == "debtor" or s.account_id == account_id)
        and (limit.agency_contacts or not s.agency)
    ]


def window_start(limit: Limit, t: datetime, zone: ZoneInfo) -> datetime:
    """The first instant inside the window of a send at ``t``."""
    if limit.window.unit == "d":
        first_day = local_date(t, zone) - timedelta(days=limit.window.amount - 1)
        return local_day_start(first_day, zone)
    return t - limit.window.delta + _TINY


def limit_free_at(
    limit: Limit, t: datetime, history: SendHistory, account_id: str, zone: ZoneInfo
) -> datetime | None:
    """Earliest instant >= t at which a send would not exceed ``limit``."""
    if limit.max <= 0:
        return None
    start = window_start(limit, t, zone)
    counted = _counted(limit, history.since(start - _TINY, t), account_id)
    if len(counted) < limit.max:
        return t
    # The window frees when the max-th most recent counted send leaves it.
    pivot = counted[len(counted) - limit.max]
    if limit.window.unit == "d":
        day = local_date(pivot.time, zone) + timedelta(days=limit.window.amount)
        return max(t, local_day_start(day, zone))
    return max(t, pivot.time + limit.window.delta)


def pause_free_at(
    pause: Pause, channel: str, t: datetime, events: list[EventRecord], zone: ZoneInfo
) -> datetime | None:
    """Earliest instant >= t not inside a pause of ``channel`` after one of ``events``."""
    if channel not in pause.channels:
        return t
    result = t
    for event in events:
        if event.type != pause.after.value or event.time > result:
            continue
        end = local_day_start(local_date(event.time, zone) + timedelta(days=pause.days), zone)
        if result < end:
            result = end
    return result
