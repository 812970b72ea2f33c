"""The Twilio voice adapter through the real twilio SDK against a local Twilio-shaped
server, and the calls it places answered end to end: the daemon places them, ``outreach
serve`` (uvicorn on a loopback port, SQLite and PostgreSQL) answers Twilio's signed TwiML
and key-press requests, and the payment-link text goes out through the ``twilio_sms``
adapter to the same fake Twilio."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import ROOT, free_socket, live_server
from twilio.request_validator import RequestValidator
from twilio_fake import (  # noqa: I001 - tests/twilio_fake.py
    ACCOUNT_SID,
    AUTH_TOKEN,
    BROKEN,
    HANG,
    INVALID,
    NO_PERMISSION,
    THROTTLED,
    FakeTwilio,
    fake_twilio,
)

from channels.base import DeliveryStatus, OutboundMessage
from channels.registry import create_adapter
from channels.twilio.webhooks import CALL_STATUS, call_status
from orchestrator.clock import FrozenClock, VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.models import ChannelConfig
from orchestrator.config.settings import Settings
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.dispatch.runner import Runner
from orchestrator.errors import (
    AmbiguousSendError,
    ChannelError,
    ConfigError,
    PermanentChannelError,
    TransientChannelError,
)
from orchestrator.ingest.importer import import_accounts
from orchestrator.store import db, facts
from orchestrator.store.tables import (
    AccountEvent,
    AuditLog,
    Decision,
    DeliveryEvent,
    Send,
    Task,
    table_of,
)
from orchestrator.web.app import Server, create_app

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York
PUBLIC = "https://outreach.example.com"
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio(hang=3.0) as fake:
        yield fake


# --- the adapter ---------------------------------------------------------------------------


def adapter(tmp_path: Path, base: str, **options: Any) -> Any:
    cfg = ChannelConfig.model_validate(
        {
            "adapter": "twilio_voice",
            "from": "+15005550006",
            "api_base": base,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "public_url": PUBLIC,
            **options,
        }
    )
    return create_adapter("voice", cfg, base_dir=tmp_path, clock=FrozenClock(NOW))


def call(to: str, message_id: str = "m_0a1b") -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel="voice",
        account_id="A-1",
        debtor_id="D-1",
        to=to,
        text="Hello, this is Acme.",
    )


def test_call_points_twilio_at_our_twiml_and_asks_every_event(
    twilio: FakeTwilio, tmp_path: Path
) -> None:
    result = adapter(tmp_path, twilio.base).send(call("+12125550123"))
    assert result.provider_id.startswith("CA") and result.status == DeliveryStatus.queued
    [request] = twilio.requests
    assert request["path"] == CALLS  # and the fake checked basic auth
    form = request["form"]
    assert (form["To"], form["From"]) == ("+12125550123", "+15005550006")
    assert form["Url"] == f"{PUBLIC}/webhooks/twilio/voice/twiml/m_0a1b"
    assert form["Method"] == "POST"
    assert form["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/voice/status?message_id=m_0a1b"
    assert request["fields"]["StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert form["MachineDetection"] == "DetectMessageEnd"  # synchronous: no AsyncAmd
    assert "AsyncAmd" not in form and "Twiml" not in form and "Body" not in form


def test_without_machine_detection(twilio: FakeTwilio, tmp_path: Path) -> None:
    adapter(tmp_path, twilio.base, machine_detection=False).send(call("+12125550123"))
    assert "MachineDetection" not in twilio.requests[0]["form"]


@pytest.mark.parametrize(
    ("to", "error", "code"),
    [
        (INVALID, PermanentChannelError, "twilio_21211"),
        (NO_PERMISSION, PermanentChannelError, "twilio_21215"),
        (THROTTLED, TransientChannelError, "twilio_20429"),
        (BROKEN, TransientChannelError, "twilio_20500"),
    ],
)
def test_twilio_errors_map_to_retry_or_not(
    twilio: FakeTwilio, tmp_path: Path, to: str, error: type[ChannelError], code: str
) -> None:
    with pytest.raises(error) as raised:
        adapter(tmp_path, twilio.base).send(call(to))
    assert raised.value.code == code
    assert not getattr(raised.value, "opt_out", False)


def test_a_timeout_after_the_request_left_is_ambiguous(twilio: FakeTwilio, tmp_path: Path) -> None:
    with pytest.raises(AmbiguousSendError):
        adapter(tmp_path, twilio.base, timeout=0.5).send(call(HANG))
    assert twilio.requests[0]["form"]["To"] == HANG  # the phone may be ringing


def test_no_server_is_transient_and_wrong_credentials_permanent(
    twilio: FakeTwilio, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientChannelError):
        adapter(tmp_path, f"http://127.0.0.1:{port}", timeout=2).send(call("+12125550123"))
    with pytest.raises(PermanentChannelError):
        adapter(tmp_path, twilio.base, auth_token="wrong").send(call("+12125550123"))


def test_configuration_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTREACH_PUBLIC_URL", raising=False)
    with pytest.raises(ConfigError, match="OUTREACH_PUBLIC_URL"):
        adapter(tmp_path, "http://127.0.0.1:9", public_url=None)
    with pytest.raises(ConfigError, match="from"):
        adapter(tmp_path, "http://127.0.0.1:9", **{"from": None})
    with pytest.raises(ConfigError, match="voicemail"):
        adapter(tmp_path, "http://127.0.0.1:9", voicemail="maybe")


def test_call_statuses_map_into_ours() -> None:
    twilio_statuses = [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "no-answer",
        "failed",
        "canceled",
    ]
    assert sorted(CALL_STATUS) == sorted(twilio_statuses)
    assert call_status("completed", "human") == DeliveryStatus.answered
    assert call_status("completed", "") == DeliveryStatus.answered  # no detection asked
    for machine in (
        "machine_start",
        "machine_end_beep",
        "machine_end_silence",
        "machine_end_other",
        "fax",
    ):
        assert call_status("completed", machine) == DeliveryStatus.machine
    assert call_status("completed", "unknown") == DeliveryStatus.answered
    assert call_status("no-answer") == DeliveryStatus.no_answer
    assert call_status("busy") == DeliveryStatus.busy
    assert call_status("answered") is None  # an event name, never a CallStatus


# --- calls answered end to end -------------------------------------------------------------

CADENCES = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: daily-call, channel: voice, template: reminder, every: 1d, at: "10:00"}
"""
CREDITORS = """
creditors:
  acme:
    name: Acme Consumer Finance
    phone: "+18005550100"
    pay_url: "https://pay.example.com/{reference}"
    agent_phone: "+18005550199"
    agent_hours: {start: "09:00", end: "17:00", days: [mon, tue, wed, thu, fri]}
  huaxia: {name: 华夏消费金融, phone: "+864008001234", pay_url: "https://pay.example.cn/{reference}"}
"""
POLICY = """
timezone: {default: America/New_York, sources: [explicit, address, phone]}
hours: {default: any}
limits: []
"""
ACCOUNTS = """\
account_id,name,phone,country,region,timezone,locale,currency,balance,due_date,creditor,reference,consent_sms
V1,Pat Doe,+12122000001,US,NY,,en-US,USD,250.00,2026-03-01,acme,R1,true
V2,张伟,+8613800138000,CN,,Asia/Shanghai,zh-CN,CNY,3200.00,2026-03-01,huaxia,R2,true
V3,Lee Park,+12122000003,US,NY,,en-US,USD,90.00,2026-03-01,acme,R3,false
"""
PHONES = {"V1": "+12122000001", "V2": "+8613800138000", "V3": "+12122000003"}


