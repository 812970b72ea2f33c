"""Segments (``segments.yaml``): each condition, the first rule that holds, a segment
recomputed each local day from the facts (a payment, a broken promise), steps filtered
by segment, the segment on every decision, and ``config check`` at file and line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from support import ROOT, config_check, line_of, sample_runner  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.config.models import Config, Segments, SegmentWhen
from orchestrator.core.segments import holds, segment_of
from orchestrator.core.state import AccountState, Contact, EventRecord
from orchestrator.core.zones import Zones
from orchestrator.testing import account, event, make_config, minimal_templates, simulate

DAY = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)  # midnight in New York


def _state(**fields: Any) -> AccountState:
    acc = account(**fields)
    zone = ZoneInfo("America/New_York")
    return AccountState(acc, Zones(zone, (zone,)))


def _holds(state: AccountState, dpd: int = 10, **when: Any) -> bool:
    return holds(SegmentWhen.model_validate(when), state, DAY, dpd)


def test_account_conditions() -> None:
    state = _state(
        balance=Decimal("500.00"), product="card", risk_score=Decimal("0.72"), segment="gold"
    )
    assert _holds(state)  # no condition: always
    assert _holds(state, balance_min="500.00") and not _holds(state, balance_min="500.01")
    assert _holds(state, balance_max="500.00") and not _holds(state, balance_max="499.99")
    assert _holds(state, currency="USD") and not _holds(state, currency=["CNY", "EUR"])
    assert _holds(state, creditor=["acme"]) and not _holds(state, creditor="other")
    assert _holds(state, product="card") and not _holds(state, product="loan")
    assert _holds(state, imported="gold") and not _holds(state, imported="silver")
    assert _holds(state, risk_score_min="0.7") and not _holds(state, risk_score_max="0.7")
    assert _holds(state, dpd_min=10, dpd_max=10) and not _holds(state, dpd_min=11)
    no_score = _state(risk_score=None, product=None)
    assert not _holds(no_score, risk_score_min="0") and not _holds(no_score, product="card")
    assert _holds(no_score, risk_score_min=None)


def test_the_balance_is_the_one_at_the_start_of_the_day() -> None:
    """A payment later that day does not move the account until the next day."""
    state = _state(balance=Decimal("1200.00"))
    state.add_payment(DAY + timedelta(hours=3), Decimal("500.00"), "pay1")
    assert state.account.balance == Decimal("700.00")
    assert _holds(state, balance_min="1000.00")
    assert not holds(
        SegmentWhen.model_validate({"balance_min": "1000.00"}), state, DAY + timedelta(days=1), 11
    )


def test_behaviour_counts_inside_the_window_before_the_day() -> None:
    state = _state(balance=Decimal("900.00"))
    # A promise made 40 days ago and broken 30 days ago; one made 5 days ago and kept.
    state.add_promise(DAY - timedelta(days=40), Decimal("100"), DAY.date() - timedelta(days=35))
    state.break_promise("p1", DAY - timedelta(days=30))
    state.add_promise(DAY - timedelta(days=5), Decimal("50"), DAY.date())
    state.add_payment(DAY - timedelta(days=4), Decimal("50"), "pay1")
    state.events.append(EventRecord(DAY - timedelta(days=3, hours=2), "conversation", "voice"))

    assert _holds(state, promises_broken_min=1, within="31d")
    assert not _holds(state, promises_broken_min=1, within="29d")
    assert _holds(state, promises_made_min=2, within="90d")
    assert _holds(state, promises_made_min=1, promises_made_max=1, within="30d")
    assert _holds(state, promises_kept_min=1, within="7d")
    assert _holds(state, payments_min=1, payments_max=1, within="7d")
    assert not _holds(state, payments_min=1, within="3d")
    assert _holds(state, days_since_conversation_min=3, days_since_conversation_max=3)
    assert not _holds(state, days_since_conversation_max=2)
    never = _state()
    assert _holds(never, days_since_conversation_min=30)  # never: as long ago as can be
    assert not _holds(never, days_since_conversation_max=30)


def test_the_window_is_half_open() -> None:
    """``within: 30d`` counts from exactly 30 days before the day's start, up to (not
    including) the start."""
    state = _state()
    state.add_promise(DAY - timedelta(days=31), Decimal("10"), DAY.date())
    state.break_promise("p1", DAY - timedelta(days=30))
    assert _holds(state, promises_broken_min=1, within="30d")
    late = _state()
    late.add_promise(DAY - timedelta(days=2), Decimal("10"), DAY.date())
    late.break_promise("p1", DAY)  # at the start of the day: counts from the next day
    assert not _holds(late, promises_broken_min=1, within="30d")


def test_the_first_rule_that_holds_wins() -> None:
    segments = Segments.model_validate(
        {
            "segments": [
                {"id": "big", "when": {"balance_min": "1000"}},
                {"id": "usd", "when": {"currency": "USD"}},
                {"id": "rest", "when": {}},
            ]
        }
    )
    assert segment_of(segments, _state(balance=Decimal("2000")), DAY, 10) == "big"
    assert segment_of(segments, _state(balance=Decimal("20")), DAY, 10) == "usd"
    assert segment_of(segments, _state(currency="CNY"), DAY, 10) == "rest"
    assert segment_of(Segments(), _state(), DAY, 10) is None
    only_big = Segments.model_validate({"segments": [{"id": "big", "when": {"balance_min": 1000}}]})
    assert segment_of(only_big, _state(), DAY, 10) is None


def _config(stages: list[dict[str, Any]], segments: list[dict[str, Any]]) -> Config:
    base = make_config(stages=stages)
    return base.model_copy(update={"segments": Segments.model_validate({"segments": segments})})


RULES = [
    {"id": "broke-promise", "when": {"promises_broken_min": 1, "within": "90d"}},
    {"id": "paid-recently", "when": {"payments_min": 1, "within": "30d"}},
    {"id": "standard", "when": {}},
]


def test_a_broken_promise_and_a_payment_move_the_account_the_next_day(tmp_path: Path) -> None:
    """Daily texts; the segment on each decision follows the facts of the day before:
    standard, then broke-promise the day after the promise's grace ends unpaid. A second
    account pays part and is paid-recently from the next day."""
    config = _config(
        [
            {
                "id": "M1",
                "dpd": [1, 60],
                "steps": [
                    {"id": "daily", "channel": "email", "template": "reminder", "every": "1d"}
                ],
            }
        ],
        RULES,
    )
    records = simulate(
        config,
        [account("A1", due_date="2026-03-01"), account("A2", due_date="2026-03-01")],
        [
            # A1 promises on 03-03 to pay by 03-05; grace 1 day: broken at 03-07 00:00 local.
            event("2026-03-03T15:00:00Z", "A1", "promise", amount="100.00", due="2026-03-05"),
            event("2026-03-04T18:00:00Z", "A2", "payment", amount="20.00"),
        ],
        start="2026-03-02T05:00:00Z",
        days=7,
        templates=minimal_templates(tmp_path / "t"),
    )
    by_day = {(r.account, r.local_time[:10]): r.segment for r in records if r.step == "daily"}
    assert by_day[("A1", "2026-03-06")] == "standard"
    assert by_day[("A1", "2026-03-07")] == "standard"  # broken at its start: counts next day
    assert by_day[("A1", "2026-03-08")] == "broke-promise"
    assert by_day[("A2", "2026-03-04")] == "standard"  # paid that afternoon
    assert by_day[("A2", "2026-03-05")] == "paid-recently"
    assert all(r.segment is not None for r in records)


def test_steps_and_stages_apply_to_their_segments_only(tmp_path: Path) -> None:
    config = _config(
        [
            {
                "id": "M1",
                "dpd": [1, 30],
                "steps": [
                    {
                        "id": "big-call",
                        "channel": "voice",
                        "template": "reminder",
                        "on_dpd": [5],
                        "segments": ["big"],
                    },
                    {
                        "id": "not-big-sms",
                        "channel": "sms",
                        "template": "reminder",
                        "on_dpd": [5],
                        "except_segments": ["big"],
                    },
                ],
            },
            {
                "id": "M2",
                "dpd": [31, None],
                "segments": ["big"],
                "steps": [
                    {"id": "m2-email", "channel": "email", "template": "overdue", "on_dpd": [31]}
                ],
            },
        ],
        [{"id": "big", "when": {"balance_min": "1000"}}],  # no catch-all: others in none
    )
    accounts = [
        account("BIG", balance="5000.00", due_date="2026-03-01"),
        account("SMALL", balance="50.00", due_date="2026-03-01", phone="+12125550101"),
    ]
    records = simulate(
        config,
        accounts,
        start="2026-03-02T05:00:00Z",
        days=31,
        templates=minimal_templates(tmp_path / "t"),
    )
    sent = sorted((r.account, r.step, r.segment) for r in records if r.decision == "sent")
    assert sent == [
        ("BIG", "big-call", "big"),
        ("BIG", "m2-email", "big"),
        ("SMALL", "not-big-sms", None),
    ]


def test_every_record_has_the_keys_null_without_segments(tmp_path: Path) -> None:
    config = make_config(
        stages=[
            {
                "id": "M1",
                "dpd": [1, 30],
                "steps": [{"id": "s", "channel": "sms", "template": "reminder", "on_dpd": [2]}],
            }
        ]
    )
    (record,) = simulate(
        config,
        [account(due_date="2026-03-01")],
        start="2026-03-02T05:00:00Z",
        days=2,
        templates=minimal_templates(tmp_path / "t"),
    )
    line = json.loads(record.to_json())
    assert (line["segment"], line["experiment"], line["variant"]) == (None, None, None)
    assert list(line)[-4:] == ["segment", "experiment", "variant", "text"]


def test_the_imported_columns_reach_the_rules(tmp_path: Path) -> None:
    """``product`` and ``risk_score`` from the accounts file, through ``outreach import``
    and the account's replay, decide the segment the daemon records."""
    from orchestrator.ingest.validation import parse_account

    parsed, problems = parse_account(
        {
            "account_id": "A1",
            "name": "Jane Doe",
            "currency": "USD",
            "balance": "10.00",
            "due_date": "2026-03-01",
            "product": "card",
            "risk_score": "0.7500",
        },
        source="accounts.csv",
        line=2,
    )
    assert problems == [] and parsed is not None
    assert (parsed.product, parsed.risk_score) == ("card", Decimal("0.7500"))
    for bad, message in [("high", "not a decimal"), ("0.12345", "more than 4 decimal places")]:
        _, problems = parse_account(
            {
                "account_id": "A1",
                "name": "J",
                "currency": "USD",
                "balance": "1",
                "due_date": "2026-03-01",
                "risk_score": bad,
            },
            source="accounts.csv",
            line=2,
        )
        assert [p.field for p in problems] == ["risk_score"] and message in problems[0].message


