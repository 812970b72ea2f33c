"""Permitted hours: when a send may happen, exactly and DST-safely (docs/configuration.md:
``timezone``, ``hours``, ``holidays``, ``jurisdictions``).

A channel's rule is one local window ``[start, end)`` on a set of weekdays: the base
policy's entry for the channel (or its ``default``) intersected with every overlay's.
A send is permitted at an instant only if, in *every* candidate zone, the local weekday
is allowed, the local wall time is inside the window and the local date is not a public
holiday (when a holiday rule covers the channel).

Wall time is what the debtor's clock shows, so across DST changes:

- a window edge that falls in a spring-forward gap (02:30 on the change day) opens or
  closes at the first instant after the gap;
- in a fall-back fold, a wall time that occurs twice counts its first occurrence as the
  edge, and the repeated hour is permitted only when its clock reading is inside the
  window *and* it comes before the window's end: the conservative reading of both.

``next_permitted`` is exact: it computes each zone's permitted intervals for a local day
(split at UTC-offset changes, where wall time is linear in UTC) and jumps from interval
to interval until all zones agree. Everything here is pure and cached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_pkg

from orchestrator.config.models import (
    WEEKDAYS,
    HolidayRule,
    HoursSpec,
    HoursWindow,
    Overlay,
    Policy,
)

__all__ = [
    "ChannelHours",
    "HolidayCalendar",
    "HolidayCheck",
    "HoursRule",
    "effective_hours",
    "is_permitted",
    "first_permitted",
    "local_datetime",
    "local_day_bounds",
    "local_day_start",
    "next_permitted",
    "permitted_intervals",
    "window_end",
]

DAY = timedelta(days=1)
ALL_DAYS: frozenset[int] = frozenset(range(7))
_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END_OF_DAY = time(23, 59, 59, 999999)  # how config.py reads "24:00"
# Instants whose wall date is d lie within these bounds of d's midnight read as UTC
# (UTC offsets range from -12h to +14h).
_SPAN_BEFORE = timedelta(hours=16)
_SPAN_AFTER = timedelta(hours=40)

Interval = tuple[datetime, datetime]


# --- rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoursRule:
    """One channel's permitted local window ``[start, end)`` (offsets from local midnight,
    ``end`` up to 24h) on the weekdays in ``days`` (0 = Monday)."""

    start: timedelta = timedelta(0)
    end: timedelta = DAY
    days: frozenset[int] = ALL_DAYS

    @classmethod
    def any(cls) -> HoursRule:
        return cls()

    @classmethod
    def from_spec(cls, spec: HoursSpec) -> HoursRule:
        if spec == "any":
            return cls()
        assert isinstance(spec, HoursWindow)
        days = frozenset(WEEKDAYS.index(d) for d in spec.days) if spec.days else ALL_DAYS
        return cls(_offset(spec.start), _offset(spec.end, end=True), days)

    @property
    def empty(self) -> bool:
        """Nothing is ever permitted (a window with start >= end fails closed)."""
        return not self.days or self.start >= self.end

    @property
    def is_any(self) -> bool:
        return self.start <= timedelta(0) and self.end >= DAY and self.days == ALL_DAYS

    def intersect(self, other: HoursRule) -> HoursRule:
        return HoursRule(
            max(self.start, other.start), min(self.end, other.end), self.days & other.days
        )


ChannelHours = HoursRule


def _offset(t: time, *, end: bool = False) -> timedelta:
    if end and t == _END_OF_DAY:
        return DAY
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _spec_for(hours: dict[str, HoursSpec] | None, channel: str) -> HoursSpec | None:
    if not hours:
        return None
    if channel in hours:
        return hours[channel]
    return hours.get("default")


def effective_hours(policy: Policy, overlays: Sequence[Overlay], channel: str) -> HoursRule:
    """The channel's rule: the base policy's entry (or ``default``) intersected with each
    overlay's entry (or its ``default``). A channel nobody names is unrestricted by hours."""
    rule = HoursRule.any()
    for hours in (policy.hours, *(o.hours for o in overlays)):
        spec = _spec_for(hours, channel)
        if spec is not None:
            rule = rule.intersect(HoursRule.from_spec(spec))
    return rule


# --- holidays ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HolidayCalendar:
    """Public holidays of one or more (country, subdivision) pairs (docs/configuration.md)."""

    sources: tuple[tuple[str, str | None], ...]

    @classmethod
    def for_channel(
        cls,
        rules: Iterable[HolidayRule],
        channel: str,
        country: str | None,
        region: str | None,
    ) -> HolidayCalendar | None:
        """The calendar of the rules that cover ``channel``; None if no rule does.

        A rule's own ``country`` overrides the account's; the account's region applies
        when the country is the account's (unless the rule names its own region)."""
        own_country = country.upper() if country else None
        sources: dict[tuple[str, str | None], None] = {}
        for rule in rules:
            if channel not in rule.channels:
                continue
            c = (rule.country or own_country or "").upper()
            if not c:
                continue
            r = rule.region or (region if c == own_country else None)
            sources.setdefault((c, r.upper() if r else None), None)
        return cls(tuple(sources)) if sources else None

    def is_holiday(self, d: date) -> bool:
        return any(d in _holiday_dates(c, r, d.year) for c, r in self.sources)

    def __call__(self, d: date) -> bool:
        return self.is_holiday(d)


