"""Outbound webhooks against a real local receiver (an HTTP server on a free port): the
events the daemon records are posted signed per Standard Webhooks, and checked by the
reference ``standardwebhooks`` library (independent of the product's signing); a
receiver that fails or hangs, then recovers, gets every event, in order per account;
dead letters and their replay; an event read twice is posted once; no personal data.
SQLite and PostgreSQL (``OUTREACH_TEST_DB``)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from support import ROOT, free_socket  # noqa: I001 - tests/support.py
from test_pause import T, cli, make_runner, write_setup

from channels.base import DeliveryStatus
from orchestrator.clock import FrozenClock
from orchestrator.config.loading import load_config
from orchestrator.config.models import Duration, TaskRule
from orchestrator.core.cases import CaseKind
from orchestrator.core.crypto import DataCipher
from orchestrator.core.tasks import TaskOutcome
from orchestrator.dispatch.daemon import Daemon
from orchestrator.dispatch.webhooks import WebhookDispatcher, secrets_from_env
from orchestrator.store import cases, db, facts, tasks, webhook_events
from orchestrator.store.tables import (
    AuditLog,
    Payment,
    Send,
    WebhookCursor,
    WebhookDelivery,
    table_of,
)
from orchestrator.web.app import create_app
from orchestrator.web.outbound import PAYLOADS

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
outbox_t = table_of(WebhookDelivery)


# --- a receiver ------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int | str  # the status it answered, or "hung"

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """A CRM's endpoint: answers each request by the next item of ``script`` (a status
    code, or "hang": answer only after the sender's timeout), then 204; records all."""

    url: str
    script: list[int | str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if r.answered == 204]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    sock = free_socket()
    host, port = sock.getsockname()
    box = Receiver(url=f"http://{host}:{port}/hooks")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["content-length"]))
            with lock:
                answer = box.script.pop(0) if box.script else 204
                box.requests.append(Received(dict(self.headers), body, answer))
            if answer == "hang":
                time.sleep(1.5)  # the sender gave up after its timeout (0.5 s)
                answer = 204
            self.send_response(int(answer))
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


# --- the setup -------------------------------------------------------------------------------


def subscribe(
    env: dict[str, str], url: str, events: str = '["*"]', *, attempts: int = 5
) -> dict[str, str]:
    """``webhooks.yaml`` with one subscription (``crm``) to ``url``: retries 1 minute
    apart, without jitter; a 0.5 s timeout. The environment with its secret."""
    (Path(env["OUTREACH_CONFIG"]) / "webhooks.yaml").write_text(
        "subscriptions:\n"
        f"  - {{id: crm, url: '{url}', events: {events}, secret_env: CRM_HOOK_SECRET}}\n"
        f"retry: {{attempts: {attempts}, backoff: 1m, max_backoff: 1m, jitter: false}}\n"
        "timeout: 0.5\n"
    )
    return {**env, "CRM_HOOK_SECRET": SECRET}


def dispatcher(engine: sa.Engine, env: dict[str, str]) -> WebhookDispatcher:
    config = load_config(env["OUTREACH_CONFIG"])
    return WebhookDispatcher(engine, config.webhooks, secrets_from_env(config.webhooks, env))


def deliveries(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(outbox_t).order_by(outbox_t.c.id)).all())


def verify(received: Received) -> dict[str, Any]:
    """The body, if the reference library accepts its signature (it raises if not)."""
    return Webhook(SECRET).verify(received.body, received.headers)  # type: ignore[no-any-return]


# --- delivery and signatures -----------------------------------------------------------------


