"""Property-based tests of the whole engine: random cadences, accounts across US zones
(Arizona and Hawaii included) and China, random event streams. No sent record may violate
permitted hours (in every candidate zone), a limit, a pause or a suppression; and with no
limiting policy every occurrence is sent on its day.

Checks here are written independently of the gate (plain zoneinfo arithmetic), so a bug
in the gate cannot hide behind the same bug in the check.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.account import Account
from orchestrator.core.records import DecisionRecord
from orchestrator.core.zones import candidate_zones
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.testing import account, event, make_config, minimal_templates, simulate

CHANNELS = ["sms", "voice", "email", "letter"]
TEMPLATE = {
    "sms": "reminder",
    "voice": "reminder",
    "email": "reminder",
    "letter": "reminder_letter",
}
PLACES = [  # (region, city, phone, country, locale, currency)
    ("NY", "New York", "+12125550100", "US", "en-US", "USD"),
    ("AZ", "Phoenix", "+16025550111", "US", "en-US", "USD"),
    ("HI", "Honolulu", "+18085550111", "US", "en-US", "USD"),
    ("CA", "Oakland", "+12125550188", "US", "en-US", "USD"),  # NY phone, CA address
    ("IL", "Chicago", "+13125550147", "US", "en-US", "USD"),
    ("MA", "Boston", "+16175550111", "US", "en-US", "USD"),
    ("BJ", "北京", "+8613800138000", "CN", "zh-CN", "CNY"),
]
HOURS = {
    "default": {"start": "08:00", "end": "21:00"},
    "voice": {"start": "09:00", "end": "20:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat"]},
    "letter": "any",
}


class Limit(TypedDict):
    id: str
    channels: list[str]
    max: int
    window: str
    scope: str


LIMITS: list[Limit] = [
    {"id": "calls-7d", "channels": ["voice"], "max": 3, "window": "7d", "scope": "account"},
    {"id": "calls-burst", "channels": ["voice"], "max": 1, "window": "4h", "scope": "account"},
    {"id": "sms-daily", "channels": ["sms"], "max": 1, "window": "1d", "scope": "debtor"},
    {"id": "email-2d", "channels": ["email"], "max": 1, "window": "2d", "scope": "account"},
]
PAUSES = [{"id": "talk", "after": "conversation", "channels": ["voice", "sms"], "days": 3}]
POLICY: dict[str, Any] = {
    "hours": HOURS,
    "holidays": {"channels": ["voice", "sms"]},
    "limits": LIMITS,
    "pauses": PAUSES,
    "jurisdictions": {
        "CN": {
            "hours": {"default": {"start": "09:00", "end": "20:00"}},
            "limits": [
                {
                    "id": "cn-calls",
                    "channels": ["voice"],
                    "max": 1,
                    "window": "1d",
                    "scope": "debtor",
                }
            ],
        },
        "US-MA": {
            "limits": [
                {
                    "id": "ma",
                    "channels": ["voice", "sms"],
                    "max": 2,
                    "window": "7d",
                    "scope": "account",
                }
            ]
        },
    },
}
START = datetime.fromisoformat("2026-03-01T00:00:00+00:00")
DAYS = 12

step_st = st.builds(
    lambda i, channel, when, at, kind, expires: {
        "id": f"s{i}",
        "channel": channel,
        "template": TEMPLATE[channel],
        **when,
        "at": f"{at // 60:02d}:{at % 60:02d}",
        "kind": kind,
        "expires": expires,
    },
    st.integers(0, 10_000),
    st.sampled_from(CHANNELS),
    st.one_of(
        st.builds(lambda n: {"every": f"{n}d"}, st.integers(1, 3)),
        st.builds(
            lambda ds: {"on_dpd": sorted(set(ds))},
            st.lists(st.integers(1, 40), min_size=1, max_size=5),
        ),
    ),
    st.integers(0, 24 * 60 - 1),
    st.sampled_from(["collection", "collection", "service"]),
    st.sampled_from(["1h", "1d", "3d"]),
)
cadence_st = st.lists(step_st, min_size=1, max_size=5, unique_by=lambda s: s["id"])
event_types = [
    "promise",
    "payment",
    "conversation",
    "stop",
    "start",
    "dispute",
    "dispute_resolved",
    "cease",
    "complaint",
]


@st.composite
def scenario_st(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[Account], list[ScenarioEvent]]:
    steps = draw(cadence_st)
    n_accounts = draw(st.integers(1, 4))
    accounts = []
    for i in range(n_accounts):
        region, city, phone, country, locale, currency = draw(st.sampled_from(PLACES))
        debtor = f"D{draw(st.integers(0, 1))}" if i else "D0"
        accounts.append(
            account(
                f"A{i}",
                debtor_id=debtor if draw(st.booleans()) else f"A{i}",
                region=region,
                city=city,
                phone=phone,
                country=country,
                locale=locale,
                currency=currency,
                due_date=(START.date() - timedelta(days=draw(st.integers(1, 25)))),
            )
        )
    events = []
    for _ in range(draw(st.integers(0, 6))):
        target = draw(st.sampled_from(accounts)).account_id
        at = START + timedelta(minutes=draw(st.integers(0, DAYS * 24 * 60 - 1)))
        kind = draw(st.sampled_from(event_types))
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if kind == "promise":
            due = (at + timedelta(days=draw(st.integers(0, 5)))).date().isoformat()
            events.append(event(stamp, target, "promise", amount="50.00", due=due))
        elif kind == "payment":
            events.append(
                event(stamp, target, "payment", amount=draw(st.sampled_from(["50.00", "300.00"])))
            )
        elif kind == "conversation":
            events.append(event(stamp, target, "conversation", channel="voice"))
        elif kind in ("stop", "start"):
            events.append(event(stamp, target, "inbound_sms", body=kind.upper()))
        else:
            events.append(event(stamp, target, kind))
    events.sort(key=lambda e: e.at)
    return steps, accounts, events


def _zones(acct: Account) -> tuple[ZoneInfo, tuple[ZoneInfo, ...]]:
    config = make_config(policy=POLICY)
    zones = candidate_zones(acct, config.policy.timezone)
    return zones.primary, tuple(zones.candidates)


def _window(channel: str, country: str) -> tuple[time, time, set[int]] | None:
    spec = HOURS.get(channel, HOURS["default"])
    if spec == "any":
        return None
    assert isinstance(spec, dict)
    start, end = time.fromisoformat(spec["start"]), time.fromisoformat(spec["end"])
    days = {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].index(d) for d in spec.get("days", [])
    } or set(range(7))
    if country == "CN":
        start, end = max(start, time(9)), min(end, time(20))
    return start, end, days


def check_invariants(
    steps: list[dict[str, Any]],
    accounts: list[Account],
    events: list[ScenarioEvent],
    records: list[DecisionRecord],
) -> None:
    by_id = {a.account_id: a for a in accounts}
    sent = [r for r in records if r.decision in ("sent", "ambiguous")]
    exempt = {"opt_out_confirmation", "help_reply"}
    for r in sent:
        if r.step in exempt:
            continue
        acct = by_id[r.account]
        assert r.channel is not None  # a sent record has its channel
        primary, candidates = _zones(acct)
        # permitted hours and holidays, in every candidate zone
        window = _window(r.channel, acct.country or "US")
        if window is not None:
            start, end, days = window
            for zone in candidates:
                local = r.time.astimezone(zone)
                assert start <= local.time() < end, (r, zone)
                assert local.weekday() in days, (r, zone)
                if r.channel in ("voice", "sms"):
                    assert acct.country is not None  # every PLACES account has one
                    cal = holidays_lib.country_holidays(
                        acct.country, subdiv=acct.region if acct.country == "US" else None
                    )
                    assert local.date() not in cal, (r, zone)
        # limits, counted from the sent records themselves
        limits = list(LIMITS)
        if acct.country == "CN":
            limits += POLICY["jurisdictions"]["CN"]["limits"]
        if acct.country == "US" and acct.region == "MA":
            limits += POLICY["jurisdictions"]["US-MA"]["limits"]
        for limit in limits:
            if r.channel not in limit["channels"]:
                continue
            n, unit = int(limit["window"][:-1]), limit["window"][-1]

            def in_window(
                other: DecisionRecord,
                r: DecisionRecord = r,
                unit: str = unit,
                n: int = n,
                primary: ZoneInfo = primary,
            ) -> bool:
                if other.time > r.time:
                    return False
                if unit == "d":
                    d0 = r.time.astimezone(primary).date()
                    return d0 - timedelta(days=n - 1) <= other.time.astimezone(primary).date() <= d0
                span = timedelta(hours=n) if unit == "h" else timedelta(minutes=n)
                return other.time > r.time - span

            scope = [
                o
                for o in sent
                if o.channel in limit["channels"]
                and in_window(o)
                and (
                    o.account == r.account
                    if limit["scope"] == "account"
                    else by_id[o.account].debtor_id == acct.debtor_id
                )
            ]
            assert len(scope) <= limit["max"], (limit["id"], r, scope)
        # pauses after a conversation: the event's local day is day 1
        for e in events:
            if (
                e.account == r.account
                and e.type == "conversation"
                and r.channel in ("voice", "sms")
            ):
                first = e.at.astimezone(primary).date()
                if e.at <= r.time:
                    assert r.time.astimezone(primary).date() >= first + timedelta(days=3), (r, e)
        # suppressions: opt-out (STOP until START), dispute, cease
        state = {"stop": False, "dispute": False, "cease": False}
        for e in events:
            if e.at > r.time:
                break
            # a STOP or START acts on the number, whichever debtor's account it came in on
            same_number = by_id[e.account].phone == acct.phone
            if e.type == "inbound_sms" and same_number:
                state["stop"] = e.data["body"] == "STOP"
            if e.account != r.account:
                continue
            if e.type == "dispute":
                state["dispute"] = True
            elif e.type == "dispute_resolved":
                state["dispute"] = False
            elif e.type == "cease":
                state["cease"] = True
        if r.channel == "sms":
            assert not state["stop"], r
        if r.kind == "collection":
            assert not state["dispute"], r
        if r.kind in ("collection", "service"):
            assert not state["cease"], r


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario_st())
def test_no_sent_record_breaks_a_rule(
    tmp_path_factory: pytest.TempPathFactory,
    scenario: tuple[list[dict[str, Any]], list[Account], list[ScenarioEvent]],
) -> None:
    steps, accounts, events = scenario
    templates = minimal_templates(tmp_path_factory.mktemp("t"))
    config = make_config(stages=[{"id": "M1", "dpd": [1, 60], "steps": steps}], policy=POLICY)
    records = simulate(
        config, accounts, events, start=START.isoformat(), days=DAYS, templates=templates
    )
    check_invariants(steps, accounts, events, records)


@settings(max_examples=40, deadline=None)
@given(cadence_st, st.sampled_from(PLACES), st.integers(1, 25))
def test_liveness_every_occurrence_sent_on_its_day(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[dict[str, Any]],
    place: tuple[str, str, str, str, str, str],
    dpd: int,
) -> None:
    region, city, phone, country, locale, currency = place
    templates = minimal_templates(tmp_path_factory.mktemp("t"))
    config = make_config(
        stages=[{"id": "M1", "dpd": [1, 60], "steps": steps}], policy={"hours": {"default": "any"}}
    )
    acct = account(
        region=region,
        city=city,
        phone=phone,
        country=country,
        locale=locale,
        currency=currency,
        due_date=START.date() - timedelta(days=dpd),
    )
    records = simulate(config, [acct], start=START.isoformat(), days=DAYS, templates=templates)
    assert all(r.decision == "sent" for r in records), records[:3]
    primary, _ = _zones(acct)
    for r in records:
        step = next(s for s in steps if s["id"] == r.step)
        local = r.time.astimezone(primary)
        hh, mm = (int(x) for x in step["at"].split(":"))
        assert (
            (local.hour, local.minute) == (hh, mm)
            or local.tzinfo is None
            or _gap(local.date(), primary)
        )
    # every planned occurrence in the period was sent, once
    first_day = START.astimezone(primary).date()
    expected = 0
    for k in range(DAYS + 1):
        day: date = first_day + timedelta(days=k)
        d = (day - acct.due_date).days
        for s in steps:
            hh, mm = (int(x) for x in s["at"].split(":"))
            planned = datetime.combine(day, time(hh, mm), tzinfo=primary)
            if not (START <= planned < START + timedelta(days=DAYS)):
                continue
            if "every" in s and (d - 1) % int(s["every"][:-1]) == 0 and 1 <= d <= 60:
                expected += 1
            if "on_dpd" in s and d in s["on_dpd"]:
                expected += 1
    assert len(records) == expected


def _gap(day: date, zone: ZoneInfo) -> bool:
    """True on a DST change day, where a wall time may not exist."""
    a = datetime.combine(day, time(0), tzinfo=zone).utcoffset()
    b = datetime.combine(day, time(23), tzinfo=zone).utcoffset()
    return a != b
