"""Permitted hours: exact, DST-safe, in every candidate zone (docs/configuration.md,
``hours``). A send at a time that is not permitted is the worst bug of the product."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.config.models import HolidayRule, Overlay, Policy
from orchestrator.core.hours import (
    DAY,
    HolidayCalendar,
    HoursRule,
    effective_hours,
    is_permitted,
    local_datetime,
    local_day_bounds,
    local_day_start,
    next_permitted,
    permitted_intervals,
    window_end,
)

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
CHI = ZoneInfo("America/Chicago")
DEN = ZoneInfo("America/Denver")
PHX = ZoneInfo("America/Phoenix")
HNL = ZoneInfo("Pacific/Honolulu")
ANC = ZoneInfo("America/Anchorage")
SHA = ZoneInfo("Asia/Shanghai")

H = timedelta(hours=1)
REGF = HoursRule(8 * H, 21 * H)  # 08:00-21:00 every day
VOICE = HoursRule(8 * H, 21 * H, frozenset(range(6)))  # mon-sat
US_HOLIDAYS = HolidayCalendar((("US", None),))


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def policy(**data: object) -> Policy:
    return Policy.model_validate(data)


# --- wall time ↔ UTC ---------------------------------------------------------------------


def test_local_day_bounds_on_dst_days() -> None:
    assert local_day_bounds(date(2026, 3, 8), NY) == (
        utc("2026-03-08T05:00Z"),
        utc("2026-03-09T04:00Z"),
    )
    assert local_day_bounds(date(2026, 11, 1), NY) == (
        utc("2026-11-01T04:00Z"),
        utc("2026-11-02T05:00Z"),
    )
    assert local_day_start(date(2026, 7, 1), SHA) == utc("2026-06-30T16:00Z")


def test_local_datetime_gap_moves_past_the_gap() -> None:
    # 02:30 does not exist in New York on 2026-03-08: the first valid instant is 03:00 EDT
    assert local_datetime(date(2026, 3, 8), time(2, 30), NY) == utc("2026-03-08T07:00Z")
    assert local_datetime(date(2026, 3, 8), time(3, 0), NY) == utc("2026-03-08T07:00Z")
    assert local_datetime(date(2026, 3, 8), time(1, 59), NY) == utc("2026-03-08T06:59Z")


def test_local_datetime_fold_takes_the_first_occurrence() -> None:
    assert local_datetime(date(2026, 11, 1), time(1, 30), NY) == utc("2026-11-01T05:30Z")  # EDT
    assert local_datetime(date(2026, 11, 1), time(2, 0), NY) == utc("2026-11-01T07:00Z")  # EST


# --- DST ---------------------------------------------------------------------------------


def test_dst_start_new_york_window_opens_at_12z() -> None:
    assert permitted_intervals(date(2026, 3, 8), REGF, NY) == (
        (utc("2026-03-08T12:00Z"), utc("2026-03-09T01:00Z")),
    )
    assert next_permitted(utc("2026-03-08T06:00Z"), REGF, (NY,)) == utc("2026-03-08T12:00Z")
    # the day before, still EST
    assert next_permitted(utc("2026-03-07T06:00Z"), REGF, (NY,)) == utc("2026-03-07T13:00Z")
    assert not is_permitted(utc("2026-03-08T11:59:59Z"), REGF, (NY,))
    assert is_permitted(utc("2026-03-08T12:00Z"), REGF, (NY,))


def test_dst_end_new_york_window_opens_at_13z() -> None:
    assert permitted_intervals(date(2026, 11, 1), REGF, NY) == (
        (utc("2026-11-01T13:00Z"), utc("2026-11-02T02:00Z")),
    )
    assert next_permitted(utc("2026-10-31T06:00Z"), REGF, (NY,)) == utc("2026-10-31T12:00Z")
    assert next_permitted(utc("2026-11-01T06:00Z"), REGF, (NY,)) == utc("2026-11-01T13:00Z")
    assert not is_permitted(utc("2026-11-01T12:30Z"), REGF, (NY,))  # 07:30 EST


def test_window_start_in_the_spring_gap_opens_after_the_gap() -> None:
    rule = HoursRule(timedelta(hours=2, minutes=30), 21 * H)
    assert next_permitted(utc("2026-03-08T05:00Z"), rule, (NY,)) == utc("2026-03-08T07:00Z")
    assert not is_permitted(utc("2026-03-08T06:59:59Z"), rule, (NY,))  # 01:59:59 EST


def test_fold_repeated_hour_is_judged_conservatively() -> None:
    # window ends at 01:30: the repeated 01:00-01:30 (EST) comes after the end
    early = HoursRule(timedelta(0), timedelta(hours=1, minutes=30))
    assert is_permitted(utc("2026-11-01T05:15Z"), early, (NY,))  # 01:15 EDT
    assert not is_permitted(utc("2026-11-01T06:15Z"), early, (NY,))  # 01:15 EST
    # window starts at 01:30: the clock shows 01:15 again after 02:00 EDT: not permitted
    late = HoursRule(timedelta(hours=1, minutes=30), 21 * H)
    assert is_permitted(utc("2026-11-01T05:45Z"), late, (NY,))  # 01:45 EDT
    assert not is_permitted(utc("2026-11-01T06:15Z"), late, (NY,))  # 01:15 EST
    assert next_permitted(utc("2026-11-01T06:00Z"), late, (NY,)) == utc("2026-11-01T06:30Z")
    assert window_end(utc("2026-11-01T05:45Z"), late, (NY,)) == utc("2026-11-01T06:00Z")


# --- several zones -----------------------------------------------------------------------


def test_new_york_and_los_angeles_intersect_to_11_to_21_new_york_time() -> None:
    zones = (LA, NY)
    # summer (EDT/PDT): 15:00Z-01:00Z
    assert next_permitted(utc("2026-07-15T03:00Z"), REGF, zones) == utc("2026-07-15T15:00Z")
    assert window_end(utc("2026-07-15T15:00Z"), REGF, zones) == utc("2026-07-16T01:00Z")
    # winter (EST/PST): 16:00Z-02:00Z
    assert next_permitted(utc("2026-01-15T03:00Z"), REGF, zones) == utc("2026-01-15T16:00Z")
    assert window_end(utc("2026-01-15T16:30Z"), REGF, zones) == utc("2026-01-16T02:00Z")
    assert not is_permitted(utc("2026-01-15T15:59:59Z"), REGF, zones)
    assert not is_permitted(utc("2026-01-16T02:00Z"), REGF, zones)
    # the changeover day: New York is on EDT, Los Angeles switches three hours later
    assert next_permitted(utc("2026-03-08T06:00Z"), REGF, zones) == utc("2026-03-08T15:00Z")


def test_arizona_and_hawaii_have_no_dst() -> None:
    zones = (PHX, HNL)
    for day in ("2026-01-15", "2026-07-15"):
        assert next_permitted(utc(f"{day}T05:00Z"), REGF, zones) == utc(f"{day}T18:00Z")
        assert window_end(utc(f"{day}T18:00Z"), REGF, zones) == utc(f"{day}T04:00Z") + DAY


def test_shanghai() -> None:
    assert next_permitted(utc("2026-03-10T13:00Z"), REGF, (SHA,)) == utc("2026-03-11T00:00Z")
    assert is_permitted(utc("2026-03-10T12:59:59Z"), REGF, (SHA,))


def test_empty_intersection_gives_none() -> None:
    narrow = HoursRule(8 * H, 9 * H)
    assert next_permitted(utc("2026-01-15T00:00Z"), narrow, (NY, SHA)) is None
    assert next_permitted(utc("2026-01-15T00:00Z"), HoursRule(9 * H, 9 * H), (NY,)) is None
    assert next_permitted(utc("2026-01-15T00:00Z"), HoursRule(days=frozenset()), (NY,)) is None
    assert not is_permitted(utc("2026-01-15T00:00Z"), HoursRule(21 * H, 8 * H), (NY,))


# --- weekdays and holidays ---------------------------------------------------------------


def test_voice_on_sunday_jumps_to_monday_0800() -> None:
    sunday_noon = utc("2026-03-15T16:00Z")
    assert not is_permitted(sunday_noon, VOICE, (NY,))
    assert next_permitted(sunday_noon, VOICE, (NY,)) == utc("2026-03-16T12:00Z")


def test_independence_day_observed_blocks_sms_and_voice() -> None:
    rules = [HolidayRule(channels=["sms", "voice"])]
    sms = HolidayCalendar.for_channel(rules, "sms", "US", "NY")
    assert sms is not None and sms.is_holiday(date(2026, 7, 3))
    assert HolidayCalendar.for_channel(rules, "email", "US", "NY") is None
    friday = utc("2026-07-03T14:00Z")  # 10:00 EDT on the observed holiday
    assert not is_permitted(friday, REGF, (NY,), sms)
    assert is_permitted(friday, REGF, (NY,), None)
    # Saturday 4 July is the holiday itself: sms goes on Sunday, voice on Monday
    assert next_permitted(friday, REGF, (NY,), sms) == utc("2026-07-05T12:00Z")
    assert next_permitted(friday, VOICE, (NY,), sms) == utc("2026-07-06T12:00Z")


def test_thanksgiving_jumps_to_friday() -> None:
    t = utc("2026-11-26T15:00Z")
    assert not is_permitted(t, REGF, (NY, LA), US_HOLIDAYS)
    assert next_permitted(t, REGF, (NY, LA), US_HOLIDAYS) == utc("2026-11-27T16:00Z")


def test_holiday_is_judged_on_each_zones_local_date() -> None:
    any_hours = HoursRule.any()
    t = utc("2026-07-03T02:00Z")  # New York: 2 July 22:00; Shanghai: 3 July 10:00
    assert is_permitted(t, any_hours, (NY,), US_HOLIDAYS)
    assert not is_permitted(t, any_hours, (NY, SHA), US_HOLIDAYS)
    # the stretch ends when 3 July begins in Shanghai
    assert window_end(utc("2026-07-02T12:00Z"), any_hours, (NY, SHA), US_HOLIDAYS) == utc(
        "2026-07-02T16:00Z"
    )


def test_holiday_calendar_sources() -> None:
    # the account's region applies when the rule's country is the account's
    cal = HolidayCalendar.for_channel([HolidayRule()], "sms", "us", "ma")
    assert cal == HolidayCalendar((("US", "MA"),))
    assert cal.is_holiday(date(2026, 4, 20))  # Patriots' Day, Massachusetts only
    assert not HolidayCalendar((("US", None),)).is_holiday(date(2026, 4, 20))
    # a rule's own country overrides the account's; the account's region does not follow
    cn = HolidayCalendar.for_channel([HolidayRule(country="CN")], "sms", "US", "MA")
    assert cn == HolidayCalendar((("CN", None),))
    assert cn.is_holiday(date(2026, 10, 1))
    # an unknown region falls back to the country; an unknown country has no holidays
    assert HolidayCalendar((("US", "ZZ"),)).is_holiday(date(2026, 11, 26))
    assert not HolidayCalendar((("XX", None),)).is_holiday(date(2026, 11, 26))
    assert HolidayCalendar.for_channel([HolidayRule()], "sms", None, None) is None


def test_china_public_holidays_are_skipped() -> None:
    cal = HolidayCalendar((("CN", None),))
    t = utc("2026-10-01T01:00Z")
    r = next_permitted(t, REGF, (SHA,), cal)
    assert r is not None and r > t
    day = date(2026, 10, 1)
    while day < r.astimezone(SHA).date():
        assert cal.is_holiday(day)
        day += DAY
    assert not cal.is_holiday(r.astimezone(SHA).date())
    assert r.astimezone(SHA).time() == time(8)


# --- effective hours ---------------------------------------------------------------------


def test_effective_hours_intersects_policy_and_overlays() -> None:
    base = policy(
        hours={
            "default": {"start": "08:00", "end": "21:00"},
            "voice": {
                "start": "08:00",
                "end": "21:00",
                "days": ["mon", "tue", "wed", "thu", "fri", "sat"],
            },
            "letter": "any",
        }
    )
    cn = Overlay.model_validate({"hours": {"default": {"start": "09:00", "end": "20:00"}}})
    quiet = Overlay.model_validate({"hours": {"sms": {"start": "07:00", "end": "20:30"}}})
    assert effective_hours(base, [], "sms") == REGF
    assert effective_hours(base, [], "voice") == VOICE
    assert effective_hours(base, [], "letter").is_any
    assert effective_hours(base, [cn], "voice") == HoursRule(9 * H, 20 * H, frozenset(range(6)))
    assert effective_hours(base, [cn], "letter") == HoursRule(9 * H, 20 * H)
    assert effective_hours(base, [cn, quiet], "sms") == HoursRule(9 * H, 20 * H)
    assert effective_hours(base, [quiet], "sms") == HoursRule(
        8 * H, timedelta(hours=20, minutes=30)
    )
    assert effective_hours(base, [quiet], "email") == REGF  # overlay names sms only
    assert effective_hours(base, [Overlay()], "email") == REGF  # no hours adds nothing


def test_effective_hours_24_00_is_end_of_day_and_unnamed_channel_is_any() -> None:
    p = policy(hours={"sms": {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}})
    assert effective_hours(p, [], "sms") == HoursRule(timedelta(0), DAY, frozenset({5, 6}))
    assert effective_hours(p, [], "email").is_any
    rule = effective_hours(p, [], "sms")
    assert is_permitted(utc("2026-03-15T03:59:59Z"), rule, (NY,))  # Sat 23:59:59 EDT
    assert next_permitted(utc("2026-03-16T04:00Z"), rule, (NY,)) == utc("2026-03-21T04:00Z")
    # Saturday and Sunday abut: one stretch from Saturday 00:00 to Monday 00:00
    assert window_end(utc("2026-03-21T04:00Z"), rule, (NY,)) == utc("2026-03-23T04:00Z")


def test_instant_must_be_aware() -> None:
    with pytest.raises(ValueError):
        is_permitted(datetime(2026, 1, 1, 12), REGF, (NY,))


# --- properties --------------------------------------------------------------------------

ZONES = [NY, LA, CHI, DEN, PHX, HNL, ANC, SHA]
QUARTER = timedelta(minutes=15)
START_2026 = utc("2026-01-01T00:00Z")
FALL_BACK_NIGHT = utc("2026-11-01T04:00Z")
DST_DAYS = [utc("2026-03-08T00:00Z"), utc("2026-11-01T00:00Z"), utc("2026-03-29T00:00Z")]


def oracle(
    t: datetime, rule: HoursRule, zones: tuple[ZoneInfo, ...], cal: HolidayCalendar | None
) -> bool:
    """The definition read straight off the debtor's clock, independent of the intervals:
    weekday and holiday of the local date, wall time in [start, end), and in a fall-back
    repeat, not after the first occurrence of the window's end."""
    if rule.empty:
        return False
    for zone in zones:
        local = t.astimezone(zone)
        if local.weekday() not in rule.days or (cal is not None and cal.is_holiday(local.date())):
            return False
        wall = local.replace(tzinfo=None) - datetime.combine(local.date(), time(0))
        if not rule.start <= wall < rule.end:
            return False
        if local.fold == 1 and rule.end < DAY:
            end_wall = datetime.combine(local.date(), time(0)) + rule.end
            if end_wall.replace(tzinfo=zone, fold=0).astimezone(UTC) <= t:
                return False
    return True


