"""What every channel adapter promises (channels/base.py), checked on each of them against
its real counterpart: the outbox and simulated channels, Twilio SMS and voice (a local
Twilio-shaped server, through the SDK), SMTP (aiosmtpd) and PDF letters; and a third-party
adapter installed as a package with an ``outreach.channels`` entry point."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from support import ROOT  # noqa: I001 - tests/support.py
from twilio_fake import ACCOUNT_SID, AUTH_TOKEN, INVALID, fake_twilio  # noqa: I001

from channels import registry
from channels.base import ChannelAdapter, DeliveryStatus, OutboundMessage, SendResult
from channels.registry import adapter_class, adapter_names, create_adapter
from orchestrator.clock import FrozenClock
from orchestrator.config.loading import load_config
from orchestrator.config.models import ChannelConfig
from orchestrator.errors import ConfigError, PermanentChannelError

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
HTML = "<html><body><p>Pat Doe: USD 100.00 owed, reference R1.</p></body></html>"


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if any(r.startswith("nobody@") for r in envelope.rcpt_tos):
            return "550 5.1.1 no such user"
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# adapter → (channel, options, a good recipient, a recipient the provider refuses for good)
def _setups(
    stack: ExitStack, tmp_path: Path
) -> dict[str, tuple[str, dict[str, Any], str, str | None]]:
    twilio = stack.enter_context(fake_twilio())
    port = _free_port()
    smtp = Controller(_Sink(), hostname="127.0.0.1", port=port)
    smtp.start()
    stack.callback(smtp.stop)
    return {
        "outbox": ("sms", {"dir": str(tmp_path / "outbox")}, "+12125550123", None),
        "simulated": ("sms", {}, "+12125550123", None),
        "twilio_sms": (
            "sms",
            {
                "from": "+15005550006",
                "api_base": twilio.base,
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
            },
            "+12125550123",
            INVALID,
        ),
        "twilio_voice": (
            "voice",
            {
                "from": "+15005550006",
                "api_base": twilio.base,
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "public_url": "https://outreach.example.com",
            },
            "+12125550123",
            INVALID,
        ),
        "smtp": (
            "email",
            {"host": "127.0.0.1", "port": port, "starttls": False, "from": "billing@acme.example"},
            "pat@example.com",
            "nobody@example.com",
        ),
        "pdf_batch": (
            "letter",
            {"out_dir": str(tmp_path / "letters")},
            "1 Main St, New York",
            None,
        ),
    }


ADAPTERS = ["outbox", "simulated", "twilio_sms", "twilio_voice", "smtp", "pdf_batch"]


@pytest.fixture
def setups(tmp_path: Path) -> Iterator[dict[str, tuple[str, dict[str, Any], str, str | None]]]:
    with ExitStack() as stack:
        yield _setups(stack, tmp_path)


def _message(channel: str, to: str, message_id: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel=channel,
        account_id="A1",
        debtor_id="D1",
        to=to,
        subject="Acme",
        text="Pat, please pay.",
        html=HTML if channel in ("email", "letter") else None,
    )


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_contract(name: str, setups: dict[str, Any], tmp_path: Path) -> None:
    channel, options, good, refused = setups[name]
    cls: type[ChannelAdapter] = adapter_class(name)  # the registry types it as `type`
    assert cls.name == name and name in adapter_names()
    adapter = create_adapter(
        channel,
        ChannelConfig.model_validate({"adapter": name, **options}),
        base_dir=tmp_path,
        clock=FrozenClock(NOW),
    )
    assert isinstance(adapter, ChannelAdapter)

    first = adapter.send(_message(channel, good, "m-1"))
    second = adapter.send(_message(channel, good, "m-2"))
    for result in (first, second):  # a result, never a success flag
        assert isinstance(result, SendResult) and isinstance(result.status, DeliveryStatus)
        assert result.provider_id
        assert result.status not in (
            DeliveryStatus.failed,
            DeliveryStatus.undelivered,
            DeliveryStatus.canceled,
        )
    assert first.provider_id != second.provider_id  # callbacks can tell sends apart

    if refused is not None:  # a refusal is an exception of the closed family
        with pytest.raises(PermanentChannelError):
            adapter.send(_message(channel, refused, "m-3"))
    adapter.close()
    adapter.close()  # closing twice is harmless

    # Unknown keys are refused, naming the channel and the key.
    with pytest.raises(ConfigError, match=f"{channel}: typo: unknown key"):
        create_adapter(
            channel,
            ChannelConfig.model_validate({"adapter": name, **options, "typo": 1}),
            base_dir=tmp_path,
            clock=FrozenClock(NOW),
        )


PLUGIN = """
from typing import ClassVar
from channels.base import AdapterSettings, DeliveryStatus, SendResult


class PigeonSettings(AdapterSettings):
    loft: str


class PigeonPost:
    name: ClassVar[str] = "pigeon"
    settings_model: ClassVar[type[AdapterSettings]] = PigeonSettings
    sent: ClassVar[list[str]] = []

    @classmethod
    def from_config(cls, channel, settings, *, base_dir, clock):
        return cls()

    def send(self, message):
        self.sent.append(message.message_id)
        return SendResult(provider_id="PG" + message.message_id, status=DeliveryStatus.sent)

    def close(self):
        return None
"""


def test_a_third_party_adapter_installed_as_a_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "outreach_pigeon").mkdir(parents=True)
    (site / "outreach_pigeon" / "__init__.py").write_text(PLUGIN)
    dist = site / "outreach_pigeon-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: outreach-pigeon\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[outreach.channels]\npigeon = outreach_pigeon:PigeonPost\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_registered", {})  # forget it after this test
    assert "pigeon" in adapter_names()

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for f in (
        "cadences.yaml",
        "policy.yaml",
        "creditors.yaml",
        "segments.yaml",
        "experiments.yaml",
    ):
        (config_dir / f).write_text(
            (ROOT / "config" / f).read_text(encoding="utf-8"), encoding="utf-8"
        )
    channels = (ROOT / "config" / "channels.yaml").read_text(encoding="utf-8")
    lines = [line for line in channels.splitlines() if not line.startswith("letter:")]
    (config_dir / "channels.yaml").write_text(
        "\n".join(lines) + "\nletter: {adapter: pigeon, loft: rooftop}\n", encoding="utf-8"
    )
    config = load_config(config_dir, ROOT / "templates")
    adapter = create_adapter(
        "letter", config.channels["letter"], base_dir=tmp_path, clock=FrozenClock(NOW)
    )
    assert adapter.send(_message("letter", "1 Main St", "m-9")).provider_id == "PGm-9"
    assert sys.modules["outreach_pigeon"].PigeonPost.sent == ["m-9"]

    (config_dir / "channels.yaml").write_text(
        "\n".join(lines) + "\nletter: {adapter: pigeon}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="loft"):
        config = load_config(config_dir, ROOT / "templates")
        create_adapter(
            "letter", config.channels["letter"], base_dir=tmp_path, clock=FrozenClock(NOW)
        )