def test_sends_are_posted_signed_and_the_reference_library_verifies_them(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 2, creditors=("acme",)), receiver.url)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)  # sms and email for A00000 and A00001: 4 sent

    counts = dispatcher(engine, env).run(T)

    assert counts == {"queued": 4, "delivered": 4, "failed": 0, "dead": 0}
    events = [verify(r) for r in receiver.requests]
    assert sorted((e["type"], e["data"]["account_id"], e["data"]["channel"]) for e in events) == [
        ("decision.sent", "A00000", "email"),
        ("decision.sent", "A00000", "sms"),
        ("decision.sent", "A00001", "email"),
        ("decision.sent", "A00001", "sms"),
    ]
    assert all(e["timestamp"] == "2026-03-10T15:00:00Z" for e in events)
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(set(ids)) == 4 and all(i.startswith("msg_") for i in ids)
    assert {row.state for row in deliveries(engine)} == {"delivered"}
    # The check is real: the same message with one byte changed, or signed with another
    # secret, is refused by the reference library.
    first = receiver.requests[0]
    tampered = first.body.replace(b"A0000", b"A0009")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, first.headers)
    other = "whsec_" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(first.body, first.headers)
    engine.dispose()


def test_a_subscription_gets_only_the_events_it_names(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(
        write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url, "[payment]"
    )
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)
    with engine.begin() as conn:
        facts.record_payment(
            conn,
            account_id="A00000",
            payment_id="P-1",
            amount=Decimal("40.00"),
            currency="USD",
            paid_at=T,
            source="api",
            now=T,
        )
    assert dispatcher(engine, env).run(T)["delivered"] == 1
    [event] = [verify(r) for r in receiver.requests]
    assert event == {
        "type": "payment",
        "timestamp": "2026-03-10T15:00:00Z",
        "data": {
            "account_id": "A00000",
            "payment_id": "P-1",
            "amount": "40.00",
            "currency": "USD",
            "source": "api",
        },
    }
    engine.dispose()


def test_every_payload_is_documented_and_holds_no_personal_data(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)
    cipher = DataCipher([env["OUTREACH_DATA_KEYS"]])
    later = T + timedelta(minutes=5)
    with engine.begin() as conn:
        send = conn.execute(
            sa.select(table_of(Send)).where(table_of(Send).c.channel == "sms")
        ).first()
        assert send is not None
        facts.record_delivery(
            conn,
            provider_id=None,
            message_id=send.message_id,
            status=DeliveryStatus.delivered,
            event_key="e1",
            at=later,
        )
        facts.record_event(
            conn,
            account_id="A00000",
            type_="click",
            at=later,
            channel="sms",
            detail={"message_id": send.message_id, "first": True},
        )
        words = "Pat Doe here, call me on +12122000000"
        facts.record_event(
            conn,
            account_id="A00000",
            type_="inbound_sms",
            at=later,
            channel="sms",
            detail={"kind": "other", "body": cipher.encrypt(words)},
        )
        facts.opt_out(
            conn,
            debtor_id="D00000",
            account_id=None,
            channel="sms",
            contact_index=cipher.index_candidates("+12122000000", "phone")[0],
            source="inbound_sms",
            at=later,
        )
        facts.record_promise(
            conn, account_id="A00000", amount=Decimal("25.50"), due=date(2026, 3, 20), made_at=later
        )
        facts.record_promise(  # a settlement: 40.00 paid by the 25th, 10.00 waived
            conn,
            account_id="A00000",
            amount=Decimal("40.00"),
            due=date(2026, 3, 25),
            made_at=later,
            waived=Decimal("10.00"),
        )
        facts.record_payment(
            conn,
            account_id="A00000",
            payment_id="P-9",
            amount=Decimal("10.00"),
            currency="USD",
            paid_at=later,
            source="api",
            now=later,
        )
        row = facts.account_row(conn, "A00000")
        assert row is not None
        case = cases.open_for_account(
            conn,
            load_config(env["OUTREACH_CONFIG"], ROOT / "templates").policy,
            row,
            kind=CaseKind.dispute,
            category="amount_disputed",
            channel="voice",
            actor="alice",
            now=later,
            write_event=True,
        )
        cases.acknowledge_case(conn, case, actor="alice", now=later)
        cases.resolve_checked(
            conn, case.id, resolution="Pat Doe sent papers", verified=True, actor="bob", now=later
        )
        rule = TaskRule(type="callback", priority=1, due=Duration(2, "h"))
        task = tasks.create_task(conn, rule, account_id="A00000", now=later, message_id="CA1")
        assert task is not None
        tasks.claim_task(conn, task.id, actor="alice", now=later)
        tasks.finish_task(conn, task.id, outcome=TaskOutcome.no_answer, actor="alice", now=later)

    dispatcher(engine, env).run(later)

    events = [verify(r) for r in receiver.requests]
    assert [e["type"] for e in events if e["type"].startswith(("case.", "task."))] == [
        "case.opened",
        "case.acknowledged",
        "case.resolved",
        "task.created",
        "task.claimed",
        "task.done",
    ]
    [opened] = [e for e in events if e["type"] == "case.opened"]
    assert opened["data"] == {
        "account_id": "A00000",
        "case_id": case.id,
        "actor": "alice",
        "kind": "dispute",
        "category": "amount_disputed",
    }
    [done] = [e for e in events if e["type"] == "task.done"]
    assert done["data"] == {
        "account_id": "A00000",
        "task_id": task.id,
        "actor": "alice",
        "outcome": "no_answer",
    }
    families = {e["type"].split(".")[0] for e in events}
    assert families == set(PAYLOADS)  # every family the product posts, and no other
    for event in events:  # each body is what the OpenAPI document says
        PAYLOADS[event["type"].split(".")[0]].model_validate(event)
    everything = b"\n".join(r.body for r in receiver.requests).decode()
    for personal in ("Pat", "Doe", "+1212", "2122000000", "pat0@", "example.com", "New York"):
        assert personal not in everything
    [opt_out] = [e for e in events if e["type"] == "opt_out"]
    assert opt_out["data"] == {
        "account_id": None,
        "debtor_id": "D00000",
        "channel": "sms",
        "source": "inbound_sms",
    }
    [inbound] = [e for e in events if e["type"] == "inbound"]
    assert inbound["data"] == {"account_id": "A00000", "channel": "sms", "kind": "other"}
    promised = [e["data"] for e in events if e["type"] == "promise"]
    assert [(p["amount"], p.get("waived")) for p in promised] == [
        ("25.50", None),
        ("40.00", "10.00"),
    ]
    engine.dispose()