def quarters(a: datetime, b: datetime) -> list[datetime]:
    """``a`` and every quarter-hour instant in (a, b)."""
    out = [a]
    q = START_2026 + ((a - START_2026) // QUARTER + 1) * QUARTER
    while q < b:
        out.append(q)
        q += QUARTER
    return out


instants = st.one_of(
    st.integers(0, 365 * 86400 - 1).map(lambda s: START_2026 + timedelta(seconds=s)),
    st.builds(
        lambda base, s: base + timedelta(seconds=s),
        st.sampled_from(DST_DAYS),
        st.integers(-2 * 86400, 2 * 86400),
    ),
    # the US fall-back night, where wall times repeat
    st.integers(0, 12 * 3600).map(lambda s: FALL_BACK_NIGHT + timedelta(seconds=s)),
)


@st.composite
def rules(draw: st.DrawFn) -> HoursRule:
    # edges around 01:00-03:00 often, where US clocks jump or repeat
    start = draw(st.one_of(st.integers(0, 95), st.integers(3, 12)))
    end = draw(st.one_of(st.integers(start + 1, 96), st.integers(start + 1, max(start + 1, 12))))
    days = draw(
        st.one_of(st.just(frozenset(range(7))), st.frozensets(st.integers(0, 6), min_size=1))
    )
    return HoursRule(start * QUARTER, end * QUARTER, days)


zone_sets = st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True).map(tuple)
calendars = st.sampled_from([None, US_HOLIDAYS, HolidayCalendar((("CN", None),))])

