"""``at: best``: the hour each debtor answers most, learned from what answered when, and
always inside the permitted hours (the gate still decides)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from support import ROOT  # noqa: I001 - tests/support.py
from test_properties import POLICY, START, check_invariants, scenario_st
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.config.models import BestTime
from orchestrator.core.account import Account
from orchestrator.core.besttime import (
    DEBTOR,
    HourBook,
    HourLearner,
    choose_hour,
    learned_hours,
    permitted_hours,
)
from orchestrator.core.gate import timing
from orchestrator.core.planner import plan_day
from orchestrator.core.rules import RuleBook
from orchestrator.core.state import AccountState, SendHistory
from orchestrator.core.zones import candidate_zones
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.testing import account, make_config, minimal_templates, simulate

NY = ZoneInfo("America/New_York")
BEST_STEP = {
    "id": "call",
    "channel": "voice",
    "template": "reminder",
    "every": "1d",
    "at": "best",
    "at_default": "10:00",
}


def _cli(*args: str) -> tuple[int, str, str]:
    _register_all()
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# --- configuration ---------------------------------------------------------------------


def test_at_best_takes_a_window_and_a_fallback() -> None:
    config = make_config(
        stages=[{"id": "M1", "dpd": [1, 60], "steps": [{**BEST_STEP, "window": "09:00-17:30"}]}]
    )
    step = config.cadences.stages[0].steps[0]
    assert step.best and step.fixed_at is None
    assert step.window == (time(9), time(17, 30)) and step.at_default == time(10)
    assert config.uses_best_time
    assert not make_config(stages=[{"id": "M1", "dpd": [1, 60], "steps": []}]).uses_best_time


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"at": "10:00", "window": "09:00-12:00"}, "window applies only with at: best"),
        ({"at": "10:00", "at_default": "09:00"}, "at_default applies only with at: best"),
        ({"at": "best", "window": "12:00-09:00"}, "invalid window"),
        ({"at": "best", "window": "noon"}, "invalid window"),
        ({"at": "soonest"}, "invalid time of day"),
    ],
)
def test_bad_timing_is_refused(fields: dict[str, Any], message: str) -> None:
    step = {**BEST_STEP, **fields}
    if fields.get("at") != "best" and "at_default" not in fields:
        step.pop("at_default")
    with pytest.raises(ValidationError, match=message):
        make_config(stages=[{"id": "M1", "dpd": [1, 60], "steps": [step]}])


def test_config_check_names_the_line_of_a_misplaced_window(tmp_path: Path) -> None:
    import shutil

    from support import config_check, line_of

    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    cadences = config / "cadences.yaml"
    text = cadences.read_text()
    target = "template: reminder, on_dpd: [1"
    assert target in text
    cadences.write_text(text.replace(target, 'window: "09:00-12:00", ' + target, 1))
    code, output = config_check(config)
    assert code == 2
    assert f"cadences.yaml:{line_of(cadences, 'window:')}" in output
    assert "window applies only with at: best" in output


# --- the estimate ------------------------------------------------------------------------


def _book(**hours: tuple[int, int]) -> HourBook:
    book = HourBook()
    for name, (sent, answered) in hours.items():
        book.add(DEBTOR, "D1", "voice", int(name[1:]), sent, answered)
    return book


def _choose(
    book: HourBook,
    settings: BestTime,
    key: str = "2026-03-02",
    hours: range | list[int] = range(8, 21),
) -> int | None:
    return choose_hour(
        list(hours),
        book,
        debtor="D1",
        segment=None,
        channel="voice",
        settings=settings,
        step="call",
        key=key,
    )


def test_the_posterior_mean_picks_the_hour_answered_most() -> None:
    book = _book(h10=(4, 0), h18=(3, 2), h12=(2, 0))
    assert _choose(book, BestTime(method="mean", explore=0)) == 18
    # with nothing learned every hour is alike: the earliest
    assert _choose(HourBook(), BestTime(method="mean", explore=0)) == 8


def test_thompson_sampling_mostly_exploits_and_sometimes_explores() -> None:
    book = HourBook()
    for hour in range(8, 21):  # every hour tried twice, only 18:00 answered (3 of 4)
        for n in range(4 if hour == 18 else 2):
            book.record("D1", None, "voice", hour, answered=hour == 18 and n < 3)
    picks = [_choose(book, BestTime(explore=0), key=f"day{i}") for i in range(400)]
    assert picks.count(18) > 200  # the hour that answered wins most draws
    assert len(set(picks)) >= 5  # and hours not tried yet are tried now and then
    # the same debtor, step and day: the same hour (simulate and a re-planned day agree)
    assert picks == [_choose(book, BestTime(explore=0), key=f"day{i}") for i in range(400)]


def test_a_neighbouring_hour_shares_what_was_learned() -> None:
    book = _book(h17=(3, 3), h10=(3, 0))
    means = {h.hour: h.rate for h in learned_hours(book, "D1", None, "voice", BestTime(), top=24)}
    assert means[17] > means[16] > means[10] and means[18] > means[12]
    # `account show`'s n: the debtor's own sends at that hour
    top = learned_hours(book, "D1", None, "voice", BestTime(), top=1)[0]
    assert (top.hour, top.sent, top.answered) == (17, 3, 3)


def test_the_segment_and_portfolio_are_the_prior() -> None:
    book = HourBook()
    for _ in range(200):  # the portfolio answers in the evening; this debtor is new
        book.record("other", "evening-people", "voice", 19, answered=True)
        book.record("other", "evening-people", "voice", 9, answered=False)
    settings = BestTime(method="mean", explore=0)
    assert _choose(book, settings, hours=[9, 12, 19]) == 19
    # the debtor's own history outweighs the prior once there is enough of it
    for _ in range(6):
        book.record("D1", "evening-people", "voice", 9, answered=True)
        book.record("D1", "evening-people", "voice", 19, answered=False)
    assert _choose(book, settings, hours=[9, 12, 19]) == 9


def test_the_learner_counts_an_answer_for_the_send_before_it_within_the_window() -> None:
    learner = HourLearner(BestTime.model_validate({"attribution": "6h"}))
    t0 = datetime(2026, 3, 2, 15, tzinfo=ZoneInfo("UTC"))
    learner.sent("A1", t0, debtor="D1", segment=None, channel="voice", slot=10)
    learner.answered("A1", t0 + timedelta(hours=1))  # answers the 10:00 call
    learner.sent("A1", t0 + timedelta(hours=3), debtor="D1", segment=None, channel="sms", slot=13)
    learner.answered("A1", t0 + timedelta(hours=10))  # too late for the 13:00 text
    learner.answered("A2", t0)  # another account, with no send
    assert learner.fold(t0 + timedelta(hours=5)) == 0  # no window has closed yet
    assert learner.fold(t0 + timedelta(hours=9)) == 2
    voice, sms = learner.book.of(DEBTOR, "D1", "voice"), learner.book.of(DEBTOR, "D1", "sms")
    assert voice is not None and (voice.sent[10], voice.answered[10]) == (1, 1)
    assert sms is not None and (sms.sent[13], sms.answered[13]) == (1, 0)
    portfolio = learner.book.of("portfolio", "", "sms")
    assert portfolio is not None and portfolio.sent[13] == 1


# --- inside the rules --------------------------------------------------------------------

PLACES = [
    ("NY", "New York", "+12125550100", "US"),
    ("AZ", "Phoenix", "+16025550111", "US"),
    ("HI", "Honolulu", "+18085550111", "US"),
    ("CA", "Oakland", "+12125550188", "US"),  # NY phone, CA address: two zones
    ("BJ", "北京", "+8613800138000", "CN"),
]


@st.composite
def _history(draw: st.DrawFn) -> HourBook:
    book = HourBook()
    for _ in range(draw(st.integers(0, 40))):
        debtor = draw(st.sampled_from(["D1", "D2"]))
        hour = draw(st.integers(0, 23))
        book.record(debtor, draw(st.sampled_from([None, "s1"])), "voice", hour, draw(st.booleans()))
    return book


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    place=st.sampled_from(PLACES),
    start=st.integers(0, 22),
    length=st.integers(1, 14),
    days=st.sets(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1),
    window=st.one_of(st.none(), st.tuples(st.integers(0, 23), st.integers(1, 24))),
    book=_history(),
    method=st.sampled_from(["thompson", "mean"]),
    explore=st.sampled_from([0.0, 0.05, 1.0]),
    offset=st.integers(0, 60),
)
def test_at_best_never_plans_outside_permitted_hours(
    place: tuple[str, str, str, str],
    start: int,
    length: int,
    days: set[str],
    window: tuple[int, int] | None,
    book: HourBook,
    method: str,
    explore: float,
    offset: int,
) -> None:
    end = min(start + length, 24)
    hours = {
        "start": f"{start:02d}:00",
        "end": f"{end:02d}:00" if end < 24 else "24:00",
        "days": sorted(days),
    }
    step = dict(BEST_STEP)
    if window is not None and window[0] < window[1]:
        step["window"] = (
            f"{window[0]:02d}:00-{window[1]:02d}:00"
            if window[1] < 24
            else f"{window[0]:02d}:00-24:00"
        )
    policy = {
        "hours": {"default": hours},
        "holidays": {"channels": ["voice"]},
        "best_time": {"method": method, "explore": explore},
    }
    config = make_config(stages=[{"id": "M1", "dpd": [1, 200], "steps": [step]}], policy=policy)
    region, city, phone, country = place
    acct = account("A1", debtor_id="D1", region=region, city=city, phone=phone, country=country)
    rules = RuleBook(config).for_account(acct)
    state = AccountState(acct, rules.zones, hours=book)
    day = date(2026, 3, 1) + timedelta(days=offset)
    (occ,) = plan_day(state, rules, day)
    zones = candidate_zones(acct, config.policy.timezone).candidates
    primary = rules.zones.primary
    timed = config.cadences.stages[0].steps[0]
    # Checked apart from the engine: every candidate zone's wall clock and holidays.
    import holidays as holidays_lib

    def permitted(at: datetime) -> bool:
        for zone in zones:
            local = at.astimezone(zone)
            if not (start <= local.hour < end) or local.strftime("%a").lower() not in days:
                return False
            subdiv = region if country == "US" else None
            if local.date() in holidays_lib.country_holidays(country, subdiv=subdiv):
                return False
        return True

    def in_window(at: datetime) -> bool:
        return (
            timed.window is None
            or timed.window[0] <= at.astimezone(primary).time() < timed.window[1]
        )

    whole_hours = [datetime.combine(day, time(h), tzinfo=primary) for h in range(24)]
    open_hours = [
        t
        for t in whole_hours
        if permitted(t) and in_window(t) and t.astimezone(primary).hour == t.hour
    ]
    if open_hours:
        assert permitted(occ.planned_at), (occ.planned_at, hours, zones)
        assert in_window(occ.planned_at)
    else:  # nothing open that day: the step's fallback, which the gate will defer
        assert occ.planned_at == datetime.combine(day, time(10), tzinfo=primary).astimezone(
            occ.planned_at.tzinfo
        ) or occ.planned_at.astimezone(primary).time() == time(10)
    # What the gate allows does not depend on what was learned.
    history = SendHistory()
    learned = timing("voice", "A1", state, history, rules, occ.planned_at)
    blank = timing("voice", "A1", AccountState(acct, rules.zones), history, rules, occ.planned_at)
    assert learned == blank


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario_st(), st.booleans())
def test_no_sent_record_breaks_a_rule_with_learned_hours(
    tmp_path_factory: pytest.TempPathFactory,
    scenario: tuple[list[dict[str, Any]], list[Account], list[ScenarioEvent]],
    windowed: bool,
) -> None:
    """The engine-wide invariants of test_properties, with every step ``at: best``."""
    steps, accounts, events = scenario
    best = [{**s, "at": "best", **({"window": "10:00-19:00"} if windowed else {})} for s in steps]
    templates = minimal_templates(tmp_path_factory.mktemp("t"))
    config = make_config(stages=[{"id": "M1", "dpd": [1, 60], "steps": best}], policy=POLICY)
    records = simulate(
        config, accounts, events, start=START.isoformat(), days=12, templates=templates
    )
    check_invariants(best, accounts, events, records)


def test_permitted_hours_skip_the_hour_spring_forward_removes() -> None:
    from orchestrator.core.hours import HoursRule

    hours = permitted_hours(date(2026, 3, 8), NY, HoursRule.any(), (NY,), None, None)
    assert 2 not in hours and len(hours) == 23


# --- the experiment the README quotes --------------------------------------------------


def _by_variant(model: str) -> dict[str, Any]:
    code, stdout, stderr = _cli(
        "simulate",
        str(ROOT / "config" / "simulation" / "best_time.yaml"),
        "--config",
        str(ROOT / "config"),
        "--response-model",
        str(ROOT / "config" / "simulation" / model),
        "--by",
        "variant",
        "--json",
    )
    assert code == 0, stderr
    return {g["variant"]: g for g in json.loads(stdout)["groups"]}


@pytest.mark.slow
def test_at_best_finds_hidden_hours_and_invents_none() -> None:
    arms = _by_variant("hidden_hours.yaml")
    fixed, best = arms["champion"]["contact"], arms["best"]["contact"]
    assert best["value"] >= 1.15 * fixed["value"], (fixed, best)
    assert arms["best"]["versus_champion"]["contact"]["significant"] is True
    arms = _by_variant("no_hour_preference.yaml")
    assert arms["best"]["versus_champion"]["contact"]["significant"] is False


# --- the daemon ----------------------------------------------------------------------------


def test_the_daemon_learns_the_hour_a_debtor_answers(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """A debtor who answers only at 18:00: the daemon's planning rounds count each call
    once its window closes, and its calls move to 18:00; ``account show`` tells it."""
    import sqlalchemy as sa
    from support import sample_runner

    from orchestrator.store import facts
    from orchestrator.store.besttime import fold
    from orchestrator.store.tables import ContactHour, OccurrenceRow, table_of
    from orchestrator.store.timeline import account_timeline

    policy = {
        "hours": {"default": {"start": "08:00", "end": "21:00"}},
        "best_time": {"method": "mean", "explore": 0},  # no sampling: the plumbing is tested
    }
    config = make_config(
        stages=[{"id": "M1", "dpd": [1, 400], "steps": [BEST_STEP]}], policy=policy
    )
    start = datetime(2026, 3, 2, 5, tzinfo=ZoneInfo("UTC"))  # midnight in New York
    acct = account("A1", debtor_id="D1", phone="+12125550100")
    engine, runner = sample_runner(
        db_url, data_keys, tmp_path, config, [acct], start=start, batch=10
    )
    occ_t, hour_t = table_of(OccurrenceRow), table_of(ContactHour)
    chosen = []
    for day in range(25):
        midnight = start + timedelta(days=day)
        runner.tick(midnight)  # plans the day (and counts yesterday's call)
        with engine.connect() as conn:
            planned = conn.execute(
                sa.select(occ_t.c.planned_at).where(occ_t.c.state == "pending")
            ).scalar_one()
        runner.tick(planned)
        hour = planned.astimezone(NY).hour
        chosen.append(hour)
        if hour == 18:  # the debtor picks up: a conversation, recorded as the API does
            with engine.begin() as conn:
                facts.record_event(
                    conn,
                    account_id="A1",
                    type_="conversation",
                    at=planned + timedelta(minutes=20),
                    channel="voice",
                )
    assert all(8 <= h < 21 for h in chosen)
    assert chosen[-7:].count(18) >= 5, str(chosen)
    end = start + timedelta(days=25)
    with engine.begin() as conn:
        fold(conn, end, config.policy.best_time)
        rows = {
            r.scope: ([int(x) for x in r.sent.split(",")], [int(x) for x in r.answered.split(",")])
            for r in conn.execute(sa.select(hour_t).where(hour_t.c.channel == "voice"))
        }
        # each call counted once, however many rounds ran; a second fold adds nothing
        sent, answered = rows["debtor"]
        assert sum(sent) == 25 and rows["portfolio"] == rows["debtor"]
        assert (sent[18], answered[18]) == (chosen.count(18), chosen.count(18))
        assert sum(answered) == answered[18]
        assert fold(conn, end, config.policy.best_time) == 0
        shown = account_timeline(conn, runner.cipher, "A1", today=end.date())
    assert shown is not None
    top = shown["best_hours"]["voice"][0]
    assert top["hour"] == "18:00" and top["sent"] == top["answered"] == chosen.count(18)
    # The HTML report's heat map counts the same way, by weekday and hour of the debtor.
    from orchestrator.reporting.html import render_html
    from orchestrator.reporting.kpis import build_report

    with engine.connect() as conn:
        report = build_report(conn, config, start.date(), end.date(), heatmap=True)
    cells = report["heatmap"]["voice"]
    assert sum(c["sent"] for c in cells) == 25
    at_six = [c for c in cells if c["hour"] == 18]
    assert sum(c["answered"] for c in at_six) == sum(c["sent"] for c in at_six) == chosen.count(18)
    assert sum(c["answered"] for c in cells if c["hour"] != 18) == 0
    monday = next(c for c in at_six if c["weekday"] == 1)
    page = render_html(report)
    assert 'id="heatmap-voice"' in page
    assert f'title="mon 18:00: {monday["answered"]} of {monday["sent"]} answered"' in page
