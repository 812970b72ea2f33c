"""Time as a parameter: the engine asks a Clock, never ``datetime.now()``.

``SystemClock`` runs live; ``VirtualClock`` drives ``simulate`` and tests, jumping from
one due instant to the next.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Protocol


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse naive ones (they hide bugs)."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: every instant must carry its zone")
    return dt.astimezone(UTC)


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC). ``ValueError`` where UTC has no
    such instant (year 1 east of Greenwich, year 9999 west of it): Python's
    ``OverflowError`` would otherwise escape the checks of whoever sent it."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is out of range") from None


def parse_instant(value: Any) -> datetime:
    """An instant in UTC from a datetime (naive: UTC), a date (its midnight UTC) or an
    ISO-8601 string (``--now``, scenario files)."""
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        return to_utc(datetime.fromisoformat(value.strip()))
    raise ValueError(f"not an ISO-8601 instant: {value!r}")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that only moves when told to; never goes backwards."""

    def __init__(self, start: datetime):
        self._now = utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        instant = utc(instant)
        if instant < self._now:
            raise ValueError(f"virtual clock cannot go back from {self._now} to {instant}")
        self._now = instant


class FrozenClock(VirtualClock):
    """A VirtualClock for tests; an alias that reads better in a test body."""
