"""The SMTP adapter against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from support import ROOT  # noqa: I001 - tests/support.py

from channels.base import DeliveryStatus, OutboundMessage
from channels.registry import create_adapter
from orchestrator.clock import FrozenClock
from orchestrator.config.models import ChannelConfig
from orchestrator.errors import PermanentChannelError, TransientChannelError

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
UNSUB = "https://pay.example.com/u/tok123"


class Mailbox:
    """Accepts mail for anyone but busy@ (451, try later) and nobody@ (550)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], Message, Any]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try again later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content or envelope.content)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed, session.peer))
        return "250 Message accepted"


def body(part: Message, charset: str | None = "utf-8") -> str:
    """A leaf part's text: ``get_payload(decode=True)`` gives its bytes (it is typed for a
    multipart message too)."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes) and charset is not None
    return payload.decode(charset)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def adapter(tmp_path: Path, port: int, **options: Any) -> Any:
    cfg = ChannelConfig.model_validate(
        {
            "adapter": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "starttls": False,
            "from": "Acme Recovery <billing@acme.example>",
            **options,
        }
    )
    return create_adapter("email", cfg, base_dir=tmp_path, clock=FrozenClock(NOW))


def message(to: str, message_id: str = "m-1", **kw: Any) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel="email",
        account_id="A-1",
        debtor_id="D-1",
        to=to,
        subject="Your Acme account",
        text="Hello Maria, please pay at https://x/p/1.",
        html="<p>Hello Maria, please <a href='https://x/p/1'>pay</a>.</p>",
        metadata={"unsubscribe_link": UNSUB},
        **kw,
    )


def test_multipart_mail_with_one_click_unsubscribe(
    smtp_server: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, port = smtp_server
    smtp = adapter(tmp_path, port, unsubscribe_mailto="unsub@acme.example")
    result = smtp.send(message("maria@example.com"))
    smtp.send(message("maria@example.com", message_id="m-2"))
    smtp.close()

    assert result.status == DeliveryStatus.sent
    assert result.provider_id == "m-1@acme.example"
    assert len(box.received) == 2
    mail_from, rcpts, mail, peer = box.received[0]
    assert mail_from == "billing@acme.example" and rcpts == ["maria@example.com"]
    assert mail["Message-ID"] == "<m-1@acme.example>"
    assert mail["Subject"] == "Your Acme account"
    assert " ".join(mail["List-Unsubscribe"].split()) == (
        f"<{UNSUB}>, <mailto:unsub@acme.example?subject=unsubscribe>"
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    parts = {p.get_content_type(): p for p in mail.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "please pay" in body(parts["text/plain"])
    assert "<a href=" in body(parts["text/html"])
    # One connection for both messages.
    assert box.received[1][3] == peer


def test_chinese_mail_survives_the_trip(smtp_server: tuple[Mailbox, int], tmp_path: Path) -> None:
    box, port = smtp_server
    smtp = adapter(tmp_path, port)
    smtp.send(
        OutboundMessage(
            message_id="m-zh",
            channel="email",
            account_id="A",
            debtor_id="D",
            to="zhang@example.cn",
            subject="华夏消费金融：还款提醒",
            text="张伟您好，请尽快还款。",
            locale="zh-CN",
        )
    )
    smtp.close()
    mail = box.received[0][2]
    assert str(email.header.make_header(email.header.decode_header(mail["Subject"]))) == (
        "华夏消费金融：还款提醒"
    )
    assert "张伟您好" in body(mail, mail.get_content_charset())
    assert "List-Unsubscribe" not in mail


def test_4xx_is_transient_5xx_is_permanent_and_the_connection_goes_on(
    smtp_server: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, port = smtp_server
    smtp = adapter(tmp_path, port)
    with pytest.raises(TransientChannelError) as busy:
        smtp.send(message("busy@example.com"))
    assert busy.value.code == "smtp_451"
    with pytest.raises(PermanentChannelError) as nobody:
        smtp.send(message("nobody@example.com"))
    assert nobody.value.code == "smtp_550"
    smtp.send(message("maria@example.com", message_id="m-3"))
    smtp.close()
    assert [r[1] for r in box.received] == [["maria@example.com"]]


def test_no_server_is_transient_and_a_bad_address_permanent(tmp_path: Path) -> None:
    smtp = adapter(tmp_path, free_port(), timeout=2)
    with pytest.raises(PermanentChannelError):
        smtp.send(message("not an address"))
    with pytest.raises(TransientChannelError) as refused:
        smtp.send(message("maria@example.com"))
    assert refused.value.code == "smtp_connect"


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="hots"):
        adapter(tmp_path, 25, hots="typo")


def test_templates_send_test_reaches_a_real_mailbox(
    smtp_server: tuple[Mailbox, int], tmp_path: Path
) -> None:
    import shutil

    from typer.testing import CliRunner

    from orchestrator.cli import _register_all, app

    box, port = smtp_server
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    channels = [
        line
        for line in (cfg / "channels.yaml").read_text().splitlines()
        if not line.startswith("email:")
    ]
    channels.append(
        f"email: {{adapter: smtp, host: 127.0.0.1, port: {port}, "
        f'starttls: false, from: "Acme <billing@acme.example>"}}'
    )
    (cfg / "channels.yaml").write_text("\n".join(channels) + "\n")
    _register_all()
    result = CliRunner().invoke(
        app,
        [
            "templates",
            "send-test",
            "reminder",
            "--channel",
            "email",
            "--locale",
            "zh-CN",
            "--to",
            "author@example.com",
            "--config",
            str(cfg),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert result.exit_code == 0, result.output
    [(_, rcpts, mail, _)] = box.received
    assert rcpts == ["author@example.com"]
    subject = str(email.header.make_header(email.header.decode_header(mail["Subject"])))
    assert "[TEST]" in subject
    assert {p.get_content_type() for p in mail.walk() if not p.is_multipart()} == {
        "text/plain",
        "text/html",
    }
