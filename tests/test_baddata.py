"""One account's bad data fails that account alone (SQLite and PostgreSQL).

Rows here are written straight into the tables, past every check at the edges, as rows
written before the checks existed or by hand in SQL would be: the daemon must record
``failed`` / ``bad_data`` for that account and plan and send every other one.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import ROOT, setup_db  # noqa: I001 - tests/support.py

from channels.registry import create_adapter
from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.dispatch.runner import Runner
from orchestrator.store import db, facts
from orchestrator.store.tables import Decision, OccurrenceRow, Send, table_of

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York
BAD = "A00002"
ACCOUNTS = [f"A{i:05d}" for i in range(5)]
GOOD = [a for a in ACCOUNTS if a != BAD]

CADENCES = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00"}
triggers:
  - {id: promise-reminder, on: promise_due, offset: -2d, at: "10:00", channel: sms,
     template: promise_reminder, kind: service}
  - {id: instalment-reminder, on: instalment_due, offset: -2d, at: "10:00", channel: sms,
     template: promise_reminder, kind: service}
  - {id: thanks, on: payment_received, channel: sms, template: payment_thanks, kind: service}
"""


def _runner(db_url: str, tmp_path: Path) -> Runner:
    env, _ = setup_db(db_url, tmp_path, len(ACCOUNTS), cadences=CADENCES)
    config = load_config(env["OUTREACH_CONFIG"], ROOT / "templates")
    adapters = {
        n: create_adapter(n, c, base_dir=tmp_path, clock=VirtualClock(T))
        for n, c in config.channels.items()
    }
    return Runner(
        db.make_engine(db_url),
        config,
        TemplateRenderer(ROOT / "templates"),
        adapters,
        DataCipher([env["OUTREACH_DATA_KEYS"]]),
        public_url="http://127.0.0.1:8000",
        secret="s",
    )


def _insert_bad(conn: sa.Connection, kind: str, account: str = BAD) -> None:
    """A fact the API would refuse, written as SQL would write it (no ``facts.replan``)."""
    if kind == "promise due 0001-01-01":
        facts.record_promise(
            conn,
            account_id=account,
            amount=Decimal("5.00"),
            due=date(1, 1, 1),
            made_at=T - timedelta(hours=1),
        )
    elif kind == "instalment due 9999-12-31":
        facts.record_plan(
            conn,
            account_id=account,
            created_at=T - timedelta(hours=1),
            instalments=[(date(9999, 12, 31), Decimal("5.00"))],
        )
    elif kind == "payment paid 0001-01-01":
        facts.record_payment(
            conn,
            account_id=account,
            payment_id="p-old",
            amount=Decimal("5"),
            currency=None,
            paid_at=datetime(1, 1, 1, tzinfo=UTC),
            source="sql",
            now=T,
        )
    else:  # a value the driver cannot read back: SQLite text, PostgreSQL's infinity
        conn.execute(
            sa.text(
                "INSERT INTO promise (account_id, amount, due, made_at, state) "
                "VALUES (:a, 5, 'infinity', :t, 'pending')"
            ),
            {"a": account, "t": (T - timedelta(hours=1)).replace(tzinfo=None)},
        )


def _decisions(runner: Runner, **where: Any) -> list[Any]:
    t = table_of(Decision)
    query = sa.select(t).order_by(t.c.id)
    for key, value in where.items():
        query = query.where(t.c[key] == value)
    with runner.db.connect() as conn:
        return list(conn.execute(query).all())


def _sent_accounts(runner: Runner, **where: Any) -> list[str]:
    return sorted(d.account_id for d in _decisions(runner, decision="sent", **where))


BAD_FACTS = [
    "promise due 0001-01-01",
    "instalment due 9999-12-31",
    "payment paid 0001-01-01",
    "unreadable promise due",
]


