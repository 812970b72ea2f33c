"""The operator's emergency pause: ``outreach pause``/``resume``, the API, and its effect
on the daemon's workers (SQLite and PostgreSQL; the four-worker race on PostgreSQL)."""

from __future__ import annotations

import getpass
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from support import ROOT, TEST_SECRET  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from channels.base import OutboundMessage, SendResult
from channels.simulated import SimulatedChannel
from orchestrator.cli import _register_all, app
from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.settings import Settings
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.dispatch.decider import PAUSE_RECHECK
from orchestrator.dispatch.runner import Runner
from orchestrator.ingest.importer import import_accounts
from orchestrator.store import db
from orchestrator.store.pauses import active_pauses, start_pause
from orchestrator.store.tables import AuditLog, Decision, OperatorPause, Send, table_of
from orchestrator.web.app import Server, create_app

IS_PG = os.environ.get("OUTREACH_TEST_DB", "sqlite") == "postgresql"
T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York
TOKEN = "api-token"

CADENCES = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00", expires: 3d}
      - {id: daily-email, channel: email, template: overdue, every: 1d, at: "10:00", expires: 3d}
"""
CREDITORS = """
creditors:
  acme: {name: Acme Consumer Finance, phone: "+18005550100", pay_url: "https://pay.example.com/{reference}"}
  beta: {name: Beta Lending, phone: "+18005550101", pay_url: "https://pay.example.com/{reference}"}
"""


def write_setup(
    tmp_path: Path, db_url: str, n: int, *, creditors: tuple[str, ...]
) -> dict[str, str]:
    """A config directory (sms and email every day at 10:00, creditors acme and beta), a
    migrated database holding ``n`` accounts (creditors in turn), and the environment of
    the command line on them."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "cadences.yaml").write_text(CADENCES)
    (config / "creditors.yaml").write_text(CREDITORS)
    (config / "policy.yaml").write_text(
        "timezone: {default: America/New_York, sources: [explicit, address, phone]}\n"
        "hours: {default: any}\nlimits: []\n"
    )
    outbox = tmp_path / "outbox"
    (config / "channels.yaml").write_text(
        f"sms: {{adapter: outbox, dir: '{outbox}'}}\nemail: {{adapter: outbox, dir: '{outbox}'}}\n"
    )
    lines = [
        "account_id,debtor_id,name,phone,email,city,region,country,currency,balance,"
        "due_date,creditor,reference,consent_sms,consent_email"
    ]
    for i in range(n):
        lines.append(
            f"A{i:05d},D{i:05d},Pat Doe,+1212{2000000 + i * 37:07d},pat{i}@example.com,"
            f"New York,NY,US,USD,100.00,2026-03-01,{creditors[i % len(creditors)]},R{i},true,true"
        )
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    keys = Fernet.generate_key().decode()
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    import_accounts(engine, tmp_path / "a.csv", DataCipher([keys]))
    engine.dispose()
    return {
        "OUTREACH_DATABASE_URL": db_url,
        "OUTREACH_DATA_KEYS": keys,
        "OUTREACH_SECRET_KEY": TEST_SECRET,
        "OUTREACH_CONFIG": str(config),
        "OUTREACH_TEMPLATES": str(ROOT / "templates"),
    }