# Window edges fall on quarter-hours and every zone here has a whole-hour offset, so each
# permitted stretch starts on a quarter-hour: checking ``t`` and each quarter-hour after it
# finds the earliest permitted instant exactly.
HORIZON = timedelta(days=9)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instants, rules(), zone_sets, calendars)
def test_next_permitted_is_the_first_permitted_instant(
    t: datetime, rule: HoursRule, zones: tuple[ZoneInfo, ...], cal: HolidayCalendar | None
) -> None:
    assert is_permitted(t, rule, zones, cal) == oracle(t, rule, zones, cal)
    r = next_permitted(t, rule, zones, cal, horizon=HORIZON)
    if r is None:
        assert not any(oracle(q, rule, zones, cal) for q in quarters(t, t + HORIZON))
        return
    assert t <= r <= t + HORIZON
    assert is_permitted(r, rule, zones, cal) and oracle(r, rule, zones, cal)
    if r > t:
        assert not oracle(r - timedelta(seconds=1), rule, zones, cal)
        assert not any(oracle(q, rule, zones, cal) for q in quarters(t, r))
    # the stretch that opens at r: permitted throughout, closed at its end
    e = window_end(r, rule, zones, cal, horizon=HORIZON)
    assert e is not None and e > r
    assert all(oracle(q, rule, zones, cal) for q in quarters(r, e))
    if e < r + HORIZON:
        assert not is_permitted(e, rule, zones, cal) and not oracle(e, rule, zones, cal)