@pytest.mark.parametrize("kind", BAD_FACTS)
def test_a_bad_fact_fails_its_account_alone_and_once_a_day(
    db_url: str, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    runner = _runner(db_url, tmp_path)
    with runner.db.begin() as conn:
        _insert_bad(conn, kind)
    with caplog.at_level(logging.WARNING, logger="outreach.baddata"):
        result = runner.tick(T)
    assert result.decisions == {"sent": len(GOOD)}
    assert _sent_accounts(runner, step="daily-sms") == GOOD  # everyone else planned and sent
    failed = _decisions(runner, account_id=BAD)
    assert [(d.decision, d.reason, d.step, d.channel, d.kind, d.debtor_id) for d in failed] == [
        ("failed", "bad_data", "planning", None, None, "D00002")
    ]
    # the log's `extra` fields, as attributes of each record
    logged = [vars(r) for r in caplog.records if r.getMessage() == "account skipped: bad data"]
    assert [(r["account_id"], r["phase"]) for r in logged] == [(BAD, "plan")]
    assert logged[0]["error"] in ("OverflowError", "ValueError", "DataError")

    runner.tick(T + timedelta(hours=1))  # the next round: not tried again
    assert len(_decisions(runner, account_id=BAD)) == 1
    runner.tick(T + timedelta(days=1))  # the next day: tried again, once
    assert [d.reason for d in _decisions(runner, account_id=BAD)] == ["bad_data"] * 2
    assert len(_sent_accounts(runner, step="daily-sms")) == 2 * len(GOOD)


def test_an_account_gone_bad_after_planning_fails_only_its_occurrences(
    db_url: str, tmp_path: Path
) -> None:
    """Dispatch replays each account under its debtor's lock: one that fails there fails
    its own occurrence (settled, with its step and channel), and the batch it shares
    with the others goes out."""
    runner = _runner(db_url, tmp_path)
    assert runner.plan(T) == len(ACCOUNTS)
    with runner.db.begin() as conn:
        _insert_bad(conn, "instalment due 9999-12-31")
    result = runner.dispatch(T)
    assert result.decisions == {"sent": len(GOOD), "failed": 1}
    assert _sent_accounts(runner) == GOOD
    [failed] = _decisions(runner, account_id=BAD)
    assert (failed.decision, failed.reason, failed.step, failed.channel) == (
        "failed",
        "bad_data",
        "daily-sms",
        "sms",
    )
    occ, send = table_of(OccurrenceRow), table_of(Send)
    with runner.db.connect() as conn:
        assert (
            conn.execute(sa.select(occ.c.state).where(occ.c.account_id == BAD)).scalar_one()
            == "failed"
        )
        assert conn.execute(sa.select(send.c.status).where(send.c.account_id == BAD)).all() == []
    assert runner.dispatch(T + timedelta(minutes=5)).decisions == {}  # never tried again


def test_an_account_that_cannot_be_rendered_fails_alone(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value that breaks rendering (here the renderer's own error, as a date beyond
    what formatting handles would raise) fails that send, before anything is recorded
    ``sending`` (no send row, nothing in doubt), and not the batch: the others are sent
    and recorded sent."""
    runner = _runner(db_url, tmp_path)
    real = runner.decider.render

    def render(occ: Any, *args: Any, **kwargs: Any) -> Any:
        if occ.account_id == BAD:
            raise OverflowError("date value out of range")
        return real(occ, *args, **kwargs)

    monkeypatch.setattr(runner.decider, "render", render)
    result = runner.tick(T)
    assert result.decisions == {"sent": len(GOOD), "failed": 1}
    assert _sent_accounts(runner) == GOOD
    assert [(d.decision, d.reason) for d in _decisions(runner, account_id=BAD)] == [
        ("failed", "bad_data")
    ]
    send = table_of(Send)
    with runner.db.connect() as conn:
        statuses = dict(conn.execute(sa.select(send.c.account_id, send.c.status)).all())
    assert statuses == {a: "sent" for a in GOOD}


def test_run_once_with_a_promise_due_in_year_one(db_url: str, tmp_path: Path) -> None:
    """The real ``outreach run --once``: exit 0, the bad account ``failed``/``bad_data``,
    every other one planned and sent; one JSON log line names the account and the
    exception's type, with no personal data and no traceback."""
    env, outbox = setup_db(db_url, tmp_path, len(ACCOUNTS), cadences=CADENCES)
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO promise (account_id, amount, due, made_at, state) "
                "VALUES (:a, 5, '0001-01-01', :t, 'pending')"
            ),
            {"a": BAD, "t": (T - timedelta(hours=1)).replace(tzinfo=None)},
        )
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--once", "--now", T.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decisions"] == {"sent": len(GOOD)}
    sent = [
        json.loads(line)["account"] for line in (outbox / "journal.jsonl").read_text().splitlines()
    ]
    assert sorted(sent) == GOOD
    t = table_of(Decision)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.account_id, t.c.decision, t.c.reason)).all()
    engine.dispose()
    assert sorted(tuple(r) for r in rows) == sorted(
        [(a, "sent", None) for a in GOOD] + [(BAD, "failed", "bad_data")]
    )
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(x["account_id"], x["error"], x["phase"]) for x in logs] == [
        (BAD, "OverflowError", "plan")
    ]
    assert "Traceback" not in done.stderr and "Pat Doe" not in done.stderr
    assert "+1212" not in done.stderr
