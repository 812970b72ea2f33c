"""The daemon's tick on a real database decides what ``simulate`` decides, at the same
instants, for the same accounts and facts (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import ROOT, sample_runner  # noqa: I001 - tests/support.py

from channels.base import OutboundMessage, SendResult
from channels.simulated import SimulatedChannel
from orchestrator.config.loading import load_config
from orchestrator.config.models import Config
from orchestrator.core.account import Account
from orchestrator.core.crypto import DataCipher
from orchestrator.core.planner import StageMark
from orchestrator.core.records import DecisionRecord
from orchestrator.dispatch.decider import message_id_for
from orchestrator.dispatch.runner import Runner
from orchestrator.dispatch.settle import PlannedAccount, send_status
from orchestrator.errors import AmbiguousSendError, PermanentChannelError, TransientChannelError
from orchestrator.ingest.importer import import_accounts
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.simulation.sample import generate_accounts, generate_events, write_csv
from orchestrator.simulation.simulate import (
    Scenario,
    Simulation,
)
from orchestrator.store import db, facts
from orchestrator.store.accounts import decision_values
from orchestrator.store.tables import (
    AccountPlan,
    AccountRow,
    Decision,
    OccurrenceRow,
    OptOut,
    Send,
    table_of,
)
from orchestrator.store.timeline import account_timeline
from orchestrator.testing import event
from orchestrator.web.inbound import handle_inbound

START = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)
# A decision as simulate and the database both record it: time, account, step, channel,
# decision, reason, until, message id.
Key = tuple[Any, ...]


def _setup(
    db_url: str, data_keys: str, tmp_path: Path, n: int, *, confirmations: bool = True
) -> tuple[Config, list[Account], sa.Engine, Runner]:
    config = load_config(ROOT / "config", ROOT / "templates")
    if not confirmations:  # the shipped cadences without promise-confirm and plan-confirm
        data = config.model_dump(mode="json", exclude_none=True)
        data["cadences"]["triggers"] = [
            t for t in data["cadences"]["triggers"] if t["on"] not in ("promise_made", "plan_made")
        ]
        config = Config.model_validate(data)
    accounts = list(generate_accounts(n, today=START.date(), seed=3))
    engine, runner = sample_runner(
        db_url, data_keys, tmp_path, config, accounts, start=START, batch=37
    )
    return config, accounts, engine, runner


def _key(r: DecisionRecord) -> Key:
    return (
        r.time,
        r.account,
        r.step,
        r.channel,
        str(r.decision),
        r.reason,
        r.until,
        r.message_id,
        r.segment,
        r.experiment,
        r.variant,
    )


def _db_decisions(engine: sa.Engine) -> list[Key]:
    t = table_of(Decision)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.time, t.c.id)).all()
    return [
        (
            r.time,
            r.account_id,
            r.step,
            r.channel,
            r.decision,
            r.reason,
            r.until,
            r.message_id,
            r.segment,
            r.experiment,
            r.variant,
        )
        for r in rows
    ]


def test_ticks_decide_what_simulate_decides(db_url: str, data_keys: str, tmp_path: Path) -> None:
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 60)
    scenario = Scenario(START, 3, config, ROOT / "templates", accounts, [])
    expected = [_key(r) for r in Simulation(scenario).run()]
    assert len({r[4] for r in expected}) >= 3  # sent, deferred and more: a real test
    assert {"standard", "high-balance"} <= {r[8] for r in expected}  # segments.yaml's
    assert {"champion", "challenger"} <= {r[10] for r in expected}  # experiments.yaml

    for instant in sorted({r[0] for r in expected}):
        runner.tick(instant)
    got = _db_decisions(engine)
    assert sorted(got, key=repr) == sorted(expected, key=repr)

    # ticking again at the same instant plans and sends nothing twice
    again = runner.tick(max(r[0] for r in expected))
    assert again.planned == 0 and not again.decisions
    sends = table_of(Send)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(sends.c.message_id, sends.c.status)).all()
    sent = [r for r in expected if r[4] == "sent"]
    assert sorted(m for m, _ in ids) == sorted(r[7] for r in sent)
    assert {s for _, s in ids} == {"sent"}


def test_same_instant_turns_are_taken_as_simulate_takes_them(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """Over two weeks deferrals pile up: a debtor's sends held by hours or a limit fall
    due at the same instant, and a weekly cap (US-WA, 3 in 7 days per debtor) has room for
    some of them only. The daemon gives the turns in the same order as ``simulate``
    (planned first), so the same ones go out."""
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 40)
    scenario = Scenario(START, 14, config, ROOT / "templates", accounts, [])
    expected = [_key(r) for r in Simulation(scenario).run()]
    contested = {r[1] for r in expected if r[5] == "limit:wa-weekly"}
    assert contested, "no debtor reached the weekly cap: the test proves nothing"
    _assert_ticks_decide(runner, expected, [])


def _assert_ticks_decide(runner: Runner, expected: list[Key], events: list[ScenarioEvent]) -> None:
    """Record each event when its time comes, as the daemon's inputs do (``_apply``), and
    tick at every instant ``simulate`` decided or an event arrived: the database then
    holds exactly the decisions of ``expected``."""
    pending = list(events)
    payments = 0
    for instant in sorted({r[0] for r in expected} | {x.at for x in events}):
        while pending and pending[0].at <= instant:
            ev = pending.pop(0)
            payments += ev.type == "payment"
            _apply(runner, ev, payments)  # payment ids as simulate numbers them: pay1, pay2
        runner.tick(instant)
    got = _db_decisions(runner.db)
    missing = sorted(set(expected) - set(got), key=repr)[:5]
    extra = sorted(set(got) - set(expected), key=repr)[:5]
    assert sorted(got, key=repr) == sorted(expected, key=repr), (missing, extra)


def _apply(runner: Runner, ev: ScenarioEvent, n: int) -> None:
    """Record one scenario event as the daemon's inputs do (API, webhooks: ``facts``)."""
    with runner.db.begin() as conn:
        if ev.type == "promise":
            facts.record_promise(
                conn,
                account_id=ev.account,
                amount=ev.data["amount"],
                due=ev.data["due"],
                made_at=ev.at,
            )
        elif ev.type == "payment":
            facts.record_payment(
                conn,
                account_id=ev.account,
                payment_id=f"pay{n}",
                amount=ev.data["amount"],
                currency=None,
                paid_at=ev.at,
                source="test",
                now=ev.at,
            )
        elif ev.type == "inbound_sms":  # as ``outreach serve`` takes a text from the number
            row = facts.account_row(conn, ev.account)
            assert row is not None
            handle_inbound(
                conn,
                runner.decider,
                runner.cipher,
                runner.cipher.decrypt(row.phone_enc) or "",
                ev.data["body"],
                ev.at,
                message_sid="SM" + hashlib.md5(repr(ev).encode()).hexdigest(),
            )
        elif ev.type == "opt_out":  # as the REST API records one
            row = facts.account_row(conn, ev.account)
            assert row is not None
            facts.opt_out_account(conn, row, ev.data["channel"], source="api", at=ev.at)
        elif ev.type == "plan":
            facts.record_plan(
                conn,
                account_id=ev.account,
                created_at=ev.at,
                instalments=[(i["due"], i["amount"]) for i in ev.data["instalments"]],
            )
        else:
            facts.record_event(
                conn, account_id=ev.account, type_=ev.type, at=ev.at, channel=ev.data.get("channel")
            )