class SlowChannel(SimulatedChannel):
    """The simulated channel, taking ``delay`` seconds a message (a provider's latency)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay

    def send(self, message: OutboundMessage) -> SendResult:
        if self.delay:
            time.sleep(self.delay)
        return super().send(message)


def make_runner(
    engine: sa.Engine, env: dict[str, str], *, worker: str = "w0", **options: Any
) -> Runner:
    config = load_config(env["OUTREACH_CONFIG"], ROOT / "templates")
    channel = options.pop("channel", None) or SimulatedChannel()
    return Runner(
        engine,
        config,
        TemplateRenderer(ROOT / "templates"),
        {c: channel for c in config.channels},
        DataCipher([env["OUTREACH_DATA_KEYS"]]),
        public_url="https://outreach.example.com",
        secret=TEST_SECRET,
        worker=worker,
        **options,
    )


def cli(env: dict[str, str], *args: str) -> Any:
    _register_all()
    return CliRunner().invoke(app, list(args), env=env)


def decisions(engine: sa.Engine) -> list[Any]:
    d = table_of(Decision)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(d).order_by(d.c.id)).all())


def count(engine: sa.Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table_of(model))).scalar_one()
        )


# --- the command line ----------------------------------------------------------------------


def test_pause_and_resume_round_trip_on_the_command_line(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 2, creditors=("acme",))
    first = cli(env, "pause", "--channel", "sms", "--reason", "wrong amount")
    assert first.exit_code == 0, first.output
    assert "paused #1 channel sms, every creditor" in first.stdout
    assert "wrong amount" in first.stdout and "paused now (1):" in first.stdout
    second = cli(env, "pause", "--creditor", "acme")
    assert second.exit_code == 0, second.output
    assert "paused now (2):" in second.stdout

    # With options, only the pause started with exactly those options ends.
    one = cli(env, "resume", "--channel", "sms")
    assert one.exit_code == 0, one.output
    assert "resumed #1 channel sms" in one.stdout
    assert "paused now (1):" in one.stdout and "#2 every channel, creditor acme" in one.stdout
    none = cli(env, "resume", "--channel", "email")
    assert none.exit_code == 0 and "no matching pause was in force" in none.stdout
    every = cli(env, "resume")
    assert every.exit_code == 0 and "resumed #2" in every.stdout
    assert "no pause in force" in every.stdout

    engine = db.make_engine(db_url)
    audit = table_of(AuditLog)
    with engine.connect() as conn:
        assert active_pauses(conn) == []
        rows = conn.execute(sa.select(audit).order_by(audit.c.id)).all()
    engine.dispose()
    trail = [(r.action, r.object_id) for r in rows if r.object_type == "operator_pause"]
    assert trail == [
        ("pause.start", "1"),
        ("pause.start", "2"),
        ("pause.end", "1"),
        ("pause.end", "2"),
    ]
    assert {r.actor for r in rows if r.object_type == "operator_pause"} == {getpass.getuser()}
    assert rows[-1].detail == {"channel": None, "creditor": "acme", "reason": None}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "--channel", "fax"], "--channel: error: unknown channel 'fax'"),
        (["pause", "--creditor", "nobody"], "--creditor: error: unknown creditor 'nobody'"),
        (["resume", "--channel", "voice"], "--channel: error: unknown channel 'voice'"),
        (["resume", "--creditor", "nobody"], "--creditor: error: unknown creditor 'nobody'"),
    ],
)
def test_an_unknown_channel_or_creditor_is_exit_2_and_pauses_nothing(
    db_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    result = cli(env, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    engine = db.make_engine(db_url)
    assert count(engine, OperatorPause) == 0
    engine.dispose()


# --- the daemon ----------------------------------------------------------------------------


def test_a_paused_channel_is_deferred_while_the_others_send(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 4, creditors=("acme",))
    engine = db.make_engine(db_url)
    runner = make_runner(engine, env)
    assert cli(env, "pause", "--channel", "sms").exit_code == 0

    runner.tick(T)
    made = decisions(engine)
    sms = [d for d in made if d.channel == "sms"]
    email = [d for d in made if d.channel == "email"]
    assert len(sms) == 4 and len(email) == 4
    assert {(d.decision, d.reason) for d in sms} == {("deferred", "paused_by_operator")}
    assert {d.decision for d in email} == {"sent"}
    assert all(d.until == T + PAUSE_RECHECK for d in sms)
    assert count(engine, Send) == 4  # the emails only: nothing of sms recorded sending

    # Still paused at the next check: deferred again, nothing sent.
    runner.tick(T + PAUSE_RECHECK)
    assert count(engine, Send) == 4
    assert sum(d.reason == "paused_by_operator" for d in decisions(engine)) == 8

    # Resumed: they go at their next attempt.
    assert cli(env, "resume").exit_code == 0
    runner.tick(T + 2 * PAUSE_RECHECK - timedelta(seconds=1))  # not yet due
    assert count(engine, Send) == 4
    runner.tick(T + 2 * PAUSE_RECHECK)
    made = decisions(engine)
    assert sorted(d.decision for d in made if d.channel == "sms")[-4:] == ["sent"] * 4
    assert count(engine, Send) == 8
    engine.dispose()


def test_a_creditor_pause_holds_back_only_its_accounts(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 6, creditors=("acme", "beta"))
    engine = db.make_engine(db_url)
    runner = make_runner(engine, env)
    assert cli(env, "pause", "--creditor", "beta", "--channel", "email").exit_code == 0
    assert cli(env, "pause", "--creditor", "acme").exit_code == 0
    runner.tick(T)
    creditor_of = {f"A{i:05d}": ("acme", "beta")[i % 2] for i in range(6)}
    got = {(creditor_of[d.account_id], d.channel, d.decision, d.reason) for d in decisions(engine)}
    assert got == {
        ("acme", "sms", "deferred", "paused_by_operator"),
        ("acme", "email", "deferred", "paused_by_operator"),
        ("beta", "sms", "sent", None),
        ("beta", "email", "deferred", "paused_by_operator"),
    }
    engine.dispose()


def test_a_pause_never_lets_through_what_the_gate_holds_back(db_url: str, tmp_path: Path) -> None:
    """An account paid off is suppressed with the gate's reason, pause or not."""
    env = write_setup(tmp_path, db_url, 2, creditors=("acme",))
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("update account set balance = 0 where account_id = 'A00000'"))
        start_pause(conn, channel=None, creditor=None, reason=None, actor="t", now=T)
    make_runner(engine, env).tick(T)
    got = {(d.account_id, d.decision, d.reason) for d in decisions(engine)}
    assert got == {
        ("A00000", "suppressed", "paid"),
        ("A00001", "deferred", "paused_by_operator"),
    }
    assert count(engine, Send) == 0
    engine.dispose()