# --- config check ------------------------------------------------------------------------------


def test_config_check_names_an_unknown_segment_at_its_line(cfg: Path) -> None:
    cadences = cfg / "cadences.yaml"
    cadences.write_text(
        cadences.read_text().replace("except_segments: [kept-promise]", "segments: [kept-promis]")
    )
    code, out = config_check(cfg)
    assert code == 2, out
    assert f"cadences.yaml:{line_of(cadences, 'kept-promis]')}:" in out
    assert "step m1-call: unknown segment 'kept-promis' (did you mean 'kept-promise'?)" in out


def test_config_check_warns_of_a_step_no_segment_reaches(cfg: Path) -> None:
    cadences = cfg / "cadences.yaml"
    text = cadences.read_text().replace(
        "    dpd: [1, 30]\n", "    dpd: [1, 30]\n    segments: [standard]\n"
    )
    cadences.write_text(text.replace("except_segments: [kept-promise]", "segments: [kept-promise]"))
    code, out = config_check(cfg)
    assert code == 0, out
    assert f"cadences.yaml:{line_of(cadences, 'id: m1-call')}:" in out
    assert "warning: cadences: step m1-call: no segment can reach it" in out


def test_config_check_refuses_bad_rules(cfg: Path) -> None:
    segments = cfg / "segments.yaml"
    text = segments.read_text()
    text = text.replace('{balance_min: "1000.00"}', '{balance_min: "1000.00", balance_max: 10}')
    text = text.replace("id: standard", "id: broke-promise")
    segments.write_text(text)
    code, out = config_check(cfg)
    assert code == 2, out
    assert f"segments.yaml:{line_of(segments, 'balance_max: 10')}:" in out
    assert "balance_min 1000.00 is above balance_max 10" in out
    assert "duplicate segment id 'broke-promise'" in out

    segments.write_text(text + "  - id: late\n    when: {dpd_min: 30, colour: red}\n")
    code, out = config_check(cfg)
    assert code == 2, out
    assert f"segments.yaml:{line_of(segments, 'colour')}:" in out and "unknown key" in out