# --- failures, order, dead letters ---------------------------------------------------------


def test_a_failing_receiver_is_retried_and_the_account_order_is_kept(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)  # two sends of A00000: two events in order
    hooks = dispatcher(engine, env)
    receiver.script = [500, "hang"]

    assert hooks.run(T) == {"queued": 2, "delivered": 0, "failed": 1, "dead": 0}
    assert len(receiver.requests) == 1  # the second waits behind the first
    assert hooks.run(T + timedelta(seconds=30))["failed"] == 0  # not due before the backoff
    assert len(receiver.requests) == 1
    assert hooks.run(T + timedelta(minutes=1))["failed"] == 1  # no answer in time
    assert len(receiver.requests) == 2
    assert hooks.run(T + timedelta(minutes=2))["delivered"] == 2  # recovered: both, in order

    rows = deliveries(engine)
    assert [r.state for r in rows] == ["delivered", "delivered"]
    assert [r.attempts for r in rows] == [3, 1]
    assert [r.answered for r in receiver.requests] == [500, "hang", 204, 204]
    posted = [r.headers["webhook-id"] for r in receiver.requests]
    assert posted[:3] == [rows[0].webhook_id] * 3  # one id across every retry
    assert posted[3] == rows[1].webhook_id
    assert [verify(r)["data"]["channel"] for r in receiver.delivered()] == [
        json.loads(rows[0].body)["data"]["channel"],
        json.loads(rows[1].body)["data"]["channel"],
    ]
    engine.dispose()


