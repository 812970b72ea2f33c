"""``outreach serve`` on a real uvicorn server on a loopback port (SQLite and PostgreSQL).

Requests are signed independently: Twilio's with the SDK's ``RequestValidator``, the
payment webhook with a plain HMAC; rejected requests must leave nothing behind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from support import ROOT, free_socket, live_server, setup_db, wait_healthy  # noqa: I001
from twilio.request_validator import RequestValidator

from channels.registry import create_adapter
from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.settings import Settings
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.core.links import pay_link
from orchestrator.dispatch.runner import Runner
from orchestrator.store import db
from orchestrator.store.tables import (
    AccountEvent,
    AccountRow,
    Decision,
    DeliveryEvent,
    InstalmentPlan,
    Payment,
    Send,
    table_of,
)
from orchestrator.web.app import Server, create_app

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York
TOKEN = "twilio-auth-token"
PAY_SECRET = "payment-webhook-secret"
API_TOKEN = "api-token-1"

CADENCES = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00"}
      - {id: daily-email, channel: email, template: reminder, every: 1d, at: "10:00"}
triggers:
  - {id: thanks, on: payment_received, channel: sms, template: payment_thanks, kind: service}
"""


@dataclass
class Live:
    url: str
    db: sa.Engine
    runner: Runner
    clock: VirtualClock
    server: Server
    cipher: DataCipher
    texts: int = 0

    def twilio(
        self, path: str, params: dict[str, str], *, signature: str | None = None
    ) -> httpx.Response:
        sig = RequestValidator(TOKEN).compute_signature(self.url + path, params)
        headers = {"X-Twilio-Signature": sig if signature is None else signature}
        return httpx.post(self.url + path, data=params, headers=headers)

    def text(self, phone: str, body: str, *, sid: str | None = None) -> httpx.Response:
        """An inbound text from ``phone``, as Twilio posts it (a fresh MessageSid unless
        ``sid`` repeats one)."""
        self.texts += 1
        sid = sid or f"SM{self.texts:032d}"
        return self.twilio(
            "/webhooks/twilio/sms/inbound", {"From": phone, "Body": body, "MessageSid": sid}
        )

    def count(self, model: Any, **where: Any) -> int:
        t = table_of(model)
        q = sa.select(sa.func.count()).select_from(t)
        for k, v in where.items():
            q = q.where(t.c[k] == v)
        with self.db.connect() as conn:
            return int(conn.execute(q).scalar_one())


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    env, _ = setup_db(db_url, tmp_path, 4, cadences=CADENCES)
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings.from_env(
        {
            **env,
            "OUTREACH_PUBLIC_URL": url,
            "OUTREACH_PAYMENT_WEBHOOK_SECRET": PAY_SECRET,
            "OUTREACH_API_TOKENS": f"other,{API_TOKEN}",
            "TWILIO_AUTH_TOKEN": TOKEN,
        }
    )
    config = load_config(settings.config_dir, settings.templates_dir)
    cipher = DataCipher(settings.data_keys)
    clock = VirtualClock(T)
    engine = db.make_engine(db_url)
    adapters = {
        n: create_adapter(n, c, base_dir=tmp_path, clock=clock) for n, c in config.channels.items()
    }
    runner = Runner(
        engine,
        config,
        TemplateRenderer(ROOT / "templates"),
        adapters,
        cipher,
        public_url=url,
        secret=settings.secret_key or "",
    )
    runner.tick(T)  # one sms and one email per account
    server = Server(
        db=engine,
        config=config,
        cipher=cipher,
        settings=settings,
        clock=clock,
        runner=runner,
        twilio_token=TOKEN,
    )
    try:
        with live_server(create_app(server), sock):
            yield Live(url, engine, runner, clock, server, cipher)
    finally:
        engine.dispose()


def _send(live: Live, account: str, channel: str = "sms") -> Any:
    t = table_of(Send)
    with live.db.connect() as conn:
        return conn.execute(
            sa.select(t).where(t.c.account_id == account, t.c.channel == channel)
        ).one()