def test_ticks_with_promises_payments_and_events(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 24)
    a, b, c, d, e = (x.account_id for x in accounts[:5])
    events = [
        event(
            "2026-03-09T16:00:00Z", a, "promise", amount=Decimal("50.00"), due=date(2026, 3, 12)
        ),  # broken: nothing paid
        event("2026-03-09T17:00:00Z", b, "promise", amount=Decimal("40.00"), due=date(2026, 3, 13)),
        event("2026-03-10T15:30:00Z", b, "payment", amount=Decimal("40.00")),  # kept
        event("2026-03-10T16:00:00Z", c, "conversation", channel="voice"),
        event("2026-03-10T16:00:00Z", d, "dispute"),
        event("2026-03-12T16:00:00Z", d, "dispute_resolved"),
        event("2026-03-11T14:00:00Z", e, "payment", amount=accounts[4].balance),  # paid off
        event("2026-03-11T18:00:00Z", c, "cease"),
    ]
    events.sort(key=lambda x: x.at)
    scenario = Scenario(START, 6, config, ROOT / "templates", accounts, events)
    expected = [_key(r) for r in Simulation(scenario).run()]
    reasons = {r[5] for r in expected}
    assert {"promise_kept", "cease", "paid"} <= reasons, reasons
    steps = {r[2] for r in expected if r[4] == "sent"}
    assert {"thanks", "promise-broken"} <= steps, steps

    _assert_ticks_decide(runner, expected, events)


def test_payment_plans_recorded_in_the_database_decide_as_simulate(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """A plan recorded through ``facts`` (as the API records it): reminders two days before
    each instalment, thanks for each payment, collection held while it is kept, and back
    to collection once an instalment is missed; the plans' states written back. Without
    the shipped confirmations: a plan's confirming text counts against ``sms-weekly`` (3
    a week), which would hold back a reminder of these plans' close instalments."""
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 24, confirmations=False)
    kept, broken = (x.account_id for x in accounts[:2])
    events = [
        event(
            "2026-03-09T16:00:00Z",
            kept,
            "plan",
            instalments=[
                {"due": "2026-03-12", "amount": "30.00"},
                {"due": "2026-03-15", "amount": "30.00"},
            ],
        ),
        event(
            "2026-03-09T16:30:00Z",
            broken,
            "plan",
            instalments=[
                {"due": "2026-03-12", "amount": "25.00"},
                {"due": "2026-03-16", "amount": "25.00"},
            ],
        ),
        event("2026-03-12T03:00:00Z", kept, "payment", amount=Decimal("30.00")),
        event("2026-03-12T04:00:00Z", broken, "payment", amount=Decimal("25.00")),
        event("2026-03-15T03:00:00Z", kept, "payment", amount=Decimal("30.00")),
    ]  # ``broken`` never pays its second instalment; both are in China (UTC+8)
    scenario = Scenario(START, 10, config, ROOT / "templates", accounts, events)
    expected = [_key(r) for r in Simulation(scenario).run()]
    reminders = sorted(
        (r[1], r[0].date()) for r in expected if r[2] == "instalment-reminder" and r[4] == "sent"
    )
    # one before each instalment (hours and limits may hold one a day), none after
    assert (
        [d for a, d in reminders if a == kept][0]
        < date(2026, 3, 12)
        < [d for a, d in reminders if a == kept][1]
        < date(2026, 3, 15)
    ), reminders
    assert (
        [d for a, d in reminders if a == broken][0]
        < date(2026, 3, 12)
        < [d for a, d in reminders if a == broken][1]
        < date(2026, 3, 16)
    ), reminders
    assert len(reminders) == 4, reminders
    assert {r[1] for r in expected if r[2] == "thanks" and r[4] == "sent"} >= {kept, broken}

    _assert_ticks_decide(runner, expected, events)

    end = START + timedelta(days=10)
    runner.plan_accounts([kept, broken], end)
    with engine.connect() as conn:
        shown = {
            a: account_timeline(conn, runner.cipher, a, today=end.date()) for a in (kept, broken)
        }
    kept_shown, broken_shown = shown[kept], shown[broken]
    assert kept_shown is not None and broken_shown is not None
    assert [p["state"] for p in kept_shown["plans"]] == ["completed"]
    assert [i["state"] for i in kept_shown["plans"][0]["instalments"]] == ["paid", "paid"]
    assert [p["state"] for p in broken_shown["plans"]] == ["broken"]
    assert [(i["paid"], i["state"]) for i in broken_shown["plans"][0]["instalments"]] == [
        ("25.00", "paid"),
        ("0.00", "missed"),
    ]