def test_config_check_warns_of_a_rule_behind_a_catch_all(cfg: Path) -> None:
    segments = cfg / "segments.yaml"
    segments.write_text(segments.read_text() + "  - id: never\n    when: {dpd_min: 30}\n")
    code, out = config_check(cfg)
    assert code == 0, out
    assert "segment never is never reached: standard before it matches every account" in out


def test_segments_inline_in_a_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"""
start: 2026-03-02T05:00:00Z
days: 3
templates: {ROOT / "templates"}
config:
  cadences:
    stages:
      - {{id: M1, dpd: [1, 30], steps: [{{id: s, channel: sms, template: reminder, every: 1d}}]}}
  segments:
    - {{id: small, when: {{balance_max: "100.00"}}}}
accounts:
  - {{account_id: A1, name: Jane Doe, phone: "+12125550100", region: NY, country: US,
     currency: USD, balance: "50.00", due_date: 2026-02-28, locale: en-US, creditor: acme}}
"""
    )
    _register_all()
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines and {x["segment"] for x in lines} == {"small"}


# --- contacts and responsiveness ------------------------------------------------------------


def _contact(days_ago: float, channel: str, *statuses: tuple[float, str]) -> Contact:
    """A message sent ``days_ago`` before DAY, with statuses ``(hours after, status)``."""
    at = DAY - timedelta(days=days_ago)
    return Contact(
        at, channel, f"m{days_ago}{channel}", [(at + timedelta(hours=h), s) for h, s in statuses]
    )