def test_a_dead_letter_shows_in_status_and_replay_delivers_it(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url, attempts=2)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)
    hooks = dispatcher(engine, env)
    receiver.script = [500, 503]

    hooks.run(T)
    assert hooks.run(T + timedelta(minutes=1)) == {
        "queued": 0,
        "delivered": 1,  # the next event no longer waits behind a dead letter
        "failed": 0,
        "dead": 1,
    }
    dead, later = deliveries(engine)
    assert (dead.state, dead.attempts, dead.last_status) == ("dead", 2, 503)
    assert later.state == "delivered"

    status = cli(env, "status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["webhooks"]["dead"] == 1
    text = cli(env, "status")
    assert "webhooks crm: pending 0 (retrying 0), sending 0, DEAD 1" in text.stdout
    listed = cli(env, "webhooks", "list", "--dead", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["state"], row["last_error"]) == (dead.id, "dead", "HTTP 503")

    replayed = cli(env, "webhooks", "replay", "--subscription", "crm")
    assert replayed.exit_code == 0, replayed.output
    assert f"queued again: 1 (#{dead.id})" in replayed.stdout
    assert hooks.run(T + timedelta(minutes=2))["delivered"] == 1
    assert [r.state for r in deliveries(engine)] == ["delivered", "delivered"]
    assert receiver.requests[-1].headers["webhook-id"] == dead.webhook_id
    verify(receiver.requests[-1])
    audit = table_of(AuditLog)
    with engine.connect() as conn:
        [entry] = conn.execute(sa.select(audit).where(audit.c.action == "webhooks.replay")).all()
    assert entry.detail == {"ids": [dead.id], "subscription": "crm"}

    unknown = cli(env, "webhooks", "replay", "--id", str(dead.id), "--id", "999")
    assert unknown.exit_code == 2
    assert unknown.stderr.strip().startswith("--id: error: no such delivery")
    assert "999" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    assert deliveries(engine)[0].state == "delivered"  # nothing queued
    engine.dispose()


def test_an_event_read_again_is_queued_once(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 3, creditors=("acme",)), receiver.url)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)
    hooks = dispatcher(engine, env)
    assert hooks.run(T)["delivered"] == 6
    with engine.begin() as conn:  # as if the cursors were lost: every source read again
        conn.execute(table_of(WebhookCursor).update().values(last_id=0))
    assert hooks.run(T) == {"queued": 0, "delivered": 0, "failed": 0, "dead": 0}
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert len(deliveries(engine)) == 6
    engine.dispose()


def test_two_workers_at_once_post_each_event_once(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 8, creditors=("acme",)), receiver.url)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)  # 16 sends: 16 events
    workers = [dispatcher(engine, env), dispatcher(engine, env)]
    results: list[dict[str, int]] = []
    start = threading.Barrier(2)

    def work(hooks: WebhookDispatcher) -> None:
        start.wait()
        results.append(hooks.run(T))

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2  # neither worker raised
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert sum(r["queued"] for r in results) == 16
    assert sum(r["delivered"] for r in results) == 16
    assert {row.state for row in deliveries(engine)} == {"delivered"}
    engine.dispose()


# --- configuration, the daemon, the OpenAPI document ----------------------------------------


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "crm: environment variable CRM_HOOK_SECRET is not set"),
        ("hunter2", "crm: CRM_HOOK_SECRET: expected a secret starting with 'whsec_'"),
        ("whsec_!!notbase64", "crm: CRM_HOOK_SECRET: the part after 'whsec_' is not base64"),
    ],
)
def test_run_refuses_a_missing_or_invalid_secret_in_one_line(
    db_url: str, tmp_path: Path, secret: str | None, message: str
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), "http://127.0.0.1:9")
    env.pop("CRM_HOOK_SECRET")
    if secret is not None:
        env["CRM_HOOK_SECRET"] = secret
    result = cli(env, "run", "--once", "--now", T.isoformat())
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{env['OUTREACH_CONFIG']}/webhooks.yaml:2:")
    assert line.endswith(message)


def test_config_check_names_an_unknown_event_at_its_line(db_url: str, tmp_path: Path) -> None:
    env = subscribe(
        write_setup(tmp_path, db_url, 1, creditors=("acme",)),
        "https://crm.example.com/h",
        "[decision.sent, payments]",
    )
    result = cli(env, "config", "check")
    assert result.exit_code == 2
    assert "webhooks.yaml:2:" in result.output
    assert "crm: unknown event 'payments'" in result.output