def test_three_weeks_of_sample_events_decide_as_simulate(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """The sample portfolio's mix of events (promises kept and broken, payments, plans,
    STOPs and their confirmations, disputes, conversations, ceases) recorded as the
    daemon's inputs record them, ticked over three weeks: every decision is the one
    ``simulate`` makes."""
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 120)
    days = 21
    end = START + timedelta(days=days)
    events = [
        event(e.at.isoformat(), e.account, e.type, **e.data)
        for e in generate_events(accounts, start=START, days=days)
        if e.at < end
    ]
    assert {"promise", "payment", "plan", "inbound_sms", "dispute", "conversation", "cease"} <= {
        e.type for e in events
    }
    scenario = Scenario(START, days, config, ROOT / "templates", accounts, events)
    expected = [_key(r) for r in Simulation(scenario).run()]
    _assert_ticks_decide(runner, expected, events)


def test_a_stop_or_an_opt_out_reaches_every_debtor_at_the_number(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """Two debtors reached at one number (a shared family phone): a STOP from it stops
    texts to both, and a voice opt-out asked on one account stops calls to the other; in
    simulate as in the daemon."""
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 12)
    us = [a for a in accounts if a.country == "US" and a.phone]
    first, second = us[0], next(a for a in us if a.debtor_id != us[0].debtor_id)
    second.phone = first.phone  # the same number, another debtor
    csv = tmp_path / "shared.csv"
    write_csv(accounts, csv)
    import_accounts(engine, csv, runner.cipher)
    events = [
        event("2026-03-09T20:00:00Z", first.account_id, "inbound_sms", body="STOP"),
        event("2026-03-09T20:05:00Z", second.account_id, "opt_out", channel="voice"),
    ]
    scenario = Scenario(START, 7, config, ROOT / "templates", accounts, events)
    expected = [_key(r) for r in Simulation(scenario).run()]
    after = [r for r in expected if r[0] > events[0].at and r[1] == second.account_id]
    assert ("sms", "suppressed", "opted_out") in {(r[3], r[4], r[5]) for r in after}, after
    assert not [r for r in after if r[3] in ("sms", "voice") and r[4] == "sent"], after
    _assert_ticks_decide(runner, expected, events)


_KINDS = (
    "promise",
    "payment",
    "STOP",
    "START",
    "HELP",
    "dispute",
    "dispute_resolved",
    "complaint",
    "conversation",
    "cease",
    "plan",
    "opt_out",
)


def _random_events(accounts: list[Any], seed: int, days: int) -> list[Any]:
    """Up to four events an account, of every kind the daemon takes in, at any minute."""
    rng = random.Random(seed)
    out = []
    for a in accounts:
        for _ in range(rng.randint(0, 4)):
            at = START + timedelta(minutes=rng.randint(0, days * 24 * 60 - 1))
            kind, iso, aid = rng.choice(_KINDS), at.isoformat(), a.account_id
            if kind == "promise":
                out.append(
                    event(
                        iso,
                        aid,
                        kind,
                        amount=(a.balance / 4).quantize(Decimal("0.01")),
                        due=(at + timedelta(days=rng.randint(1, 6))).date().isoformat(),
                    )
                )
            elif kind == "payment":
                share = a.balance / rng.choice([1, 3, 5])
                out.append(event(iso, aid, kind, amount=share.quantize(Decimal("0.01"))))
            elif kind in ("STOP", "START", "HELP"):
                out.append(event(iso, aid, "inbound_sms", body=kind))
            elif kind == "plan":
                first = (at + timedelta(days=2)).date()
                out.append(
                    event(
                        iso,
                        aid,
                        kind,
                        instalments=[
                            {"due": (first + timedelta(days=4 * k)).isoformat(), "amount": "20.00"}
                            for k in range(3)
                        ],
                    )
                )
            elif kind == "opt_out":
                out.append(
                    event(iso, aid, kind, channel=rng.choice(["sms", "voice", "email", "letter"]))
                )
            elif kind in ("conversation", "complaint"):
                out.append(event(iso, aid, kind, channel=rng.choice(["voice", "sms"])))
            else:
                out.append(event(iso, aid, kind))
    return sorted(out, key=lambda e: (e.at, e.account))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_event_streams_decide_as_simulate(
    db_url: str, data_keys: str, tmp_path: Path, seed: int
) -> None:
    """Every kind of event the daemon takes in (promises, payments, plans, STOP, START and
    HELP texts, opt-outs of each channel, disputes and their resolution, complaints,
    conversations, ceases), at random minutes over two weeks: the daemon decides what
    ``simulate`` decides."""
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 60)
    events = _random_events(accounts, seed, 14)
    scenario = Scenario(START, 14, config, ROOT / "templates", accounts, events)
    expected = [_key(r) for r in Simulation(scenario).run()]
    assert {"opted_out", "disputed", "cease", "promise_pending"} <= {str(r[5]) for r in expected}, (
        "too few kinds of decision: the test proves little"
    )
    _assert_ticks_decide(runner, expected, events)