HolidayCheck = HolidayCalendar | Callable[[date], bool] | None


@lru_cache(maxsize=1024)
def _holiday_dates(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    """Public holidays of a year; an unknown subdivision falls back to the country, an
    unknown country has none (config check reports it; the daemon must not crash)."""
    if subdiv and subdiv.startswith(f"{country}-"):
        subdiv = subdiv[len(country) + 1 :]
    for sub in (subdiv, None) if subdiv else (None,):
        try:
            return frozenset(holidays_pkg.country_holidays(country, subdiv=sub, years=year))
        except (NotImplementedError, KeyError, ValueError):
            continue
    return frozenset()


def _holiday_fn(holidays: HolidayCheck) -> Callable[[date], bool] | None:
    if holidays is None:
        return None
    if isinstance(holidays, HolidayCalendar):
        return holidays.is_holiday if holidays.sources else None
    return holidays


# --- wall time ↔ UTC ---------------------------------------------------------------------


def _utc_offset(zone: ZoneInfo, t: datetime) -> timedelta:
    offset = t.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _first_with_offset(zone: ZoneInfo, lo: int, hi: int) -> int:
    """First whole second in (lo, hi] whose offset differs from lo's (tz transitions fall
    on whole seconds). Requires the offset at hi to differ from lo's."""
    before = _utc_offset(zone, _EPOCH + timedelta(seconds=lo))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _utc_offset(zone, _EPOCH + timedelta(seconds=mid)) == before:
            lo = mid
        else:
            hi = mid
    return hi


@lru_cache(maxsize=65536)
def local_datetime(d: date, t: time, zone: ZoneInfo) -> datetime:
    """The UTC instant when the wall clock in ``zone`` shows ``t`` on ``d``.

    A nonexistent wall time (spring-forward gap) maps to the first instant after the gap;
    an ambiguous one (fall-back fold) to its first occurrence. Remembered: the gate asks
    about the same few days, hours and zones for every account."""
    naive = datetime.combine(d, t)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=1 reads the wall time with the offset after the change, fold=0 with
    # the one before, so the change itself lies in (after_reading, first].
    early = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo = int((early - _EPOCH) // _SECOND)
    hi = -int(-(first - _EPOCH) // _SECOND)
    return _EPOCH + timedelta(seconds=_first_with_offset(zone, lo, hi))


def local_day_start(d: date, zone: ZoneInfo) -> datetime:
    """The first UTC instant of local date ``d`` in ``zone``."""
    return local_datetime(d, time(0), zone)


def local_day_bounds(d: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of local date ``d``: 23h or 25h long on DST change days."""
    return local_day_start(d, zone), local_day_start(d + DAY, zone)


def _segments(
    zone: ZoneInfo, lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime, timedelta]]:
    """``[lo, hi)`` split into pieces of constant UTC offset: ``(start, end, offset)``."""
    step = 6 * 3600
    a = int((lo - _EPOCH) // _SECOND)
    b = -int(-(hi - _EPOCH) // _SECOND)
    probes = [*range(a, b, step), b]
    cuts: list[int] = []
    for p, q in zip(probes, probes[1:], strict=False):
        while _utc_offset(zone, _EPOCH + timedelta(seconds=p)) != _utc_offset(
            zone, _EPOCH + timedelta(seconds=q)
        ):
            p = _first_with_offset(zone, p, q)
            cuts.append(p)
    edges = [lo, *(_EPOCH + timedelta(seconds=c) for c in cuts), hi]
    return [(s, e, _utc_offset(zone, s)) for s, e in zip(edges, edges[1:], strict=False) if s < e]


@lru_cache(maxsize=262144)
def _day_intervals(
    zone: ZoneInfo, d: date, start: timedelta, end: timedelta
) -> tuple[Interval, ...]:
    """UTC intervals of local date ``d`` when the wall clock is in ``[start, end)``, before
    the window's end instant (so a fall-back repeat after the end is not reopened)."""
    if start >= end:
        return ()
    midnight = datetime.combine(d, time(0), tzinfo=UTC)  # the wall date, read as UTC
    cutoff = (
        local_day_start(d + DAY, zone)
        if end >= DAY
        else local_datetime(d, (datetime.min + end).time(), zone)
    )
    pieces: list[Interval] = []
    for seg_start, seg_end, offset in _segments(
        zone, midnight - _SPAN_BEFORE, midnight + _SPAN_AFTER
    ):
        a = max(seg_start, midnight + start - offset)
        b = min(seg_end, midnight + end - offset, cutoff)
        if a < b:
            if pieces and pieces[-1][1] == a:
                pieces[-1] = (pieces[-1][0], b)
            else:
                pieces.append((a, b))
    return tuple(pieces)


def permitted_intervals(
    d: date, rule: HoursRule, zone: ZoneInfo, holidays: HolidayCheck = None
) -> tuple[Interval, ...]:
    """The UTC intervals of local date ``d`` in ``zone`` when ``rule`` permits a send."""
    if d.weekday() not in rule.days:
        return ()
    is_holiday = _holiday_fn(holidays)
    if is_holiday is not None and is_holiday(d):
        return ()
    return _day_intervals(zone, d, rule.start, rule.end)


# --- the gate's questions ----------------------------------------------------------------


def _as_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(UTC)


def _permitted_in(t: datetime, rule: HoursRule, zone: ZoneInfo, holidays: HolidayCheck) -> bool:
    d = t.astimezone(zone).date()
    return any(a <= t < b for a, b in permitted_intervals(d, rule, zone, holidays))


def is_permitted(
    instant: datetime,
    rule: HoursRule,
    zones: Sequence[ZoneInfo],
    holidays: HolidayCheck = None,
) -> bool:
    """Whether a send at ``instant`` is permitted in every zone of ``zones``."""
    t = _as_utc(instant)
    if rule.empty:
        return False
    if rule.is_any and _holiday_fn(holidays) is None:
        return True
    return all(_permitted_in(t, rule, zone, holidays) for zone in zones)


def _next_open(
    t: datetime, rule: HoursRule, zone: ZoneInfo, holidays: HolidayCheck, limit: datetime
) -> datetime | None:
    """The first instant >= t permitted in ``zone`` (t itself if permitted), or None if
    none starts by ``limit``."""
    d = t.astimezone(zone).date() - DAY  # a fold at midnight can revisit the day before
    while True:
        for a, b in permitted_intervals(d, rule, zone, holidays):
            if b > t:
                start = max(a, t)
                return start if start <= limit else None
        if local_day_start(d, zone) > limit:
            return None
        d += DAY


def next_permitted(
    instant: datetime,
    rule: HoursRule,
    zones: Sequence[ZoneInfo],
    holidays: HolidayCheck = None,
    *,
    horizon: timedelta = timedelta(days=366),
) -> datetime | None:
    """The first instant >= ``instant`` permitted in every zone (``instant`` itself if it
    is permitted); None if there is none within ``horizon``.

    Each round moves t to the latest of the zones' next openings; no zone can open for
    good before that, so the first t where every zone is open is the exact answer."""
    t = _as_utc(instant)
    if rule.empty:
        return None
    if (rule.is_any and _holiday_fn(holidays) is None) or not zones:
        return t
    limit = t + horizon
    while True:
        latest = t
        for zone in zones:
            opened = _next_open(t, rule, zone, holidays, limit)
            if opened is None:
                return None
            latest = max(latest, opened)
        if latest == t:
            return t
        t = latest


@lru_cache(maxsize=16384)  # a few hundred distinct questions a day; the daemon's ``now`` moves
def first_permitted(
    instant: datetime,
    rule: HoursRule,
    zones: tuple[ZoneInfo, ...],
    holidays: HolidayCalendar | None = None,
) -> datetime | None:
    """``next_permitted`` remembered: ``instant`` itself (in UTC) when a send is permitted
    then in every zone, else the first instant that is, else None.

    The gate asks this of every occurrence, and most of them ask it at the same few
    instants (a batch's ``now``, ten o'clock local in a handful of zones) under the same
    few rules and zone sets, so the answer is kept. The arguments are values (a frozen
    rule and calendar, a tuple of zones): the same arguments always have the same answer.
    """
    return next_permitted(instant, rule, zones, holidays)


def _open_until(
    t: datetime, rule: HoursRule, zone: ZoneInfo, holidays: HolidayCheck, limit: datetime
) -> datetime:
    """End of the permitted stretch containing t in ``zone`` (t must be permitted),
    following intervals that abut across midnight, capped at ``limit``."""
    d = t.astimezone(zone).date()
    end = t
    while end < limit:
        for a, b in permitted_intervals(d, rule, zone, holidays):
            if a <= end < b:
                end = b
        d += DAY
        if local_day_start(d, zone) > end:
            break
    return min(end, limit)


def window_end(
    instant: datetime,
    rule: HoursRule,
    zones: Sequence[ZoneInfo],
    holidays: HolidayCheck = None,
    *,
    horizon: timedelta = timedelta(days=366),
) -> datetime | None:
    """The end of the permitted stretch that contains ``instant`` (the earliest end over
    the zones), capped at ``instant + horizon``; None if ``instant`` is not permitted."""
    t = _as_utc(instant)
    if not is_permitted(t, rule, zones, holidays):
        return None
    limit = t + horizon
    if rule.is_any and _holiday_fn(holidays) is None:
        return limit
    return min(_open_until(t, rule, zone, holidays, limit) for zone in zones)