def test_run_once_posts_the_events_of_its_tick(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url)
    result = cli(env, "run", "--once", "--now", T.isoformat())
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["webhooks"] == {"queued": 2, "delivered": 2, "failed": 0, "dead": 0}
    assert {verify(r)["type"] for r in receiver.requests} == {"decision.sent"}


def test_the_openapi_document_describes_every_outbound_event() -> None:
    document = create_app(None).openapi()  # type: ignore[arg-type]
    hooks = document["webhooks"]
    assert set(hooks) == set(PAYLOADS)
    for family, entry in hooks.items():
        post = entry["post"]
        assert "webhook-signature" in post["description"]
        headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith(PAYLOADS[family].__name__)


def test_the_daemon_job_posts_what_its_runner_recorded(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url)
    engine = db.make_engine(db_url)
    runner = make_runner(engine, env)
    runner.webhooks = dispatcher(engine, env)
    daemon = Daemon(lambda _stop: runner, clock=FrozenClock(T))
    daemon.plan()  # the planning and dispatch jobs: two sends of A00000
    daemon.dispatch()
    daemon.post_webhooks()  # the webhooks job
    assert [verify(r)["type"] for r in receiver.requests] == ["decision.sent"] * 2
    engine.dispose()


def test_a_backlog_read_in_pages_keeps_each_account_in_time_order(
    db_url: str, tmp_path: Path
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), "http://127.0.0.1:9")
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)  # two decisions of A00000 at T
    with engine.begin() as conn:
        facts.record_payment(
            conn,
            account_id="A00000",
            payment_id="P-2",
            amount=Decimal("5.00"),
            currency="USD",
            paid_at=T + timedelta(minutes=1),
            source="api",
            now=T,
        )
    subscriptions = load_config(env["OUTREACH_CONFIG"]).webhooks.subscriptions
    for _ in range(4):  # one decision a page: the payment waits until the decisions are in
        with engine.begin() as conn:
            webhook_events.emit(conn, subscriptions, T, limit=1)
    assert [row.type for row in deliveries(engine)] == [
        "decision.sent",
        "decision.sent",
        "payment",
    ]
    engine.dispose()


def test_a_row_committed_after_a_later_one_was_read_is_still_posted(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """On PostgreSQL a transaction may commit its row (id 5) after a row with a higher id
    (10) was read and the cursor moved past it: the next pass still queues it, once."""
    env = subscribe(
        write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url, "[payment]"
    )
    engine = db.make_engine(db_url)
    hooks = dispatcher(engine, env)
    payment_t = table_of(Payment)

    def pay(row_id: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                payment_t.insert().values(
                    id=row_id,
                    payment_id=f"P-{row_id}",
                    account_id="A00000",
                    amount=Decimal("1.00"),
                    currency="USD",
                    paid_at=T,
                    source="api",
                    created_at=T,
                )
            )

    pay(10)
    assert hooks.run(T)["delivered"] == 1
    pay(5)  # the late commit, below the cursor
    assert hooks.run(T)["delivered"] == 1
    assert hooks.run(T)["queued"] == 0
    assert [verify(r)["data"]["payment_id"] for r in receiver.requests] == ["P-10", "P-5"]
    engine.dispose()


def test_upgrading_a_database_with_history_posts_none_of_it(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = subscribe(write_setup(tmp_path, db_url, 1, creditors=("acme",)), receiver.url)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)  # two decisions recorded before the upgrade
    with engine.begin() as conn:  # as the database was before migration 0014
        conn.execute(sa.text("DROP TABLE webhook_cursor"))
        conn.execute(sa.text("DROP TABLE webhook_delivery"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0013'"))
    db.upgrade(db_url, "0014")  # the later migrations' columns are there already
    cursor_t = table_of(WebhookCursor)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(cursor_t)).all()
    cursors = {row.source: (row.last_id, row.start_id) for row in rows}
    assert cursors["decision"] == (2, 2) and cursors["payment"] == (0, 0)
    assert dispatcher(engine, env).run(T)["queued"] == 0
    assert receiver.requests == []
    engine.dispose()
