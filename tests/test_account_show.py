"""``outreach account show``: the JSON object of docs/cli.md and the masked human view."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner, Result

from orchestrator.cli import data
from orchestrator.core.crypto import DataCipher
from orchestrator.core.records import DecisionKind, DecisionRecord
from orchestrator.store import db, facts, tables
from orchestrator.store.accounts import record_decision
from orchestrator.store.timeline import account_timeline

KEYS = {
    "account_id", "debtor_id", "status", "stage", "dpd", "balance", "promises",
    "payments", "opt_outs", "decisions", "events",
}  # fmt: skip


def invoke(args: list[str], url: str, keys: str) -> Result:
    app = typer.Typer()
    data.register(app)
    env = {"OUTREACH_DATABASE_URL": url, "OUTREACH_DATA_KEYS": keys}
    return CliRunner().invoke(app, args, env=env)


def seed(url: str, keys: str, tmp_path: Path) -> None:
    db.upgrade(url)
    path = tmp_path / "a.csv"
    path.write_text(
        "account_id,name,phone,email,country,currency,balance,due_date\n"
        "A1,Jane Doe,+12125550100,jane.doe@example.com,US,USD,250.00,2026-02-20\n"
    )
    assert invoke(["import", "accounts", str(path)], url, keys).exit_code == 0
    cipher = DataCipher([keys])

    def t(hour: int) -> datetime:
        return datetime(2026, 3, 2, hour, tzinfo=UTC)

    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            send_t = tables.table_of(tables.Send)
            record_decision(
                conn,
                DecisionRecord(
                    time=t(15),
                    local_time="2026-03-02T10:00:00-05:00",
                    account="A1",
                    debtor="A1",
                    stage="M1",
                    step="m1-sms",
                    channel="sms",
                    kind="collection",
                    decision=DecisionKind.sent,
                    message_id="m1",
                    to="+12125550100",
                    text="hi",
                ),
            )
            record_decision(
                conn,
                DecisionRecord(
                    time=t(14),
                    local_time="2026-03-02T09:00:00-05:00",
                    account="A1",
                    debtor="A1",
                    stage="M1",
                    step="m1-sms",
                    channel="sms",
                    kind="collection",
                    decision=DecisionKind.deferred,
                    reason="quiet_hours",
                    until=t(15),
                ),
            )
            send_key = conn.execute(
                send_t.insert().values(
                    message_id="m1",
                    provider_id="SM1",
                    account_id="A1",
                    debtor_id="A1",
                    channel="sms",
                    status="delivered",
                    sent_at=t(15),
                    to_index=cipher.index("+12125550100"),
                )
            ).inserted_primary_key
            assert send_key is not None
            send_id = send_key[0]
            conn.execute(
                tables.table_of(tables.DeliveryEvent)
                .insert()
                .values(
                    provider_event_key="SM1:delivered",
                    send_id=send_id,
                    message_id="m1",
                    status="delivered",
                    time=t(16),
                    raw={"MessageStatus": "delivered"},
                )
            )
            conn.execute(
                tables.table_of(tables.Promise)
                .insert()
                .values(
                    account_id="A1",
                    amount=Decimal("100.00"),
                    due=date(2026, 3, 12),
                    made_at=t(17),
                    state="pending",
                )
            )
            conn.execute(
                tables.table_of(tables.OptOut)
                .insert()
                .values(
                    debtor_id="A1",
                    account_id=None,
                    channel="sms",
                    contact_index=cipher.index("+12125550100"),
                    created_at=t(18),
                )
            )
            conn.execute(
                tables.table_of(tables.AccountEvent)
                .insert()
                .values(account_id="A1", type="conversation", channel="voice", time=t(12))
            )
    finally:
        engine.dispose()


def test_json_has_exactly_the_contract_keys(db_url: str, data_keys: str, tmp_path: Path) -> None:
    seed(db_url, data_keys, tmp_path)
    result = invoke(["account", "show", "A1", "--json", "--today", "2026-03-02"], db_url, data_keys)
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert set(shown) == KEYS
    assert shown["dpd"] == 10 and shown["balance"] == "250.00" and shown["status"] == "open"
    assert shown["promises"] == [
        {
            "amount": "100.00",
            "due": "2026-03-12",
            "state": "pending",
            "made_at": "2026-03-02T17:00:00Z",
        }
    ]
    assert shown["opt_outs"] == ["sms"]
    assert [d["decision"] for d in shown["decisions"]] == ["deferred", "sent"]
    assert "text" not in shown["decisions"][0]
    assert shown["decisions"][1]["to"] == "+1 212 *** **00"
    assert shown["decisions"][0]["until"] == "2026-03-02T15:00:00Z"
    assert [e["type"] for e in shown["events"]] == [
        "conversation",
        "delivery",
        "promise",
        "opt_out",
    ]
    assert shown["events"][1] == {
        "time": "2026-03-02T16:00:00Z", "type": "delivery", "channel": "sms",
        "status": "delivered", "message_id": "m1",
    }  # fmt: skip


def test_human_view_masks_contacts(db_url: str, data_keys: str, tmp_path: Path) -> None:
    seed(db_url, data_keys, tmp_path)
    result = invoke(["account", "show", "A1"], db_url, data_keys)
    assert result.exit_code == 0, result.stderr
    assert "+1 212 *** **00" in result.stdout and "j***@example.com" in result.stdout
    assert "+12125550100" not in result.stdout and "Jane" not in result.stdout


def test_human_timeline_says_when_and_under_which_rule(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    seed(db_url, data_keys, tmp_path)
    cipher = DataCipher([data_keys])
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        timeline = account_timeline(conn, cipher, "A1", today=date(2026, 3, 2))
    engine.dispose()
    assert timeline is not None
    rows = data.timeline_rows(timeline)
    what = [r[2] for r in rows]
    # In time order, with the promise (amount, due, state) among the decisions and events.
    assert what == ["conversation", "deferred", "sent", "delivery", "promise", "opt_out"]
    sent = rows[2]
    assert sent[:5] == (
        "2026-03-02 15:00",
        "10:00-05:00",
        "sent",
        "sms",
        "M1 / m1-sms / collection",
    )
    assert "+1 212 *** **00" in sent[5] and sent[6] == "m1"
    assert rows[4][5] == "100.00 due 2026-03-12: pending"
    result = invoke(["account", "show", "A1"], db_url, data_keys)
    assert "m1-sms" in result.stdout and "quiet_hours" in result.stdout


def test_a_payment_plan_is_shown_with_its_instalments(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    seed(db_url, data_keys, tmp_path)
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        facts.record_plan(
            conn,
            account_id="A1",
            created_at=datetime(2026, 3, 2, 19, tzinfo=UTC),
            instalments=[
                (date(2026, 3, 20), Decimal("50.00")),
                (date(2026, 4, 20), Decimal("75.50")),
            ],
        )
    engine.dispose()
    result = invoke(["account", "show", "A1", "--json"], db_url, data_keys)
    shown = json.loads(result.stdout)
    assert set(shown) == KEYS | {"plans"}
    assert shown["plans"] == [
        {
            "created_at": "2026-03-02T19:00:00Z",
            "state": "active",
            "ended_at": None,
            "instalments": [
                {"due": "2026-03-20", "amount": "50.00", "paid": "0.00", "state": "pending"},
                {"due": "2026-04-20", "amount": "75.50", "paid": "0.00", "state": "pending"},
            ],
        }
    ]
    assert [e["type"] for e in shown["events"]][-1] == "plan"
    rows = data.timeline_rows(shown)
    assert rows[-1][2] == "plan" and rows[-1][5] == (
        "50.00 due 2026-03-20 (pending), 75.50 due 2026-04-20 (pending): active"
    )
    assert "75.50 due 2026-04-20" in invoke(["account", "show", "A1"], db_url, data_keys).stdout


def test_unknown_account_exits_2(db_url: str, data_keys: str) -> None:
    db.upgrade(db_url)
    result = invoke(["account", "show", "NOPE", "--json"], db_url, data_keys)
    assert result.exit_code == 2
    assert "NOPE" in result.stderr


def test_no_clear_contact_in_decision_table(db_url: str, data_keys: str, tmp_path: Path) -> None:
    seed(db_url, data_keys, tmp_path)
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            to_masked = tables.table_of(tables.Decision).c.to_masked
            rows = conn.execute(sa.select(to_masked)).scalars().all()
    finally:
        engine.dispose()
    assert "+12125550100" not in rows


def test_dpd_counts_in_the_debtors_own_day(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from orchestrator.content.preview import sample_account

    monkeypatch.setenv("OUTREACH_CONFIG", str(ROOT / "config"))
    monkeypatch.setenv("OUTREACH_TEMPLATES", str(ROOT / "templates"))
    evening_utc = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # already 2 March in Shanghai
    shanghai = replace(sample_account("zh-CN"), timezone="Asia/Shanghai")
    new_york = replace(sample_account("en-US"), timezone="America/New_York")
    assert data._local_today(shanghai, evening_utc) == date(2026, 3, 2)
    assert data._local_today(new_york, evening_utc) == date(2026, 3, 1)
    assert data._local_today(None, evening_utc) == date(2026, 3, 1)
