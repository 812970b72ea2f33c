"""Time as a parameter: the engine asks a Clock, never ``datetime.now()``.

``SystemClock`` runs live; ``VirtualClock`` drives ``simulate`` and tests, jumping from
one due instant to the next.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse naive ones (they hide bugs)."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: every instant must carry its zone")
    return dt.astimezone(UTC)


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

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


class FrozenClock(VirtualClock):
    """A VirtualClock for tests; an alias that reads better in a test body."""