def test_days_since_the_last_contact_that_reached_the_person() -> None:
    state = _state()
    assert _holds(state, days_since_contact_min=99) and not _holds(state, days_since_contact_max=99)
    state.contacts = [
        _contact(6, "sms", (0.1, "delivered")),
        _contact(2, "voice", (0.1, "no_answer")),  # never reached
        _contact(0.5, "email", (13, "delivered")),  # after the day's start: not yet known
    ]
    assert _holds(state, days_since_contact_min=5, days_since_contact_max=5)  # 6 d - 0.1 h
    state.events.append(EventRecord(DAY - timedelta(days=1, hours=1), "conversation", "voice"))
    assert _holds(state, days_since_contact_max=1)


def test_responsiveness_is_responded_over_reached_within_the_window() -> None:
    state = _state()
    assert not _holds(state, responsiveness_min="0")  # nothing reached: no share
    state.contacts = [
        _contact(20, "voice", (0.01, "answered")),
        _contact(10, "sms", (0.1, "delivered"), (5, "clicked")),
        _contact(5, "sms", (0.1, "delivered")),
        _contact(3, "voice", (0.01, "machine")),
        _contact(1, "sms", (0.1, "undelivered")),  # not reached: not counted
        _contact(0.2, "sms", (0.1, "delivered"), (6, "clicked")),  # click after the start
    ]
    # within 30 days: answered and clicked of 5 reached = 0.4; within 7 days: 0 of 3.
    assert _holds(state, responsiveness_min="0.4", responsiveness_max="0.4", within="30d")
    assert _holds(state, responsiveness_max="0", within="7d")
    assert not _holds(state, responsiveness_min="0.01", within="7d")