# --- status callbacks ----------------------------------------------------------------------


def test_status_callbacks_are_verified_idempotent_and_never_downgraded(live: Live) -> None:
    send = _send(live, "A00000")
    assert send.provider_id
    path = "/webhooks/twilio/sms/status"
    delivered = {"MessageSid": send.provider_id, "MessageStatus": "delivered"}

    forged = live.twilio(path, delivered, signature="bm90IGEgc2lnbmF0dXJl")
    missing = httpx.post(live.url + path, data=delivered)
    tampered_sig = RequestValidator(TOKEN).compute_signature(live.url + path, delivered)
    tampered = httpx.post(
        live.url + path,
        data={**delivered, "MessageStatus": "failed"},
        headers={"X-Twilio-Signature": tampered_sig},
    )
    assert (forged.status_code, missing.status_code, tampered.status_code) == (403, 403, 403)
    assert live.count(DeliveryEvent) == 0

    ok = live.twilio(path, delivered)
    assert ok.status_code == 200 and ok.json()["status"] == "recorded"
    replay = live.twilio(path, delivered)
    assert replay.json()["status"] == "duplicate"
    late = live.twilio(path, {"MessageSid": send.provider_id, "MessageStatus": "sent"})
    assert late.status_code == 200
    assert live.count(DeliveryEvent) == 2  # delivered once, the late 'sent' once
    assert _send(live, "A00000").status == "delivered"  # never downgraded

    unknown = live.twilio(path, {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"})
    assert unknown.status_code == 404


def test_a_burst_of_callbacks_is_stored_once_each_and_ends_at_the_final_status(live: Live) -> None:
    """Concurrent callbacks share transactions (group commit); each is still its own."""
    sids = [_send(live, f"A{n:05d}").provider_id for n in range(4)]
    path = "/webhooks/twilio/sms/status"
    calls = [
        {"MessageSid": sid, "MessageStatus": status}
        for sid in sids
        for status in ("sent", "delivered", "sent", "delivered")
    ]
    calls.append({"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"})  # unknown
    with ThreadPoolExecutor(len(calls)) as pool:
        codes = sorted(pool.map(lambda p: live.twilio(path, p).status_code, calls))
    assert codes == [200] * 16 + [404]
    assert live.count(DeliveryEvent) == 8  # one 'sent' and one 'delivered' per send
    assert {_send(live, f"A{n:05d}").status for n in range(4)} == {"delivered"}


def test_serve_with_two_worker_processes(db_url: str, tmp_path: Path) -> None:
    env, _ = setup_db(db_url, tmp_path, 2, cadences=CADENCES)
    engine = db.make_engine(db_url)
    sids = [f"SM{n:032d}" for n in range(20)]
    with engine.begin() as conn:
        conn.execute(
            table_of(Send).insert(),
            [
                {
                    "message_id": f"m_{n:04d}",
                    "provider_id": sid,
                    "account_id": "A00000",
                    "debtor_id": "D00000",
                    "channel": "sms",
                    "status": "sent",
                    "sent_at": T,
                }
                for n, sid in enumerate(sids)
            ],
        )
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "orchestrator", "serve", "--port", str(port), "--workers", "2"]
    env = {**env, "OUTREACH_PUBLIC_URL": url, "TWILIO_AUTH_TOKEN": TOKEN}
    if db_url.startswith("sqlite"):  # one process takes SQLite's writes
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        assert "--workers above 1 needs PostgreSQL" in refused.stderr
        engine.dispose()
        return
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_healthy(url)
        path = "/webhooks/twilio/sms/status"

        def post(sid: str) -> int:
            params = {"MessageSid": sid, "MessageStatus": "delivered"}
            sig = RequestValidator(TOKEN).compute_signature(url + path, params)
            return httpx.post(
                url + path, data=params, headers={"X-Twilio-Signature": sig}
            ).status_code

        with ThreadPoolExecutor(10) as pool:
            assert list(pool.map(post, sids + sids)) == [200] * 40
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    t = table_of(DeliveryEvent)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        statuses = set(conn.execute(sa.select(table_of(Send).c.status)).scalars())
    engine.dispose()
    assert stored == 20, stderr  # each callback once, the replays not at all
    assert statuses == {"delivered"}


def test_voice_conversation_starts_the_call_pause(live: Live) -> None:
    t = table_of(Send)
    with live.db.begin() as conn:  # a call placed earlier (the test cadence has none)
        conn.execute(
            t.insert().values(
                message_id="m_call1",
                provider_id="CA" + "1" * 32,
                account_id="A00001",
                debtor_id="D00001",
                channel="voice",
                status="sent",
                sent_at=T,
            )
        )
    params = {
        "CallSid": "CA" + "1" * 32,
        "CallStatus": "completed",
        "AnsweredBy": "human",
        "CallDuration": "95",
    }
    assert live.twilio("/webhooks/twilio/voice/status", params).status_code == 200
    assert live.count(AccountEvent, account_id="A00001", type="conversation") == 1
    assert live.twilio("/webhooks/twilio/voice/status", params).json()["status"] == "duplicate"
    assert live.count(AccountEvent, account_id="A00001", type="conversation") == 1


# --- inbound texts -------------------------------------------------------------------------


def _decision(live: Live, account: str, step: str, day: str) -> tuple[str, str | None]:
    t = table_of(Decision)
    with live.db.connect() as conn:
        row = conn.execute(
            sa.select(t.c.decision, t.c.reason)
            .where(
                t.c.account_id == account,
                t.c.step == step,
                t.c.message_id.like("m_%") | t.c.message_id.is_(None),
            )
            .order_by(t.c.id.desc())
        ).first()
    assert row is not None, (account, step, day)
    return row.decision, row.reason


def test_stop_suppresses_sms_only_until_start(live: Live) -> None:
    path = "/webhooks/twilio/sms/inbound"
    stop = live.text("+12122000000", "  Stop ")
    assert stop.status_code == 200 and "unsubscribed" in stop.text  # one confirmation
    day2 = T + timedelta(days=1)
    live.clock.set(day2)
    live.runner.tick(day2)
    assert _decision(live, "A00000", "daily-sms", "d2") == ("suppressed", "opted_out")
    assert _decision(live, "A00000", "daily-email", "d2") == ("sent", None)  # email unaffected
    assert _decision(live, "A00001", "daily-sms", "d2") == ("sent", None)  # another number

    start = live.text("+12122000000", "START")
    assert start.status_code == 200
    day3 = T + timedelta(days=2)
    live.clock.set(day3)
    live.runner.tick(day3)
    assert _decision(live, "A00000", "daily-sms", "d3") == ("sent", None)

    forged = httpx.post(
        live.url + path,
        data={"From": "+12122000037", "Body": "STOP"},
        headers={"X-Twilio-Signature": "AAAA"},
    )
    assert forged.status_code == 403
    live.runner.tick(day3 + timedelta(days=1))
    assert _decision(live, "A00001", "daily-sms", "d4") == ("sent", None)


def test_keyword_replies_are_recorded_and_one_confirmation_goes_per_five_minutes(
    live: Live,
) -> None:
    """The opt-out confirmation (docs/http.md) goes at most once per number within 5
    minutes (inclusive) and, like the help reply, is recorded (a decision and a send,
    counted toward limits) under the lowest account at the number."""
    assert "unsubscribed" in live.text("+12122000000", "STOP").text
    live.clock.set(T + timedelta(minutes=5))
    again = live.text("+12122000000", "stop")
    assert again.status_code == 200 and "<Message>" not in again.text
    live.clock.set(T + timedelta(minutes=5, seconds=1))
    assert "unsubscribed" in live.text("+12122000000", "STOP").text
    assert "+18005550100" in live.text("+12122000000", "HELP").text
    decisions, sends = table_of(Decision), table_of(Send)
    with live.db.connect() as conn:
        replies = conn.execute(
            sa.select(
                decisions.c.step,
                decisions.c.account_id,
                decisions.c.kind,
                decisions.c.decision,
                decisions.c.to_masked,
                decisions.c.message_id,
            )
            .where(decisions.c.step.in_(["opt_out_confirmation", "help_reply"]))
            .order_by(decisions.c.time, decisions.c.id)
        ).all()
        sent = conn.execute(
            sa.select(sends.c.message_id, sends.c.status, sends.c.channel).where(
                sends.c.message_id.in_([r.message_id for r in replies])
            )
        ).all()
    assert [(r.step, r.account_id, r.kind, r.decision) for r in replies] == [
        ("opt_out_confirmation", "A00000", "notice", "sent"),
        ("opt_out_confirmation", "A00000", "notice", "sent"),
        ("help_reply", "A00000", "notice", "sent"),
    ]
    assert {r.to_masked for r in replies} == {"+1 212 *** **00"}
    assert sorted((m, st, ch) for m, st, ch in sent) == sorted(
        (r.message_id, "sent", "sms") for r in replies
    )


def test_help_answers_with_the_creditor(live: Live) -> None:
    reply = live.text("+12122000000", "help")
    assert "Acme Consumer Finance" in reply.text and "+18005550100" in reply.text


# --- payments ------------------------------------------------------------------------------


def _pay(
    live: Live, body: dict[str, Any], *, secret: str = PAY_SECRET, stamp: int | None = None
) -> httpx.Response:
    raw = json.dumps(body).encode()
    ts = str(int(live.clock.now().timestamp()) if stamp is None else stamp)
    sig = hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return httpx.post(
        live.url + "/webhooks/payments",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Outreach-Timestamp": ts,
            "X-Outreach-Signature": f"sha256={sig}",
        },
    )


