"""The Twilio SMS adapter through the real twilio SDK, against a local Twilio-shaped server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from twilio_fake import (  # noqa: I001 - tests/twilio_fake.py
    ACCOUNT_SID,
    AUTH_TOKEN,
    BROKEN,
    HANG,
    INVALID,
    OPTED_OUT,
    THROTTLED,
    FakeTwilio,
    fake_twilio,
)

from channels.base import DeliveryStatus, OutboundMessage
from channels.registry import create_adapter
from orchestrator.clock import FrozenClock
from orchestrator.config.models import ChannelConfig
from orchestrator.errors import (
    AmbiguousSendError,
    ChannelError,
    ConfigError,
    PermanentChannelError,
    TransientChannelError,
)

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio(hang=3.0) as fake:
        yield fake


def adapter(tmp_path: Path, base: str, **options: Any) -> Any:
    cfg = ChannelConfig.model_validate(
        {
            "adapter": "twilio_sms",
            "from": "+15005550006",
            "api_base": base,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "public_url": "https://outreach.example.com",
            **options,
        }
    )
    return create_adapter("sms", cfg, base_dir=tmp_path, clock=FrozenClock(NOW))


def sms(
    to: str,
    text: str = "Acme: your payment is due. Reply STOP to opt out.",
    message_id: str = "m-1",
) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id, channel="sms", account_id="A-1", debtor_id="D-1", to=to, text=text
    )


def test_message_created_with_callback_and_segments(twilio: FakeTwilio, tmp_path: Path) -> None:
    result = adapter(tmp_path, twilio.base).send(sms("+12125550123"))
    assert result.provider_id.startswith("SM") and result.status == DeliveryStatus.queued
    assert (result.segments, result.detail) == (1, "GSM-7")
    [request] = twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request["form"]["To"] == "+12125550123"
    assert request["form"]["From"] == "+15005550006"
    assert request["form"]["Body"].startswith("Acme:")
    assert request["form"]["StatusCallback"] == (
        "https://outreach.example.com/webhooks/twilio/sms/status?message_id=m-1"
    )


def test_chinese_text_counts_ucs2_segments(twilio: FakeTwilio, tmp_path: Path) -> None:
    text = "【华夏消费金融】张伟您好，您的账户已逾期，请尽快还款。" * 3  # 81 characters
    result = adapter(tmp_path, twilio.base).send(sms("+8613800138000", text))
    assert (result.segments, result.detail) == (2, "UCS-2")


def test_messaging_service_instead_of_a_number(
    twilio: FakeTwilio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTREACH_PUBLIC_URL", raising=False)
    cfg = ChannelConfig.model_validate(
        {
            "adapter": "twilio_sms",
            "messaging_service_sid": "MG" + "1" * 32,
            "api_base": twilio.base,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
        }
    )
    create_adapter("sms", cfg, base_dir=tmp_path, clock=FrozenClock(NOW)).send(sms("+12125550123"))
    form = twilio.requests[0]["form"]
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form
    assert "StatusCallback" not in form  # no public URL: Twilio could not call us back


@pytest.mark.parametrize(
    ("to", "error", "code"),
    [
        (INVALID, PermanentChannelError, "twilio_21211"),
        (OPTED_OUT, PermanentChannelError, "twilio_21610"),
        (THROTTLED, TransientChannelError, "twilio_20429"),
        (BROKEN, TransientChannelError, "twilio_20500"),
    ],
)
def test_twilio_errors_map_to_retry_or_not(
    twilio: FakeTwilio, tmp_path: Path, to: str, error: type[ChannelError], code: str
) -> None:
    with pytest.raises(error) as raised:
        adapter(tmp_path, twilio.base).send(sms(to))
    assert raised.value.code == code
    assert getattr(raised.value, "opt_out", False) == (to == OPTED_OUT)


def test_a_timeout_after_the_request_left_is_ambiguous(twilio: FakeTwilio, tmp_path: Path) -> None:
    with pytest.raises(AmbiguousSendError):
        adapter(tmp_path, twilio.base, timeout=0.5).send(sms(HANG))
    assert twilio.requests[0]["form"]["To"] == HANG  # it did reach Twilio


def test_no_server_is_transient(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientChannelError):
        adapter(tmp_path, f"http://127.0.0.1:{port}", timeout=2).send(sms("+12125550123"))


def test_wrong_credentials_are_permanent(twilio: FakeTwilio, tmp_path: Path) -> None:
    with pytest.raises(PermanentChannelError):
        adapter(tmp_path, twilio.base, auth_token="wrong").send(sms("+12125550123"))


def test_missing_credentials_or_sender_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
        create_adapter(
            "sms",
            ChannelConfig.model_validate({"adapter": "twilio_sms", "from": "+15005550006"}),
            base_dir=tmp_path,
            clock=FrozenClock(NOW),
        )
    with pytest.raises(ConfigError, match="from"):
        create_adapter(
            "sms",
            ChannelConfig.model_validate(
                {"adapter": "twilio_sms", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}
            ),
            base_dir=tmp_path,
            clock=FrozenClock(NOW),
        )