def test_a_batch_is_recorded_field_for_field(db_url: str, data_keys: str, tmp_path: Path) -> None:
    """What recording a sent batch writes (on PostgreSQL one statement, each column an
    array) is every field of each decision record; each send takes its status and
    provider id, each occurrence its state and one more attempt; a transient failure is
    due again at its ``until``."""
    _, _, engine, runner = _setup(db_url, data_keys, tmp_path, 100)
    instant = START + timedelta(hours=15)
    runner.plan(instant)
    occ, sends, decisions = table_of(OccurrenceRow), table_of(Send), table_of(Decision)
    with engine.connect() as conn:
        due = conn.execute(
            sa.select(occ.c.account_id, occ.c.step_id, occ.c.occurrence_key)
            .where(occ.c.next_attempt_at <= instant, occ.c.channel == "sms")
            .order_by(occ.c.id)
        ).all()
    assert len(due) >= 6, "too few texts due: the test proves nothing"
    channel = runner.decider.adapters["sms"]
    assert isinstance(channel, SimulatedChannel)
    ids = [message_id_for(*row) for row in due]
    channel.fail(ids[0], TransientChannelError("429"), times=1)
    channel.fail(ids[1], AmbiguousSendError("timeout"))
    channel.fail(ids[2], PermanentChannelError("invalid number"))
    records = runner.dispatch(instant, keep_records=True).records
    kinds = Counter(str(r.decision) for r in records)
    assert kinds["sent"] >= 3 and kinds["ambiguous"] == 1 and kinds["failed"] == 1
    assert kinds["deferred"] >= 1  # the transient failure, due again later
    with engine.connect() as conn:
        rows = conn.execute(sa.select(decisions)).all()
        occurrences = {r.id: r for r in conn.execute(sa.select(occ))}
        by_message = {r.message_id: r for r in conn.execute(sa.select(sends))}
    columns = [c for c in decisions.c.keys() if c not in ("id", "occurrence_id")]
    assert sorted((tuple(getattr(r, c) for c in columns) for r in rows), key=repr) == sorted(
        (tuple(decision_values(r)[c] for c in columns) for r in records), key=repr
    )
    for row in rows:
        owner = occurrences[row.occurrence_id]
        assert (owner.account_id, owner.step_id) == (row.account_id, row.step)
        if row.message_id is None:
            continue
        send = by_message[row.message_id]
        if row.decision == "deferred":  # a transient failure: failed now, tried again then
            assert send.status == "failed" and owner.next_attempt_at == row.until
            assert owner.state == "deferred" and owner.attempts == 1
        else:
            assert send.status == send_status(row.decision) and owner.state == row.decision
            assert owner.attempts == 1 and owner.lease_until is None
        assert send.provider_id is not None or row.decision != "sent"


def test_a_claimed_occurrence_is_not_sent_twice(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    _, _, engine, runner = _setup(db_url, data_keys, tmp_path, 20)
    instant = START + timedelta(hours=10)
    runner.plan(instant)
    occ = table_of(OccurrenceRow)
    with engine.begin() as conn:  # another worker claimed one and crashed mid-send
        first = conn.execute(
            sa.select(occ.c.id).where(occ.c.next_attempt_at <= instant).order_by(occ.c.id).limit(1)
        ).scalar_one()
        conn.execute(occ.update().where(occ.c.id == first).values(state="sending"))
    runner.dispatch(instant)
    with engine.connect() as conn:
        state = conn.execute(sa.select(occ.c.state).where(occ.c.id == first)).scalar_one()
        decided = conn.execute(
            sa.select(sa.func.count())
            .select_from(table_of(Decision))
            .where(table_of(Decision).c.occurrence_id == first)
        ).scalar_one()
    assert state == "sending" and decided == 0


def test_a_send_already_recorded_is_never_sent_again(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """An occurrence due again whose send row did not fail (it went out, or may have):
    its batch is refused whole, before any adapter call."""
    _, _, engine, runner = _setup(db_url, data_keys, tmp_path, 20)
    instant = START + timedelta(hours=10)
    runner.plan(instant)
    runner.dispatch(instant)
    channel = next(iter(runner.decider.adapters.values()))
    assert isinstance(channel, SimulatedChannel)
    sent_before = len(channel.sent)
    occ, send = table_of(OccurrenceRow), table_of(Send)
    with engine.begin() as conn:  # made due again, its send row left sent (long ago, so
        # that no limit counts it and the gate lets it go)
        first = conn.execute(
            sa.select(occ.c.id).where(occ.c.state == "sent").order_by(occ.c.id).limit(1)
        ).scalar_one()
        conn.execute(
            occ.update()
            .where(occ.c.id == first)
            .values(state="pending", next_attempt_at=instant, lease_until=None)
        )
        conn.execute(
            send.update()
            .where(send.c.occurrence_id == first)
            .values(sent_at=instant - timedelta(days=400))
        )
    try:
        runner.dispatch(instant)
    except RuntimeError as exc:
        assert "already has a send" in str(exc)
    else:
        raise AssertionError("the batch was not refused")
    assert len(channel.sent) == sent_before
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(occ.c.state).where(occ.c.id == first)).scalar_one() == "pending"
        )


class _OptedOutAtTwilio(SimulatedChannel):
    """Twilio's reply for a recipient who texted STOP to our number at Twilio: 21610."""

    refused: list[str]

    def send(self, message: OutboundMessage) -> SendResult:
        from twilio.base.exceptions import TwilioRestException

        from channels.twilio.sms import twilio_error

        self.refused.append(message.account_id)
        raise twilio_error(TwilioRestException(400, "/Messages.json", "unsubscribed", 21610))


def test_a_provider_opt_out_is_recorded_and_stops_further_texts(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 40)
    refusing = _OptedOutAtTwilio()
    refusing.refused = []
    runner.decider.adapters = {**runner.decider.adapters, "sms": refusing}
    for day in range(3):
        runner.tick(START + timedelta(days=day, hours=10))
    refused = refusing.refused
    assert refused, "no SMS was attempted: the test proves nothing"
    optouts = table_of(OptOut)
    decisions = table_of(Decision)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(optouts)).all()
        assert {r.account_id for r in rows} == set(refused)
        assert {(r.channel, r.source) for r in rows} == {("sms", "provider")}
        assert all(r.contact_index for r in rows)
        failed = conn.execute(
            sa.select(decisions).where(
                decisions.c.channel == "sms", decisions.c.decision == "failed"
            )
        ).all()
    # Each account was refused once: after that the opt-out suppresses its texts.
    assert len(failed) == len(refused) == len(set(refused))