def test_no_page_loads_scripts_from_a_cdn(live: Live) -> None:
    """``/docs`` serves Swagger UI from the installed package (tests/test_apidocs.py)."""
    assert httpx.get(live.url + "/openapi.json").status_code == 200
    docs = httpx.get(live.url + "/docs")
    assert docs.status_code == 200 and "http" not in docs.text
    assert httpx.get(live.url + "/redoc").status_code == 404


def test_a_refused_payment_webhook_does_not_echo_its_input(live: Live) -> None:
    """The 422 says where and what (field and rule), never the value sent: a webhook body
    may carry a name or an account number."""
    body = {
        "event_id": "ev-x",
        "account_id": "A00002",
        "amount": "Jane Doe 4111-1111",
        "currency": "USD",
        "paid_at": T.isoformat(),
        "note": "Jane Doe 4111-1111",
    }
    refused = _pay(live, body)
    assert refused.status_code == 422
    assert "amount" in refused.text and "note" in refused.text
    assert "Jane Doe" not in refused.text and "4111" not in refused.text


def test_payment_webhook(live: Live) -> None:
    body = {
        "event_id": "ev-1",
        "account_id": "A00002",
        "amount": "40.00",
        "currency": "USD",
        "paid_at": T.isoformat(),
    }
    assert _pay(live, body, secret="wrong").status_code == 401
    assert _pay(live, body, stamp=int(T.timestamp()) - 301).status_code == 401
    assert _pay(live, {**body, "account_id": "NOPE"}).status_code == 404
    assert _pay(live, {**body, "currency": "EUR"}).status_code == 422
    assert live.count(Payment) == 0

    assert _pay(live, body).status_code == 201
    assert _pay(live, body).json()["status"] == "duplicate"  # replayed event id
    assert live.count(Payment) == 1
    accounts = table_of(AccountRow)
    with live.db.connect() as conn:
        balance = conn.execute(
            sa.select(accounts.c.balance).where(accounts.c.account_id == "A00002")
        ).scalar_one()
    assert balance == Decimal("60.00")
    live.runner.dispatch(T)  # the thank-you was planned at once
    assert _decision(live, "A00002", "thanks", "d1") == ("sent", None)

    full = {**body, "event_id": "ev-2", "amount": "60.00"}
    assert _pay(live, full).status_code == 201
    with live.db.connect() as conn:
        status = conn.execute(
            sa.select(accounts.c.status).where(accounts.c.account_id == "A00002")
        ).scalar_one()
    assert status == "closed"