def test_receipts_move_the_segment_in_simulate(tmp_path: Path) -> None:
    """Daily texts. ``unreached`` while no text has reached the person for 3 days; a
    delivery receipt on 03-05 and a click on 03-06 make the account ``engaged`` from
    03-07 (1 clicked of 2 reached)."""
    config = _config(
        [
            {
                "id": "M1",
                "dpd": [1, 60],
                "steps": [{"id": "daily", "channel": "sms", "template": "reminder", "every": "1d"}],
            }
        ],
        [
            {"id": "engaged", "when": {"responsiveness_min": "0.5", "within": "14d"}},
            {"id": "unreached", "when": {"days_since_contact_min": 3}},
            {"id": "other", "when": {}},
        ],
    )
    records = simulate(
        config,
        [account("A1", due_date="2026-03-01")],
        [
            event("2026-03-05T16:00:00Z", "A1", "delivery", channel="sms", status="delivered"),
            event("2026-03-06T15:05:00Z", "A1", "delivery", channel="sms", status="delivered"),
            event("2026-03-06T16:00:00Z", "A1", "click"),
        ],
        start="2026-03-02T05:00:00Z",
        days=6,
        templates=minimal_templates(tmp_path / "t"),
    )
    by_day = {r.local_time[:10]: r.segment for r in records if r.step == "daily"}
    assert by_day == {
        "2026-03-02": "unreached",
        "2026-03-03": "unreached",
        "2026-03-04": "unreached",
        "2026-03-05": "unreached",
        "2026-03-06": "other",  # reached on 03-05: 0 days since; nothing clicked yet
        "2026-03-07": "engaged",
    }


def test_the_daemon_reads_receipts_as_simulate_does(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """Sample accounts, daily texts; receipts (delivered, and answered calls) arrive an
    hour after some sends, through the daemon's own ``record_delivery``. The segments on
    the decisions, and so the steps, are the ones ``simulate`` gives."""
    import sqlalchemy as sa

    from channels.base import DeliveryStatus
    from orchestrator.simulation.sample import generate_accounts
    from orchestrator.simulation.simulate import (
        Scenario,
        Simulation,
    )
    from orchestrator.store import facts
    from orchestrator.store.tables import Decision, table_of

    config = _config(
        [
            {
                "id": "M1",
                "dpd": [-10, 200],
                "steps": [
                    {"id": "t", "channel": "sms", "template": "reminder", "every": "1d"},
                    {
                        "id": "c",
                        "channel": "voice",
                        "template": "reminder",
                        "every": "1d",
                        "at": "18:00",
                        "segments": ["unreached"],
                    },
                ],
            }
        ],
        [
            {"id": "engaged", "when": {"responsiveness_min": "0.6", "within": "7d"}},
            {"id": "unreached", "when": {"days_since_contact_min": 2}},
            {"id": "other", "when": {}},
        ],
    )
    start = datetime(2026, 3, 9, 5, tzinfo=UTC)
    accounts = list(generate_accounts(12, today=start.date(), seed=9))
    templates = ROOT / "templates"
    first = list(Simulation(Scenario(start, 4, config, templates, accounts, [])).run())
    receipts = []
    for n, r in enumerate(
        x for x in first if x.decision == "sent" and x.time < start + timedelta(days=2)
    ):
        status = "answered" if r.channel == "voice" else "delivered"
        if n % 3 != 2:  # one in three never reaches the person
            receipts.append(
                (r.time + timedelta(hours=1), r.account, r.channel, status, r.message_id)
            )
    events = [
        event(at.isoformat(), acc, "delivery", channel=channel, status=status)
        for at, acc, channel, status, _ in receipts
    ]
    expected = list(Simulation(Scenario(start, 4, config, templates, accounts, events)).run())
    assert len({r.segment for r in expected}) == 3  # a real test: every segment occurs

    engine, runner = sample_runner(
        db_url, data_keys, tmp_path, config, accounts, start=start, batch=5
    )
    pending = sorted(receipts)
    for instant in sorted({r.time for r in expected} | {x[0] for x in receipts}):
        while pending and pending[0][0] <= instant:
            at, _, _, status, message_id = pending.pop(0)
            with engine.begin() as conn:
                facts.record_delivery(
                    conn,
                    provider_id=None,
                    message_id=message_id,
                    status=DeliveryStatus(status),
                    event_key=f"k-{message_id}",
                    at=at,
                )
        runner.tick(instant)
    t = table_of(Decision)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.time, t.c.id)).all()
    engine.dispose()
    found = sorted((r.time, r.account_id, r.step, r.decision, r.segment) for r in rows)
    assert found == sorted(
        (r.time, r.account, r.step, str(r.decision), r.segment) for r in expected
    )