class _ReportsBeforeReturning(SimulatedChannel):
    """A provider whose delivery report reaches our webhook before its API call returns
    (the runner settles its batch after that): the report must not be overwritten."""

    engine: sa.Engine

    def send(self, message: OutboundMessage) -> SendResult:
        from channels.base import DeliveryStatus
        from orchestrator.store import facts

        result = super().send(message)
        with self.engine.begin() as conn:
            facts.record_delivery(
                conn,
                provider_id=result.provider_id,
                message_id=message.message_id,
                status=DeliveryStatus.delivered,
                event_key=f"early:{message.message_id}",
                at=START + timedelta(hours=10),
            )
        return result


def test_an_early_delivery_report_is_not_overwritten_by_the_batch(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 20)
    early = _ReportsBeforeReturning()
    early.engine = engine
    runner.decider.adapters = {**runner.decider.adapters, "sms": early}
    for day in range(3):
        runner.tick(START + timedelta(days=day, hours=10))
    sends = table_of(Send)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sends.c.status, sends.c.provider_id).where(sends.c.channel == "sms")
        ).all()
    assert rows, "no SMS was sent: the test proves nothing"
    assert {r.status for r in rows} == {"delivered"}
    assert all(r.provider_id for r in rows)


class _Slow(SimulatedChannel):
    """A provider that takes ``seconds`` to answer each message, like a real API."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def send(self, message: OutboundMessage) -> SendResult:
        import time

        time.sleep(self.seconds)
        return super().send(message)


def test_batches_hold_about_a_quarter_second_of_sends(
    db_url: str, data_keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash leaves one batch ambiguous, so a batch is sized by the time its sends take:
    small for a slow provider, up to ``send_batch`` for a fast one."""
    from orchestrator.dispatch import runner as runner_module

    _, _, _, runner = _setup(db_url, data_keys, tmp_path, 120)
    runner.batch, runner.send_batch = 200, 30
    sizes: list[int] = []
    real = runner._send_batch

    def record(conn: sa.Connection, batch: Sequence[sa.Row[Any]], now: datetime) -> Any:
        sizes.append(len(batch))
        return real(conn, batch, now)

    monkeypatch.setattr(runner, "_send_batch", record)
    by_label = {}
    for day, (label, adapter) in enumerate((("slow", _Slow(0.06)), ("fast", SimulatedChannel()))):
        runner.decider.adapters = {c: adapter for c in runner.decider.adapters}
        sizes.clear()
        runner.tick(START + timedelta(days=day, hours=15))
        assert len(adapter.sent) > 20, "too few sends to see the batches: proves nothing"
        by_label[label] = list(sizes)
    assert by_label["slow"][0] == runner_module.FIRST_BATCH  # nothing measured yet
    assert max(by_label["slow"][1:]) <= int(runner_module.SEND_WINDOW / 0.06) + 1
    assert max(by_label["fast"]) == 30  # the cap, once the pace is known


class _Syncing(SimulatedChannel):
    """A provider that makes sends durable a batch at a time, up to a mark (as the outbox
    does: on PostgreSQL a batch is synced and recorded while the next one is sent)."""

    def __init__(self, fail_sync: bool = False, engine: sa.Engine | None = None) -> None:
        super().__init__()
        self.fail_sync = fail_sync  # not `fail`: SimulatedChannel.fail fails sends
        self.engine = engine
        self.calls: list[int] = []  # sends made durable by each sync (its mark)
        self.recorded: list[int] = []  # sends the database had recorded sent then

    def mark(self) -> int:
        return len(self.sent)

    def sync(self, upto: int | None = None) -> None:
        self.calls.append(len(self.sent) if upto is None else upto)
        if self.engine is not None:
            with self.engine.connect() as conn:
                self.recorded.append(
                    conn.execute(
                        sa.select(sa.func.count())
                        .select_from(table_of(Send))
                        .where(table_of(Send).c.status == "sent", table_of(Send).c.channel == "sms")
                    ).scalar_one()
                )
        if self.fail_sync:
            raise OSError("disk gone")


def test_sends_are_synced_once_per_batch_before_being_recorded_sent(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 60)
    runner.send_batch = 4
    syncing = _Syncing(engine=engine)
    runner.decider.adapters = {**runner.decider.adapters, "sms": syncing}
    runner.tick(START + timedelta(hours=15))
    sent = len(syncing.sent)
    assert sent > 4, "too few texts to fill two batches: the test proves nothing"
    assert syncing.calls[-1] == sent  # the last batch was synced too
    batches = [b - a for a, b in zip([0, *syncing.calls], syncing.calls, strict=False)]
    assert all(0 < n <= 4 for n in batches)
    # each batch was synced before it was recorded sent, and after every batch before it
    assert syncing.recorded == [0, *syncing.calls[:-1]]
    with engine.connect() as conn:
        statuses = (
            conn.execute(
                sa.select(table_of(Send).c.status).where(table_of(Send).c.channel == "sms")
            )
            .scalars()
            .all()
        )
    assert len(statuses) == sent and set(statuses) == {"sent"}