# --- the API -------------------------------------------------------------------------------


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, sa.Engine, VirtualClock]]:
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    engine = db.make_engine(db_url)
    settings = Settings.from_env({**env, "OUTREACH_API_TOKENS": TOKEN})
    clock = VirtualClock(T)
    runner = make_runner(engine, env)
    server = Server(
        db=engine,
        config=runner.config,
        cipher=runner.cipher,
        settings=settings,
        clock=clock,
        runner=runner,
    )
    with TestClient(create_app(server), raise_server_exceptions=False) as client:
        yield client, engine, clock
    engine.dispose()


def test_pauses_through_the_api(api: tuple[TestClient, sa.Engine, VirtualClock]) -> None:
    client, engine, _ = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/v1/pauses").status_code == 401
    assert client.post("/api/v1/pauses", json={}).status_code == 401
    assert client.get("/api/v1/pauses", headers=auth).json() == {"pauses": []}

    made = client.post("/api/v1/pauses", json={"channel": "sms", "reason": "x"}, headers=auth)
    assert made.status_code == 201, made.text
    assert made.json() == {
        "id": 1,
        "channel": "sms",
        "creditor": None,
        "reason": "x",
        "actor": "api",
        "created_at": "2026-03-10T15:00:00Z",
    }
    everything = client.post("/api/v1/pauses", json={}, headers=auth)
    assert everything.status_code == 201 and everything.json()["channel"] is None
    listed = client.get("/api/v1/pauses", headers=auth).json()["pauses"]
    assert [p["id"] for p in listed] == [1, 2]

    ended = client.delete("/api/v1/pauses/1", headers=auth)
    assert ended.status_code == 200 and ended.json()["ended"] is True
    assert client.delete("/api/v1/pauses/1", headers=auth).status_code == 404
    assert [p["id"] for p in client.get("/api/v1/pauses", headers=auth).json()["pauses"]] == [2]

    audit = table_of(AuditLog)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit.c.actor, audit.c.action).where(audit.c.object_type == "operator_pause")
        ).all()
    assert sorted(rows) == [("api", "pause.end"), ("api", "pause.start"), ("api", "pause.start")]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/api/v1/pauses", {"channel": "fax"}, 422),
        ("post", "/api/v1/pauses", {"creditor": "nobody"}, 422),
        ("post", "/api/v1/pauses", {"channel": ""}, 422),
        ("post", "/api/v1/pauses", {"channel": 3}, 422),
        ("post", "/api/v1/pauses", {"reason": "a\x00b"}, 422),
        ("post", "/api/v1/pauses", {"reason": "r" * 501}, 422),
        ("post", "/api/v1/pauses", {"until": "tomorrow"}, 422),
        ("post", "/api/v1/pauses", [1, 2], 422),
        ("delete", "/api/v1/pauses/abc", None, 422),
        ("delete", "/api/v1/pauses/0", None, 422),
        ("delete", "/api/v1/pauses/99999999999999999999", None, 422),
        ("delete", "/api/v1/pauses/7", None, 404),
    ],
)
def test_bad_pause_requests_are_refused_with_a_reason(
    api: tuple[TestClient, sa.Engine, VirtualClock],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    client, engine, _ = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.request(method, path, json=body, headers=auth)
    assert answer.status_code == status, answer.text
    said = answer.json()
    assert said.get("error") or said.get("detail"), said  # a reason, never empty
    assert count(engine, OperatorPause) == 0


def test_the_unknown_field_names_its_place(api: tuple[TestClient, sa.Engine, VirtualClock]) -> None:
    client, _, _ = api
    answer = client.post(
        "/api/v1/pauses", json={"channel": "fax"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.json()["error"] == [{"field": "channel", "message": "unknown channel 'fax'"}]


# --- the race: four workers, a pause mid-run ----------------------------------------------


@pytest.mark.skipif(not IS_PG, reason="several workers need PostgreSQL (SQLite has one writer)")
def test_four_workers_send_nothing_claimed_after_the_pause_commits(
    db_url: str, tmp_path: Path
) -> None:
    """Four workers dispatch 1,500 accounts' texts; a pause of everything commits when a
    few hundred went. Each worker's claim reads the pauses inside its transaction, so
    once the pause is committed only the batches already claimed (at most one per
    worker, judged and rendered before it) can still be recorded:

    - the send rows grow by at most 4 × ``send_batch`` after the commit (without the
      check at the claim the workers go on to the end: 1,500 against ~300);
    - no send has ``sent_at`` (its claim's instant on the run's clock) after the commit;
    - every text not sent is deferred ``paused_by_operator``.
    """
    n, send_batch = 1500, 20
    env = write_setup(tmp_path, db_url, n, creditors=("acme",))
    (Path(env["OUTREACH_CONFIG"]) / "cadences.yaml").write_text(
        CADENCES.split("      - {id: daily-email")[0]
    )
    engine = db.make_engine(db_url, pool_size=12)
    make_runner(engine, env).plan(T)
    started = time.monotonic()

    def clock() -> datetime:  # the run's instants: T plus the real time elapsed
        return T + timedelta(seconds=time.monotonic() - started)

    channel = SlowChannel(delay=0.002)
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            runner = make_runner(
                engine, env, worker=f"w{i}", channel=channel, batch=50, send_batch=send_batch
            )
            while sum(runner.dispatch(clock()).decisions.values()):
                pass
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    while count(engine, Send) < 300:
        assert time.monotonic() - started < 60, "the workers do not send"
        time.sleep(0.005)
    with engine.begin() as conn:
        start_pause(conn, channel=None, creditor=None, reason="race", actor="t", now=clock())
    committed = clock()
    at_commit = count(engine, Send)
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures

    send = table_of(Send)
    with engine.connect() as conn:
        sent_at = [r.sent_at for r in conn.execute(sa.select(send.c.sent_at))]
    paused = {d.occurrence_id for d in decisions(engine) if d.reason == "paused_by_operator"}
    with engine.connect() as conn:
        assert len(active_pauses(conn)) == 1
    engine.dispose()
    assert max(sent_at) <= committed
    assert len(sent_at) - at_commit <= 4 * send_batch, (len(sent_at), at_commit)
    assert len(sent_at) < n and len(sent_at) + len(paused) == n
