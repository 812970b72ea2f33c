"""The Twilio SMS adapter (docs/configuration.md): the twilio SDK's Messages create.

``{adapter: twilio_sms, from: "+15005550006"}`` or ``messaging_service_sid: MG...``;
credentials from ``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN`` (or ``account_sid`` /
``auth_token`` in channels.yaml, usually as ``${ENV}``). The status callback is
``$OUTREACH_PUBLIC_URL/webhooks/twilio/sms/status?message_id=<ours>`` (or
``public_url``), so a status that arrives before Twilio's reply still finds its send.
``timeout`` (seconds) bounds each request; ``api_base`` points the SDK at another host
speaking Twilio's REST API (a test server, a regional edge).

Errors map at this boundary: an invalid, unreachable or landline number is permanent;
21610 (the recipient replied STOP to this sender at Twilio) is permanent and carries
``opt_out`` so the daemon records an SMS opt-out; 429 and 5xx are transient; a
connection that never opened is transient; a timeout after the request left is
ambiguous (it may have been sent: never resend blindly). The segment count and encoding
(GSM-7 or UCS-2) are recorded per send.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from pydantic import Field
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from channels.base import AdapterSettings, DeliveryStatus, OutboundMessage, SendResult
from channels.segments import segments
from orchestrator.clock import Clock
from orchestrator.errors import (
    AmbiguousSendError,
    ConfigError,
    PermanentChannelError,
    TransientChannelError,
)

TWILIO_API = "https://api.twilio.com"

# Twilio error codes that no retry can fix (https://www.twilio.com/docs/api/errors).
PERMANENT_CODES = {
    21211: "invalid 'To' phone number",
    21214: "'To' number cannot be reached",
    21408: "no permission to send to this region",
    21601: "the number is not SMS-capable",
    21606: "the 'From' number cannot send SMS",
    21610: "the recipient has opted out (STOP) of messages from this sender",
    21612: "the 'To' number is not reachable via SMS",
    21614: "'To' is not a mobile number",
    21617: "the message body is too long",
}
OPTED_OUT = 21610

# Twilio message statuses → ours.
STATUS = {
    "accepted": DeliveryStatus.queued,
    "scheduled": DeliveryStatus.queued,
    "queued": DeliveryStatus.queued,
    "sending": DeliveryStatus.sending,
    "sent": DeliveryStatus.sent,
    "delivered": DeliveryStatus.delivered,
    "undelivered": DeliveryStatus.undelivered,
    "failed": DeliveryStatus.failed,
    "canceled": DeliveryStatus.canceled,
}


class TwilioSettings(AdapterSettings):
    """What every Twilio adapter takes: credentials, our public URL, the API host."""

    account_sid: str | None = None
    auth_token: str | None = None
    public_url: str | None = None
    api_base: str | None = None
    timeout: float = Field(default=15.0, gt=0, le=120)


class TwilioSmsSettings(TwilioSettings):
    messaging_service_sid: str | None = None


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]  # the SDK has no types
    """The SDK's own HTTP client, sent to ``base`` instead of api.twilio.com."""

    def __init__(self, base: str | None, timeout: float):
        super().__init__(timeout=timeout)
        self.base = base.rstrip("/") if base else None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self.base and url.startswith(TWILIO_API):
            url = self.base + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