def test_a_failed_sync_leaves_the_batch_ambiguous(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 30)
    failing = _Syncing(fail_sync=True)
    runner.decider.adapters = {**runner.decider.adapters, "sms": failing}
    runner.tick(START + timedelta(hours=15))
    assert failing.sent, "no SMS was sent: the test proves nothing"
    decisions, sends = table_of(Decision), table_of(Send)
    with engine.connect() as conn:
        sms = conn.execute(
            sa.select(decisions.c.decision, decisions.c.reason).where(decisions.c.channel == "sms")
        ).all()
        statuses = (
            conn.execute(sa.select(sends.c.status).where(sends.c.channel == "sms")).scalars().all()
        )
        others = (
            conn.execute(
                sa.select(decisions.c.decision).where(
                    decisions.c.channel != "sms", decisions.c.decision == "sent"
                )
            )
            .scalars()
            .all()
        )
    assert {(d, r) for d, r in sms if d != "deferred"} == {("ambiguous", "provider_error")}
    assert len(statuses) == len(failing.sent) and set(statuses) == {"ambiguous"}
    assert others, "other channels (no sync) are recorded sent as usual"


def test_a_batch_that_could_not_be_recorded_is_never_sent_again(
    db_url: str, data_keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording a sent batch fails (on PostgreSQL that happens in the recorder's thread,
    while the next batch goes out): dispatch stops with the error, the batch stays
    ``sending``, the next start records it ambiguous, and the next tick sends it no
    more."""
    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 60)
    runner.send_batch = 4
    channel = runner.decider.adapters["sms"]
    assert isinstance(channel, SimulatedChannel)
    real = runner.connector.settled
    calls = []

    def failing(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database gone")
        real(*args, **kwargs)

    monkeypatch.setattr(runner.connector, "settled", failing)
    instant = START + timedelta(hours=15)
    with pytest.raises(RuntimeError, match="database gone"):
        runner.tick(instant)
    handed = len(channel.sent)
    assert handed > 4, "the failure came before a second batch: the test proves nothing"
    monkeypatch.undo()
    sends = table_of(Send)
    with engine.connect() as conn:
        stuck = set(
            conn.execute(sa.select(sends.c.message_id).where(sends.c.status == "sending")).scalars()
        )
    assert stuck and stuck <= {m.message_id for m in channel.sent}
    assert runner.recover(instant) == len(stuck)
    runner.tick(instant)
    again = Counter(m.message_id for m in channel.sent)
    assert all(again[m] == 1 for m in stuck)  # never handed over twice
    with engine.connect() as conn:
        states = dict(
            conn.execute(
                sa.select(sends.c.message_id, sends.c.status).where(sends.c.message_id.in_(stuck))
            ).all()
        )
    assert set(states.values()) == {"ambiguous"}


def _occurrences(engine: sa.Engine) -> list[tuple[Any, ...]]:
    occ = table_of(OccurrenceRow)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(occ.c.account_id, occ.c.step_id, occ.c.occurrence_key, occ.c.planned_at)
        ).all()
    return sorted(tuple(r) for r in rows)


def _reference_plan(
    db_url: str, data_keys: str, tmp_path: Path, n: int, now: datetime
) -> list[tuple[Any, ...]]:
    """What one worker plans for the same accounts, on a database of its own."""
    import uuid

    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'reference.db'}"
    else:
        url = db_url.rsplit("/", 1)[0] + f"/outreach_ref_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(
            db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"'))
        admin.dispose()
    (tmp_path / "ref").mkdir()
    _, _, engine, runner = _setup(url, data_keys, tmp_path / "ref", n)
    runner.plan(now)
    got = _occurrences(engine)
    engine.dispose()
    if not url.startswith("sqlite"):
        admin = sa.create_engine(
            db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()
    return got


@contextmanager
def _partition_locks(url: str, parts: Iterable[int]) -> Iterator[None]:
    """Another worker's session holding these partitions until the block ends."""
    other = db.make_engine(url)
    try:
        with other.connect() as holder:
            for part in parts:
                held = holder.execute(sa.text(f"SELECT pg_try_advisory_lock(7304565, {part})"))
                assert held.scalar()
            holder.commit()
            yield
    finally:
        other.dispose()  # the session ends: its locks go with it


def test_workers_plan_partitions_apart_on_postgresql(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """Accounts are planned in partitions by debtor: a partition another worker holds is
    left to it; once free, the next round plans it; together, what one worker plans."""
    from orchestrator.dispatch.postgres import PARTITION_OF_ACCOUNT, PARTITIONS

    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one worker")
    n = 60
    now = START + timedelta(hours=15)
    expected = _reference_plan(db_url, data_keys, tmp_path, n, now)
    _, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, n)
    held = range(0, PARTITIONS, 2)  # every other partition, held by another worker
    with _partition_locks(db_url, held):
        first = runner.plan(now)
    with engine.connect() as conn:
        in_held = {
            r.account_id
            for r in conn.execute(
                sa.select(table_of(AccountRow).c.account_id).where(
                    PARTITION_OF_ACCOUNT.in_(list(held))
                )
            )
        }
    planned_now = {o[0] for o in _occurrences(engine)}
    assert first > 0 and planned_now and not planned_now & in_held  # none of the held ones
    second = runner.plan(now)  # the other worker's session ended: its partitions are free
    assert second > 0 and first + second == len(expected)
    assert _occurrences(engine) == expected
    assert runner.plan(now) == 0  # planned, nothing new
    # every partition held elsewhere: the round is skipped
    with _partition_locks(db_url, range(PARTITIONS)):
        assert runner.plan(now) == 0 and runner.skipped_plans == 1
    engine.dispose()


def test_a_partition_stays_held_until_its_pages_are_written(
    db_url: str, data_keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next partition is planned while the last one's pages are still being written
    (a thread of their own): the last one is let go only once they are, so no other
    worker takes a partition whose pages are not all in."""
    from orchestrator.dispatch import planning
    from orchestrator.dispatch.postgres import PARTITION_OF_ACCOUNT

    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one worker")
    now = START + timedelta(hours=15)
    _, _, engine, runner = _setup(db_url, data_keys, tmp_path, 120)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table_of(AccountRow).c.account_id, PARTITION_OF_ACCOUNT))
        part_of = {account_id: part for account_id, part in rows}
    other = db.make_engine(db_url)
    free_while_written: list[int] = []
    pages = 0
    real = planning.Planning._write_page

    def slow_write(self: Any, page: Any) -> int:
        nonlocal pages
        pages += 1
        time.sleep(0.05)  # the planner is on to the next page, or the next partition
        parts = {part_of[a.account_id] for a in page.accounts}
        with other.connect() as probe:  # can another worker take the page's partition?
            for part in parts:
                if probe.execute(sa.text(f"SELECT pg_try_advisory_lock(7304565, {part})")).scalar():
                    free_while_written.append(part)
                    probe.execute(sa.text(f"SELECT pg_advisory_unlock(7304565, {part})"))
            probe.commit()
        return real(self, page)

    monkeypatch.setattr(planning.Planning, "_write_page", slow_write)
    assert runner.plan(now) > 0
    assert pages > 10 and free_while_written == []
    with other.connect() as probe:  # and every partition is let go at the end
        assert (
            probe.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar()
            == 0
        )
    other.dispose()
    engine.dispose()


def test_two_workers_plan_what_one_plans(db_url: str, data_keys: str, tmp_path: Path) -> None:
    """Two workers planning the same round at once (threads, each with its own
    connections) plan exactly what one worker plans: every occurrence once."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one worker")
    n = 120
    now = START + timedelta(hours=15)
    expected = _reference_plan(db_url, data_keys, tmp_path, n, now)
    config, _, engine, first = _setup(db_url, data_keys, tmp_path, n)
    second = _second_runner(db_url, data_keys, config, "w2")
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda r=r: counts.append(r.plan(now))) for r in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(counts) == len(expected) and all(c > 0 for c in counts), counts
    assert _occurrences(engine) == expected
    engine.dispose()
    second.db.dispose()