# --- links ---------------------------------------------------------------------------------


def test_pay_link_records_a_click_and_redirects(live: Live) -> None:
    send = _send(live, "A00003")
    link = pay_link(
        live.url, live.server.settings.secret_key or "", send.message_id, T + timedelta(days=30)
    )
    response = httpx.get(link, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "https://pay.example.com/R3"
    assert live.count(AccountEvent, account_id="A00003", type="click") == 1
    token = link.rsplit("/", 1)[1]
    bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert httpx.get(f"{live.url}/p/{bad}", follow_redirects=False).status_code == 404
    assert live.count(AccountEvent, type="click") == 1


# --- API -----------------------------------------------------------------------------------


def keyed(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with a fresh ``Idempotency-Key`` (payments, promises and plans need one)."""
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


def test_api_needs_a_token_and_upserts_with_csv_validation(live: Live) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    body = {
        "name": "Lee Chen",
        "phone": "+12125550123",
        "country": "US",
        "region": "NY",
        "currency": "USD",
        "balance": "300.00",
        "due_date": "2026-02-01",
        "creditor": "acme",
    }
    assert httpx.put(f"{live.url}/api/v1/accounts/N1", json=body).status_code == 401
    assert (
        httpx.put(
            f"{live.url}/api/v1/accounts/N1", json=body, headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    created = httpx.put(f"{live.url}/api/v1/accounts/N1", json=body, headers=auth)
    assert created.status_code == 200 and created.json()["result"] == "inserted"
    again = httpx.put(f"{live.url}/api/v1/accounts/N1", json=body, headers=auth)
    assert again.json()["result"] == "unchanged"
    bad = httpx.put(f"{live.url}/api/v1/accounts/N2", json={**body, "phone": "555"}, headers=auth)
    assert bad.status_code == 422 and "phone" in bad.text
    shown = httpx.get(f"{live.url}/api/v1/accounts/N1", headers=auth).json()
    assert shown["account_id"] == "N1" and shown["status"] == "open"
    assert "Lee Chen" not in json.dumps(shown)

    promise = httpx.post(
        f"{live.url}/api/v1/accounts/N1/events",
        headers=keyed(auth),
        json={"type": "promise", "amount": "100.00", "due": "2026-03-20"},
    )
    assert promise.status_code == 201
    shown = httpx.get(f"{live.url}/api/v1/accounts/N1", headers=auth).json()
    assert [p["state"] for p in shown["promises"]] == ["pending"]
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    metrics = httpx.get(f"{live.url}/metrics").text
    assert "outreach_sends" in metrics and "outreach_webhook_rejections_total" in metrics
    big = httpx.put(
        f"{live.url}/api/v1/accounts/N3", headers=auth, content=b"{" + b" " * 300_000 + b"}"
    )
    assert big.status_code == 413


def test_api_counts_dpd_on_the_debtors_local_date(live: Live) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    body = {
        "name": "Wang Fang",
        "phone": "+8613800138000",
        "country": "CN",
        "timezone": "Asia/Shanghai",
        "currency": "CNY",
        "balance": "300.00",
        "due_date": "2026-03-01",
        "creditor": "acme",
    }
    assert httpx.put(f"{live.url}/api/v1/accounts/Z1", json=body, headers=auth).status_code == 200
    live.clock.set(datetime(2026, 3, 10, 17, 0, tzinfo=UTC))  # already 03-11 01:00 in Beijing
    shown = httpx.get(f"{live.url}/api/v1/accounts/Z1", headers=auth).json()
    assert shown["dpd"] == 10


def test_openapi_fuzzing_finds_no_server_error(live: Live) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.core.result import Err

    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    checked = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation of the served schema is invalid
        operation = result.ok()

        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=live.url, headers=auth)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)

        check()
        checked += 1
    assert checked >= 4


def test_one_click_unsubscribe_stops_email_only(live: Live) -> None:
    from orchestrator.core.links import unsubscribe_link

    send = _send(live, "A00001", "email")
    link = unsubscribe_link(
        live.url, live.server.settings.secret_key or "", send.message_id, T + timedelta(days=30)
    )
    page = httpx.get(link)
    assert page.status_code == 200 and "<form method=post" in page.text
    done = httpx.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    day2 = T + timedelta(days=1)
    live.clock.set(day2)
    live.runner.tick(day2)
    assert _decision(live, "A00001", "daily-email", "d2") == ("suppressed", "opted_out")
    assert _decision(live, "A00001", "daily-sms", "d2") == ("sent", None)
    pay = pay_link(
        live.url, live.server.settings.secret_key or "", send.message_id, T + timedelta(days=30)
    )
    assert httpx.post(pay.replace("/p/", "/u/")).status_code == 404  # a pay token is not one


def test_api_records_a_payment_plan(live: Live) -> None:
    """A plan agreed with the debtor, from the CRM: collection held while it is kept, its
    instalments shown on the account."""
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    url = f"{live.url}/api/v1/accounts/A00003/events"
    for bad in (
        {"type": "plan"},
        {"type": "plan", "instalments": []},
        {"type": "plan", "instalments": [{"due": "2026-03-20", "amount": "-5"}]},
        {"type": "plan", "instalments": [{"due": "2026-03-20"}]},
        {"type": "plan", "instalments": [{"due": "soon", "amount": "5"}]},
    ):
        assert httpx.post(url, headers=keyed(auth), json=bad).status_code == 422, bad
    assert (
        httpx.post(
            f"{live.url}/api/v1/accounts/NOPE/events",
            headers=keyed(auth),
            json={"type": "plan", "instalments": [{"due": "2026-03-20", "amount": "5"}]},
        ).status_code
        == 404
    )
    with live.db.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(table_of(InstalmentPlan))
            ).scalar_one()
            == 0
        )  # refused requests left nothing
    made = httpx.post(
        url,
        headers=keyed(auth),
        json={
            "type": "plan",
            "instalments": [
                {"due": "2026-04-20", "amount": "50.00"},
                {"due": "2026-03-20", "amount": "50.00"},
            ],
        },
    )
    assert made.status_code == 201, made.text
    day2 = T + timedelta(days=1)
    live.clock.set(day2)
    live.runner.tick(day2)
    assert _decision(live, "A00003", "daily-sms", "d2") == ("suppressed", "plan_active")
    assert _decision(live, "A00001", "daily-sms", "d2") == ("sent", None)  # others as usual
    shown = httpx.get(f"{live.url}/api/v1/accounts/A00003", headers=auth).json()
    assert [(p["state"], p["ended_at"]) for p in shown["plans"]] == [("active", None)]
    assert shown["plans"][0]["instalments"] == [
        {"due": "2026-03-20", "amount": "50.00", "paid": "0.00", "state": "pending"},
        {"due": "2026-04-20", "amount": "50.00", "paid": "0.00", "state": "pending"},
    ]
    timeline = httpx.get(f"{live.url}/api/v1/accounts/A00003/timeline", headers=auth).json()
    assert [e["status"] for e in timeline["events"] if e["type"] == "plan"] == ["active"]


def test_api_events_pause_and_suppress(live: Live) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    url = f"{live.url}/api/v1/accounts/A00002/events"
    assert httpx.post(url, headers=auth, json={"type": "dispute"}).status_code == 201
    assert httpx.post(url, headers=auth, json={"type": "opt_out"}).status_code == 422
    assert httpx.post(url, headers=auth, json={"type": "arrest"}).status_code == 422
    assert (
        httpx.post(
            f"{live.url}/api/v1/accounts/NOPE/events", headers=auth, json={"type": "cease"}
        ).status_code
        == 404
    )
    day2 = T + timedelta(days=1)
    live.clock.set(day2)
    live.runner.tick(day2)
    assert _decision(live, "A00002", "daily-sms", "d2") == ("suppressed", "disputed")
    timeline = httpx.get(f"{live.url}/api/v1/accounts/A00002/timeline", headers=auth).json()
    assert any(e["type"] == "dispute" for e in timeline["events"])
