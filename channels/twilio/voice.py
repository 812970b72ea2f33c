"""The Twilio voice adapter (docs/configuration.md): the twilio SDK's Calls create.

``{adapter: twilio_voice, from: "+15005550006", machine_detection: true,
voicemail: leave}``; credentials as for ``twilio_sms`` (``TWILIO_ACCOUNT_SID`` /
``TWILIO_AUTH_TOKEN``, or ``account_sid`` / ``auth_token``), and ``public_url``,
``api_base`` and ``timeout`` likewise.

A call carries no script: Twilio fetches what to say from our TwiML route when the call
is answered, ``$OUTREACH_PUBLIC_URL/webhooks/twilio/voice/twiml/<message_id>`` (docs/http.md;
``orchestrator.web.voice`` renders it then, so no spoken text is stored anywhere).
Every call event (initiated, ringing, answered, completed) is reported to
``/webhooks/twilio/voice/status?message_id=<ours>``.

``machine_detection: true`` (the default) asks for Twilio's answering-machine detection
in its ``DetectMessageEnd`` mode, synchronously: Twilio fetches the TwiML only once it
knows who answered and, for a machine, once the greeting has ended (the beep), with the
verdict in ``AnsweredBy``. ``voicemail`` then says what a machine gets: ``leave`` (the
step's ``<template>_voicemail``, a limited-content message) or ``hang_up``. ``voices``
chooses the ``<Say>`` voice and language per locale; ``pay_link_template`` is the SMS
template sent when the person presses 1.

Errors map as for ``twilio_sms`` (``twilio_error``, ``network_error``): an invalid or
unreachable number, or one the account may not call (geographic permissions), is
permanent; 429 and 5xx are transient; a refused connection is transient; a timeout after
the request left is ambiguous (the phone may be ringing: never call again blindly).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field
from twilio.base.exceptions import TwilioException, TwilioRestException

from channels.base import AdapterSettings, DeliveryStatus, OutboundMessage, SendResult
from channels.twilio.sms import (
    TwilioSettings,
    callback_base,
    network_error,
    twilio_client,
    twilio_error,
)
from channels.twilio.webhooks import call_status
from orchestrator.clock import Clock
from orchestrator.errors import AmbiguousSendError, ConfigError

# Twilio error codes of Calls create that no retry can fix.
PERMANENT_CODES = {
    21205: "the TwiML URL is not valid",
    21210: "the 'From' number is not verified for this account",
    21211: "invalid 'To' phone number",
    21212: "invalid 'From' phone number",
    21214: "'To' number cannot be reached",
    21215: "the account is not allowed to call this region (geographic permissions)",
    21216: "the account is not allowed to call this number",
    21217: "the 'To' number does not appear to be valid",
    21219: "the 'To' number is not verified (trial account)",
}

CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
TWIML_PATH = "/webhooks/twilio/voice/twiml/"
STATUS_PATH = "/webhooks/twilio/voice/status"


class Voice(BaseModel):
    """A ``<Say>`` voice and the language code Twilio expects with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    voice: str
    language: str


DEFAULT_VOICES: Mapping[str, Voice] = {
    "en-US": Voice(voice="Polly.Joanna", language="en-US"),
    # Amazon Polly's Mandarin voice; Twilio's <Say> wants Polly's code, cmn-CN, not zh-CN.
    "zh-CN": Voice(voice="Polly.Zhiyu", language="cmn-CN"),
}


class TwilioVoiceSettings(TwilioSettings):
    machine_detection: bool = True
    voicemail: Literal["leave", "hang_up"] = "leave"
    voices: dict[str, Voice] = Field(default_factory=lambda: dict(DEFAULT_VOICES))
    pay_link_template: str = "pay_link"

    def voice_for(self, locale: str | None) -> Voice:
        """The voice of a locale (``zh-CN``), else of its language (``zh``, ``zh-TW``),
        else en-US's."""
        tag = (locale or "en-US").replace("_", "-")
        voices = {**DEFAULT_VOICES, **self.voices}
        if tag in voices:
            return voices[tag]
        language = tag.split("-", 1)[0].lower()
        for key, voice in voices.items():
            if key.split("-", 1)[0].lower() == language:
                return voice
        return voices["en-US"]


class TwilioVoiceChannel:
    name: ClassVar[str] = "twilio_voice"
    settings_model: ClassVar[type[AdapterSettings]] = TwilioVoiceSettings

    def __init__(self, channel: str, settings: TwilioVoiceSettings, clock: Clock):
        if not settings.from_:
            raise ConfigError(f"channel {channel}: twilio_voice needs 'from'")
        self.channel = channel
        self.settings = settings
        self.clock = clock
        self.public_url = callback_base(settings)
        if not self.public_url:
            raise ConfigError(
                f"channel {channel}: twilio_voice needs OUTREACH_PUBLIC_URL "
                "(or public_url): Twilio fetches what to say from it"
            )
        self.client = twilio_client(channel, settings)

    @classmethod
    def from_config(
        cls, channel: str, settings: AdapterSettings, *, base_dir: Path, clock: Clock
    ) -> TwilioVoiceChannel:
        assert isinstance(settings, TwilioVoiceSettings)
        return cls(channel, settings, clock)

    def twiml_url(self, message_id: str) -> str:
        return f"{self.public_url}{TWIML_PATH}{quote(message_id, safe='')}"

    def status_callback(self, message_id: str) -> str:
        return f"{self.public_url}{STATUS_PATH}?message_id={quote(message_id, safe='')}"

    def send(self, message: OutboundMessage) -> SendResult:
        detection = (
            {"machine_detection": "DetectMessageEnd"} if self.settings.machine_detection else {}
        )
        try:
            created = self.client.calls.create(
                to=message.to,
                from_=message.from_ or self.settings.from_ or "",
                url=self.twiml_url(message.message_id),
                method="POST",
                status_callback=self.status_callback(message.message_id),
                status_callback_method="POST",
                status_callback_event=list(CALL_EVENTS),
                **detection,
            )
        except TwilioRestException as exc:
            raise twilio_error(exc, PERMANENT_CODES) from exc
        except requests.exceptions.RequestException as exc:
            raise network_error(exc) from exc
        except TwilioException as exc:
            raise AmbiguousSendError(f"Twilio: {exc}", code="twilio") from exc
        return SendResult(
            provider_id=str(created.sid),
            status=call_status(str(created.status)) or DeliveryStatus.queued,
        )

    def close(self) -> None:
        return None


ADAPTER = TwilioVoiceChannel