def _second_runner(
    db_url: str, data_keys: str, config: Config, worker: str, batch: int = 7
) -> Runner:
    from channels.simulated import SimulatedChannel
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.simulation.simulate import SIMULATION_PUBLIC_URL, SIMULATION_SECRET

    channel = SimulatedChannel()
    return Runner(
        db.make_engine(db_url),
        config,
        TemplateRenderer(ROOT / "templates"),
        {c: channel for c in config.channels},
        DataCipher([data_keys]),
        public_url=SIMULATION_PUBLIC_URL,
        secret=SIMULATION_SECRET,
        not_before=START,
        batch=batch,
        worker=worker,
    )


_KILLED_PLANNER = """
import os, sys
from datetime import datetime
sys.path.insert(0, {tests!r})
from test_runner import START, _second_runner
from orchestrator.config.loading import load_config
from orchestrator.dispatch import planning
config = load_config({config!r}, {templates!r})
runner = _second_runner({url!r}, {keys!r}, config, "doomed", batch=1)  # a page an account
pages = 0
real = planning.Planning._write_page
def dying(self, page):
    global pages
    done = real(self, page)
    pages += 1
    if pages == 3:
        os.kill(os.getpid(), 9)  # killed mid-round, its partition half planned
    return done
planning.Planning._write_page = dying
runner.plan(datetime.fromisoformat({now!r}))
"""