class TwilioSmsChannel:
    name: ClassVar[str] = "twilio_sms"
    settings_model: ClassVar[type[AdapterSettings]] = TwilioSmsSettings
    kind: ClassVar[str] = "sms"

    def __init__(self, channel: str, settings: TwilioSmsSettings, clock: Clock):
        if not settings.from_ and not settings.messaging_service_sid:
            raise ConfigError(
                f"channel {channel}: twilio_sms needs 'from' or 'messaging_service_sid'"
            )
        self.channel = channel
        self.settings = settings
        self.clock = clock
        self.public_url = callback_base(settings)
        self.client = twilio_client(channel, settings)

    @classmethod
    def from_config(
        cls, channel: str, settings: AdapterSettings, *, base_dir: Path, clock: Clock
    ) -> TwilioSmsChannel:
        assert isinstance(settings, TwilioSmsSettings)
        return cls(channel, settings, clock)

    def status_callback(self, message_id: str) -> str | None:
        if not self.public_url:
            return None
        return (
            f"{self.public_url.rstrip('/')}/webhooks/twilio/{self.kind}/status"
            f"?message_id={quote(message_id)}"
        )

    def send(self, message: OutboundMessage) -> SendResult:
        count = segments(message.text)
        sender: dict[str, str] = (
            {"messaging_service_sid": self.settings.messaging_service_sid}
            if self.settings.messaging_service_sid
            else {"from_": message.from_ or self.settings.from_ or ""}
        )
        callback = self.status_callback(message.message_id)
        try:
            created = self.client.messages.create(
                to=message.to,
                body=message.text,
                **sender,
                **({"status_callback": callback} if callback else {}),
            )
        except TwilioRestException as exc:
            raise twilio_error(exc) from exc
        except requests.exceptions.RequestException as exc:
            raise network_error(exc) from exc
        except TwilioException as exc:
            raise AmbiguousSendError(f"Twilio: {exc}", code="twilio") from exc
        return SendResult(
            provider_id=str(created.sid),
            status=STATUS.get(str(created.status), DeliveryStatus.queued),
            segments=count.segments,
            detail=count.encoding,
        )

    def close(self) -> None:
        return None


def callback_base(settings: TwilioSettings) -> str:
    """Where Twilio calls us back: ``public_url``, else ``$OUTREACH_PUBLIC_URL``."""
    return (settings.public_url or os.environ.get("OUTREACH_PUBLIC_URL", "")).rstrip("/")


def twilio_client(channel: str, settings: TwilioSettings) -> Client:
    """The SDK client for a channel's credentials, pointed at ``api_base`` if set."""
    sid = settings.account_sid or os.environ.get("TWILIO_ACCOUNT_SID")
    token = settings.auth_token or os.environ.get("TWILIO_AUTH_TOKEN")
    if not sid or not token:
        raise ConfigError(
            f"channel {channel}: Twilio needs TWILIO_ACCOUNT_SID and "
            "TWILIO_AUTH_TOKEN (or account_sid and auth_token)"
        )
    # The SDK logs every request body (numbers, texts) at INFO: never in our logs.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    return Client(sid, token, http_client=_HttpClient(settings.api_base, settings.timeout))


def twilio_error(
    exc: TwilioRestException, codes: Mapping[int, str] = PERMANENT_CODES
) -> PermanentChannelError | TransientChannelError:
    """A Twilio error reply as transient or permanent, with Twilio's code; ``codes`` are
    the ones no retry can fix, with what they mean."""
    code = int(exc.code) if exc.code is not None else None
    label = f"twilio_{code}" if code is not None else f"http_{exc.status}"
    if code is not None and code in codes:
        error = PermanentChannelError(f"Twilio {code}: {codes[code]}", code=label)
        error.opt_out = code == OPTED_OUT  # type: ignore[attr-defined]
        return error
    if exc.status == 429 or exc.status >= 500:
        return TransientChannelError(f"Twilio HTTP {exc.status} ({code}): retry later", code=label)
    return PermanentChannelError(f"Twilio HTTP {exc.status} ({code}): {exc.msg}", code=label)


def network_error(
    exc: requests.exceptions.RequestException,
) -> TransientChannelError | AmbiguousSendError:
    """No connection at all is safe to retry; anything after the request left is not."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TransientChannelError(f"Twilio unreachable: {exc}", code="connect")
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.Timeout
    ):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, NewConnectionError | ConnectionRefusedError):
            return TransientChannelError(f"Twilio unreachable: {exc}", code="connect")
    return AmbiguousSendError(f"Twilio request may have been sent: {exc}", code="timeout")


ADAPTER = TwilioSmsChannel