@dataclass
class Live:
    url: str
    db: sa.Engine
    runner: Runner
    twilio: FakeTwilio
    clock: VirtualClock

    def post(
        self, path: str, params: dict[str, str], *, signature: str | None = None
    ) -> httpx.Response:
        sig = RequestValidator(AUTH_TOKEN).compute_signature(self.url + path, params)
        headers = {"X-Twilio-Signature": sig if signature is None else signature}
        return httpx.post(self.url + path, data=params, headers=headers)

    def placed(self, account: str) -> tuple[str, str, str]:
        """(message id, call sid, TwiML path) of the call placed to this account."""
        t = table_of(Send)
        with self.db.connect() as conn:
            send = conn.execute(
                sa.select(t).where(t.c.account_id == account, t.c.channel == "voice")
            ).one()
        [request] = [
            r
            for r in self.twilio.requests
            if r["path"] == CALLS and r["form"]["To"] == PHONES[account]
        ]
        path = urlsplit(request["form"]["Url"]).path
        assert path == f"/webhooks/twilio/voice/twiml/{send.message_id}"
        return send.message_id, send.provider_id, path

    def answer(self, account: str, answered_by: str | None) -> ET.Element:
        message_id, sid, path = self.placed(account)
        params = {
            "CallSid": sid,
            "AccountSid": ACCOUNT_SID,
            "CallStatus": "in-progress",
            "From": "+15005550006",
            "To": PHONES[account],
            "Direction": "outbound-api",
        }
        if answered_by is not None:
            params["AnsweredBy"] = answered_by
        response = self.post(path, params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        return ET.fromstring(response.text)

    def press(self, account: str, digits: str | None) -> ET.Element:
        message_id, sid, _ = self.placed(account)
        params = {"CallSid": sid, "AccountSid": ACCOUNT_SID, "CallStatus": "in-progress"}
        if digits is not None:
            params["Digits"] = digits
        response = self.post(f"/webhooks/twilio/voice/gather/{message_id}", params)
        assert response.status_code == 200, response.text
        return ET.fromstring(response.text)

    def rows(self, model: Any, **where: Any) -> list[Any]:
        t = table_of(model)
        q = sa.select(t)
        for k, v in where.items():
            q = q.where(t.c[k] == v)
        with self.db.connect() as conn:
            return list(conn.execute(q.order_by(t.c.id)).all())

    def texts(self) -> list[dict[str, str]]:
        return [r["form"] for r in self.twilio.requests if r["path"] == MESSAGES]


@pytest.fixture
def live(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, twilio: FakeTwilio
) -> Iterator[Live]:
    voicemail = getattr(request, "param", "leave")
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "cadences.yaml").write_text(CADENCES)
    (config_dir / "creditors.yaml").write_text(CREDITORS)
    (config_dir / "policy.yaml").write_text(POLICY)
    twilio_opts = (
        f"api_base: '{twilio.base}', account_sid: {ACCOUNT_SID}, "
        f"auth_token: {AUTH_TOKEN}, public_url: '{url}'"
    )
    (config_dir / "channels.yaml").write_text(
        f"sms: {{adapter: twilio_sms, from: '+15005550006', {twilio_opts}}}\n"
        f"voice: {{adapter: twilio_voice, from: '+15005550006', machine_detection: true, "
        f"voicemail: {voicemail}, {twilio_opts}}}\n"
    )
    keys = Fernet.generate_key().decode()
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    (tmp_path / "accounts.csv").write_text(ACCOUNTS)
    cipher = DataCipher([keys])
    import_accounts(engine, tmp_path / "accounts.csv", cipher)
    settings = Settings.from_env(
        {
            "OUTREACH_DATABASE_URL": db_url,
            "OUTREACH_DATA_KEYS": keys,
            "OUTREACH_SECRET_KEY": "test-secret-for-links-0123456789abcdef",
            "OUTREACH_CONFIG": str(config_dir),
            "OUTREACH_TEMPLATES": str(ROOT / "templates"),
            "OUTREACH_PUBLIC_URL": url,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
    )
    config = load_config(settings.config_dir, settings.templates_dir)
    clock = VirtualClock(T)
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
    runner.tick(T)  # one call per account, through the SDK to the fake Twilio
    assert len([r for r in twilio.requests if r["path"] == CALLS]) == 3
    server = Server(
        db=engine,
        config=config,
        cipher=cipher,
        settings=settings,
        clock=clock,
        runner=runner,
        twilio_token=AUTH_TOKEN,
    )
    try:
        with live_server(create_app(server), sock):
            yield Live(url, engine, runner, twilio, clock)
    finally:
        engine.dispose()


def _says(element: ET.Element) -> list[ET.Element]:
    return list(element.iter("Say"))


def _spoken(element: ET.Element) -> str:
    return " ".join(say.text or "" for say in _says(element))


def _send_status(live: Live, account: str, channel: str = "voice") -> str:
    [send] = live.rows(Send, account_id=account, channel=channel)
    return str(send.status)


@pytest.mark.parametrize(
    ("account", "voice", "language", "name", "amount", "press_1"),
    [
        ("V1", "Polly.Joanna", "en-US", "Pat Doe", "$250.00", "press 1"),
        ("V2", "Polly.Zhiyu", "cmn-CN", "张伟", "¥3,200.00", "请按1"),
    ],
)
def test_a_person_hears_the_script_in_their_language(
    live: Live, account: str, voice: str, language: str, name: str, amount: str, press_1: str
) -> None:
    twiml = live.answer(account, "human")
    message_id, _, _ = live.placed(account)
    [gather] = twiml.findall("Gather")
    assert gather.get("numDigits") == "1" and gather.get("input") == "dtmf"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("action") == f"{live.url}/webhooks/twilio/voice/gather/{message_id}"
    says = _says(gather)
    assert len(says) >= 3  # a <Say> per paragraph: who is calling first, then the account
    assert {(s.get("voice"), s.get("language")) for s in says} == {(voice, language)}
    script = _spoken(gather)
    assert name in script and amount in script
    first = says[0].text or ""
    assert name in first and amount not in first  # identify first
    assert press_1 in (says[-1].text or "")
    assert twiml[-1].tag == "Hangup"
    assert _send_status(live, account) == "answered"  # who answered, as a delivery event
    [event] = live.rows(DeliveryEvent, message_id=message_id)
    assert event.status == "answered" and event.raw["AnsweredBy"] == "human"


@pytest.mark.parametrize(
    ("account", "voice", "name", "debt_words"),
    [
        ("V1", "Polly.Joanna", "Pat Doe", ["250", "$", "payment", "due", "owe", "debt", "press"]),
        ("V2", "Polly.Zhiyu", "张伟", ["3,200", "¥", "欠款", "还款", "逾期", "到期", "按1"]),
    ],
)
def test_a_machine_gets_the_limited_content_voicemail(
    live: Live, account: str, voice: str, name: str, debt_words: list[str]
) -> None:
    twiml = live.answer(account, "machine_end_beep")
    assert [child.tag for child in twiml] == ["Say", "Hangup"]  # no menu for a machine
    [say] = _says(twiml)
    assert say.get("voice") == voice
    message = say.text or ""
    assert name in message  # Reg F limited content: a name, a call-back number, no debt
    assert ("1 8 0 0 5 5 5 0 1 0 0" if account == "V1" else "8 6 4 0 0 8 0 0 1 2 3 4") in message
    for word in debt_words:
        assert word not in message, word
    assert _send_status(live, account) == "machine"


def test_a_fax_is_hung_up_on(live: Live) -> None:
    assert [child.tag for child in live.answer("V1", "fax")] == ["Hangup"]
    assert _send_status(live, "V1") == "machine"


@pytest.mark.parametrize("live", ["hang_up"], indirect=True)
def test_a_machine_is_hung_up_on_when_configured(live: Live) -> None:
    for answered_by in ("machine_end_silence", "fax"):
        twiml = live.answer("V1", answered_by)
        assert [child.tag for child in twiml] == ["Hangup"]
    assert live.answer("V2", "human").find("Gather") is not None  # people still hear it


def test_no_detection_is_treated_as_a_person(live: Live) -> None:
    assert "Pat Doe" in _spoken(live.answer("V1", None))


def test_an_unknown_verdict_hears_only_the_limited_content_message(live: Live) -> None:
    twiml = live.answer("V1", "unknown")
    assert twiml.find("Gather") is None and "$" not in _spoken(twiml)
    assert _spoken(twiml) == _spoken(live.answer("V1", "machine_end_beep"))
    assert _spoken(twiml) != _spoken(live.answer("V1", "human"))


@pytest.mark.parametrize("live", ["hang_up"], indirect=True)
def test_an_unknown_verdict_is_not_hung_up_on(live: Live) -> None:
    twiml = live.answer("V1", "unknown")
    assert [child.tag for child in twiml] == ["Say", "Hangup"] and _spoken(twiml)


def test_an_account_paid_since_the_call_was_placed_hears_nothing(live: Live) -> None:
    with live.db.begin() as conn:
        facts.record_payment(
            conn,
            account_id="V1",
            payment_id="p1",
            amount=Decimal("250.00"),
            currency="USD",
            paid_at=T,
            source="webhook",
            now=T,
        )
    twiml = live.answer("V1", "human")
    assert [child.tag for child in twiml] == ["Hangup"]


def _decisions(live: Live, account: str) -> list[Any]:
    return live.rows(Decision, account_id=account, step="voice_pay_link")


def test_pressing_1_texts_the_payment_link(live: Live) -> None:
    twiml = live.press("V1", "1")
    assert "sent you a text message" in _spoken(twiml) and twiml[-1].tag == "Hangup"
    [text] = live.texts()
    assert text["To"] == PHONES["V1"] and text["From"] == "+15005550006"
    assert "Acme Consumer Finance" in text["Body"] and "Reply STOP" in text["Body"]
    link = next(w for w in text["Body"].split() if w.startswith(f"{live.url}/p/"))
    [decision] = _decisions(live, "V1")
    assert (decision.channel, decision.kind, decision.decision, decision.reason) == (
        "sms",
        "service",
        "sent",
        None,
    )
    assert decision.to_masked and PHONES["V1"] not in decision.to_masked
    [sms] = live.rows(Send, account_id="V1", channel="sms")
    assert sms.message_id == decision.message_id and sms.status == "sent"
    assert sms.provider_id and sms.provider_id.startswith("SM")
    assert text["StatusCallback"].endswith(
        f"/webhooks/twilio/sms/status?message_id={sms.message_id}"
    )

    clicked = httpx.get(link, follow_redirects=False)  # the link works and is tracked
    assert clicked.status_code == 302
    assert clicked.headers["location"] == "https://pay.example.com/R1"
    assert len(live.rows(AccountEvent, account_id="V1", type="click")) == 1

    again = live.press("V1", "1")  # a second press, or Twilio repeating the request
    assert "sent you a text message" in _spoken(again)
    assert len(live.texts()) == 1 and len(_decisions(live, "V1")) == 1


def test_pressing_1_in_chinese(live: Live) -> None:
    twiml = live.press("V2", "1")
    [say] = _says(twiml)
    assert (say.get("voice"), say.get("language")) == ("Polly.Zhiyu", "cmn-CN")
    assert "短信" in (say.text or "")
    [text] = live.texts()
    assert text["To"] == PHONES["V2"] and "华夏消费金融" in text["Body"]
    assert "回复STOP退订" in text["Body"] and f"{live.url}/p/" in text["Body"]


def test_pressing_1_after_stop_sends_no_text(live: Live) -> None:
    stop = live.post(
        "/webhooks/twilio/sms/inbound",
        {"From": PHONES["V1"], "Body": "STOP", "MessageSid": "SM" + "5" * 32},
    )
    assert stop.status_code == 200
    twiml = live.press("V1", "1")
    spoken = _spoken(twiml)
    assert "not to send text messages" in spoken and "1 8 0 0 5 5 5 0 1 0 0" in spoken
    assert live.texts() == []
    [decision] = _decisions(live, "V1")
    assert (decision.decision, decision.reason) == ("suppressed", "opted_out")
    # the one text recorded is the answer to the STOP (its confirmation), no payment link
    [confirmation] = live.rows(Decision, account_id="V1", step="opt_out_confirmation")
    assert [s.message_id for s in live.rows(Send, account_id="V1", channel="sms")] == [
        confirmation.message_id
    ]


def test_pressing_1_without_sms_consent_sends_no_text(live: Live) -> None:
    twiml = live.press("V3", "1")
    assert "cannot send a text message" in _spoken(twiml)
    assert live.texts() == []
    [decision] = _decisions(live, "V3")
    assert (decision.decision, decision.reason) == ("blocked", "no_consent")


@pytest.mark.parametrize("digits", ["3", "*", "", None])
def test_any_other_key_or_none_says_goodbye(live: Live, digits: str | None) -> None:
    twiml = live.press("V1", digits)
    assert [child.tag for child in twiml] == ["Say", "Hangup"]
    assert "Goodbye" in _spoken(twiml)
    assert live.texts() == [] and _decisions(live, "V1") == []


def test_forged_requests_change_nothing(live: Live) -> None:
    message_id, sid, path = live.placed("V1")
    answered = {"CallSid": sid, "CallStatus": "in-progress", "AnsweredBy": "human"}
    assert live.post(path, answered, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert httpx.post(live.url + path, data=answered).status_code == 403  # unsigned
    signed_other = RequestValidator(AUTH_TOKEN).compute_signature(live.url + path, answered)
    tampered = httpx.post(
        live.url + path,
        data={**answered, "AnsweredBy": "machine_end_beep"},
        headers={"X-Twilio-Signature": signed_other},
    )
    assert tampered.status_code == 403
    gather = f"/webhooks/twilio/voice/gather/{message_id}"
    assert live.post(gather, {"CallSid": sid, "Digits": "1"}, signature="AAAA").status_code == 403
    assert live.rows(DeliveryEvent) == []
    assert live.texts() == [] and _decisions(live, "V1") == []
    assert _send_status(live, "V1") == "sent"  # as the daemon left it


def test_an_unknown_call_is_404(live: Live) -> None:
    params = {"CallSid": "CA" + "0" * 32, "AnsweredBy": "human"}
    assert live.post("/webhooks/twilio/voice/twiml/m_00ff", params).status_code == 404
    assert live.post("/webhooks/twilio/voice/gather/m_00ff", {"Digits": "1"}).status_code == 404
    assert live.rows(DeliveryEvent) == [] and live.texts() == []


def test_status_callbacks_of_every_call_event(live: Live) -> None:
    message_id, sid, _ = live.placed("V1")
    path = f"/webhooks/twilio/voice/status?message_id={message_id}"
    for status in ("initiated", "ringing", "in-progress"):
        assert live.post(path, {"CallSid": sid, "CallStatus": status}).status_code == 200
    assert _send_status(live, "V1") == "in_progress"
    done = {
        "CallSid": sid,
        "CallStatus": "completed",
        "AnsweredBy": "machine_end_other",
        "CallDuration": "41",
    }
    assert live.post(path, done).status_code == 200
    assert _send_status(live, "V1") == "machine"
    assert live.rows(AccountEvent, account_id="V1", type="conversation") == []  # a machine


# --- pressing 2: the creditor's agent line -------------------------------------------------


def test_pressing_2_in_agent_hours_dials_the_agent_line(live: Live) -> None:
    twiml = live.press("V1", "2")  # a Tuesday morning in New York: the agents answer
    assert [child.tag for child in twiml] == ["Say", "Dial"]
    assert "connect you with an agent" in _spoken(twiml)
    assert twiml.find("Dial").text == "+18005550199"  # type: ignore[union-attr]
    assert live.rows(Task) == [] and live.texts() == []


@pytest.mark.parametrize(
    "later",
    [timedelta(hours=6), timedelta(days=4)],  # Tuesday 17:00 in New York; Saturday
)
def test_pressing_2_outside_agent_hours_makes_a_callback_task(live: Live, later: timedelta) -> None:
    live.clock.set(T + later)
    twiml = live.press("V1", "2")
    assert [child.tag for child in twiml] == ["Say", "Hangup"]
    assert "We will call you back" in _spoken(twiml)
    _, sid, _ = live.placed("V1")
    [task] = live.rows(Task)
    assert (task.account_id, task.type, task.state, task.message_id) == (
        "V1",
        "callback",
        "open",
        sid,
    )
    assert task.due_at == T + later + timedelta(hours=4) and task.created_by == "rules"
    live.press("V1", "2")  # pressed again: the open callback stands
    assert len(live.rows(Task)) == 1
    [entry] = live.rows(AuditLog, action="task.created")
    assert entry.account_id == "V1" and entry.actor == "rules"


def test_pressing_2_without_an_agent_line_says_goodbye(live: Live) -> None:
    twiml = live.press("V2", "2")  # huaxia has no agent line
    assert [child.tag for child in twiml] == ["Say", "Hangup"]
    assert "再见" in _spoken(twiml) and live.rows(Task) == []