def test_a_worker_killed_mid_round_leaves_its_partition_to_another(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """A planner killed (SIGKILL) in the middle of a partition: its lock goes with its
    connection, the next worker plans the rest, and no occurrence is planned twice or
    missing."""
    import subprocess
    import sys

    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one worker")
    n = 120
    now = START + timedelta(hours=15)
    expected = _reference_plan(db_url, data_keys, tmp_path, n, now)
    _, _, engine, runner = _setup(db_url, data_keys, tmp_path, n)
    script = _KILLED_PLANNER.format(
        tests=str(ROOT / "tests"),
        config=str(ROOT / "config"),
        templates=str(ROOT / "templates"),
        url=db_url,
        keys=data_keys,
        now=now.isoformat(),
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    partly = _occurrences(engine)
    assert 0 < len(partly) < len(expected)  # it had planned some, not all
    assert runner.plan(now) == len(expected) - len(partly)
    assert _occurrences(engine) == expected
    engine.dispose()


def test_planning_replays_only_accounts_whose_plan_can_change(
    db_url: str, data_keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round replays the accounts due (next local day, deadline, dated fact) or changed
    since (``facts.replan``), not the whole portfolio; another planning configuration
    replays every account; a change made while a planner held an account keeps it due."""
    from orchestrator.dispatch import baddata as runner_module

    config, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 30)
    replayed: list[str] = []
    from orchestrator.store.replay import Replayed
    from orchestrator.store.replay import replay as real

    def counting(row: sa.Row[Any], *args: Any, **kwargs: Any) -> Replayed:
        replayed.append(row.account_id)
        return real(row, *args, **kwargs)

    monkeypatch.setattr(runner_module, "replay", counting)  # the name the runner calls
    try:
        instant = START + timedelta(hours=10)
        runner.plan(instant)
        assert sorted(replayed) == sorted(a.account_id for a in accounts)  # first round: all
        replayed.clear()
        runner.plan(instant + timedelta(minutes=1))
        assert replayed == []  # nothing can have changed
        acct, plans = table_of(AccountRow), table_of(AccountPlan)
        with engine.connect() as conn:
            due = dict(conn.execute(sa.select(plans.c.account_id, plans.c.plan_due_at)).all())
        assert len(due) == len(accounts) and all(
            d is not None and instant < d <= instant + timedelta(days=1) for d in due.values()
        )
        target = accounts[3].account_id
        with engine.begin() as conn:
            facts.record_promise(
                conn,
                account_id=target,
                amount=Decimal("10.00"),
                due=date(2026, 3, 20),
                made_at=instant,
            )
        runner.plan(instant + timedelta(minutes=2))
        assert replayed == [target]
        replayed.clear()
        earliest = min(due.values())  # the next local midnight of some debtor
        runner.plan(earliest)
        assert replayed and all(due[a] <= earliest for a in replayed)
        replayed.clear()
        # a change while a planner held the account: it stays due
        with engine.connect() as conn:
            seq = conn.execute(
                sa.select(plans.c.plan_seq).where(plans.c.account_id == target)
            ).scalar_one()
        with engine.begin() as conn:
            facts.replan(conn, [target])
            runner.connector.planned(
                conn,
                [
                    PlannedAccount(
                        target,
                        seq,
                        instant + timedelta(days=1),
                        StageMark("not-written", instant, Decimal("1.00")),
                    )
                ],
            )
        with engine.connect() as conn:
            due_at, stage = conn.execute(
                sa.select(plans.c.plan_due_at, acct.c.stage)
                .join_from(acct, plans, plans.c.account_id == acct.c.account_id)
                .where(acct.c.account_id == target)
            ).one()
        assert due_at is None and stage != "not-written"
        runner.plan_digest = "another configuration"
        runner.plan(instant + timedelta(minutes=3))
        assert sorted(replayed) == sorted(a.account_id for a in accounts)
    finally:
        monkeypatch.undo()


def test_a_planning_round_decrypts_no_personal_field(
    db_url: str, data_keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning needs no name, phone, email or address (zones come from the stored
    phone zones): a round decrypts none. Dispatch does (the gate checks the number, the
    template greets by name), and what it sends is unchanged."""
    _, accounts, engine, runner = _setup(db_url, data_keys, tmp_path, 60)
    opened: list[str | None] = []
    decrypt = DataCipher.decrypt

    def counted(self: DataCipher, token: str | None) -> str | None:
        opened.append(token)
        return decrypt(self, token)

    monkeypatch.setattr(DataCipher, "decrypt", counted)
    now = START + timedelta(hours=15)
    assert runner.plan(now) > 0
    assert opened == []
    result = runner.dispatch(now + timedelta(hours=2))
    assert result.decisions.get("sent", 0) > 0 and opened
    sent = runner.sender.decider.adapters["sms"]
    assert isinstance(sent, SimulatedChannel)
    phones = {a.phone for a in accounts}
    assert sent.sent and all(m.to in phones for m in sent.sent if m.channel == "sms")
    engine.dispose()


def test_an_account_read_sealed_decrypts_a_field_when_read(data_keys: str) -> None:
    """``account_from_row``: by default every personal field is decrypted at once (a
    key that opens nothing fails there); ``sealed``, each when first read, once."""
    from cryptography.fernet import InvalidToken

    from orchestrator.store.accounts import account_from_row

    cipher = DataCipher([data_keys])
    plain = Account(
        account_id="A1",
        debtor_id="D1",
        name="Maria Lopez",
        currency="USD",
        balance=Decimal("10.00"),
        due_date=date(2026, 3, 1),
        phone="+12125550101",
        email="maria@example.com",
        address_line1="1 Main Street",
        city="New York",
        country="US",
        region="NY",
    )
    columns = {f: getattr(plain, f) for f in plain.__dataclass_fields__ if f != "phone_zones"}
    for field in ("name", "phone", "email", "address_line1", "address_line2"):
        columns[f"{field}_enc"] = cipher.encrypt(columns.pop(field))
    row = type("Row", (), {**columns, "phone_zones": None})()
    eager = account_from_row(row, cipher)
    assert eager == plain and eager.__dict__["_sealed"] == {}
    sealed = account_from_row(row, cipher, sealed=True)
    assert "phone" not in sealed.__dict__ and sealed.account_id == "A1"
    assert sealed.phone == "+12125550101" and sealed.__dict__["phone"] == "+12125550101"
    assert sealed == plain  # every field read: each decrypted once
    assert replace(sealed, balance=Decimal("5.00")).name == "Maria Lopez"
    stranger = DataCipher([Fernet.generate_key().decode()])
    with pytest.raises(InvalidToken):
        account_from_row(row, stranger)
    locked = account_from_row(row, stranger, sealed=True)
    assert locked.balance == Decimal("10.00")  # clear fields read without a key
    with pytest.raises(InvalidToken):
        _ = locked.name


def test_a_round_finds_its_accounts_a_page_of_ids_at_a_time(
    db_url: str, data_keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning finds the accounts due a page of ids at a time, then reads them a page
    at a time: with pages of 7 ids (and 5 accounts), a round plans what one page plans,
    and a round a minute later, nothing being due, reads no account at all."""
    from orchestrator.dispatch import planning

    n = 60
    now = START + timedelta(hours=15)
    expected = _reference_plan(db_url, data_keys, tmp_path, n, now)
    _, _, engine, runner = _setup(db_url, data_keys, tmp_path, n)
    runner.batch = 5
    monkeypatch.setattr(planning, "_ID_PAGE", 7)
    assert runner.plan(now) == len(expected)
    assert _occurrences(engine) == expected
    read: list[int] = []
    planned_page = runner.planning._planned_page

    def counted(conn: Any, rows: list[Any], at: datetime, **kw: Any) -> Any:
        read.append(len(rows))
        return planned_page(conn, rows, at, **kw)

    monkeypatch.setattr(runner.planning, "_planned_page", counted)
    assert runner.plan(now + timedelta(minutes=2)) == 0 and read == []
    # (and it would have seen them: the same round under another configuration reads all)
    runner.planning.plan(now + timedelta(minutes=3), digest="other", page=5)
    assert sum(read) == n
    engine.dispose()