@settings(max_examples=300, deadline=None)
@given(instants, rules(), zone_sets)
def test_is_permitted_matches_the_clock(
    t: datetime, rule: HoursRule, zones: tuple[ZoneInfo, ...]
) -> None:
    assert is_permitted(t, rule, zones) == oracle(t, rule, zones, None)
    assert is_permitted(t, rule, zones) == (next_permitted(t, rule, zones) == t)


@settings(max_examples=300, deadline=None)
@given(
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
    st.times(),
    st.sampled_from([*ZONES, ZoneInfo("Europe/London"), ZoneInfo("Australia/Lord_Howe")]),
)
def test_local_datetime_is_the_clock_reading_or_the_end_of_its_gap(
    d: date, wall: time, zone: ZoneInfo
) -> None:
    u = local_datetime(d, wall, zone)
    assert u.tzinfo is UTC
    naive = datetime.combine(d, wall)
    seen = u.astimezone(zone).replace(tzinfo=None)
    if seen != naive:  # a gap: just before u the clock was still short of the wall time
        assert seen > naive
        assert (u - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None) < naive
    else:  # an existing time: the first occurrence
        assert (u - timedelta(hours=1)).astimezone(zone).replace(tzinfo=None) != naive
    lo, hi = local_day_bounds(d, zone)
    assert (
        lo.astimezone(zone).date() == d
        and (lo - timedelta(microseconds=1)).astimezone(zone).date() < d
    )
    assert hi.astimezone(zone).date() == d + DAY


@settings(max_examples=200, deadline=None)
@given(
    st.integers(3600, 6 * 3600).map(lambda s: FALL_BACK_NIGHT + timedelta(seconds=s)),
    st.integers(0, 11),
    st.integers(1, 12),
    st.sampled_from([NY, CHI, DEN, LA]),
)
def test_fall_back_night_edges(t: datetime, start: int, length: int, zone: ZoneInfo) -> None:
    """Window edges between 00:00 and 03:00 on the night the clocks repeat an hour."""
    rule = HoursRule(start * QUARTER, min(start + length, 96) * QUARTER)
    assert is_permitted(t, rule, (zone,)) == oracle(t, rule, (zone,), None)
    r = next_permitted(t, rule, (zone,), horizon=timedelta(days=2))
    assert r is not None and oracle(r, rule, (zone,), None)
    if r > t:
        assert not any(oracle(q, rule, (zone,), None) for q in quarters(t, r))
