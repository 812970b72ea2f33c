"""Twilio's webhooks: whether Twilio sent a request, and what it says in our terms.

Twilio signs every callback with the account's auth token over the URL it called and
its form fields (``X-Twilio-Signature``, checked here with the SDK's
``RequestValidator``). The web routes (``orchestrator.web.routes.twilio``) hand this
module the public URL, the form and the signature, and get plain values back: a
``StatusEvent`` for a message's or a call's status callback, an ``InboundText`` for a
text someone sent us, an ``AnsweredCall`` for the request Twilio makes when a call is
answered. Twilio's field names and statuses live here, next to the adapters that send
(``sms.py``, ``voice.py``), as django-anymail keeps a provider's webhooks beside its
backend; nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from channels.base import DeliveryStatus
from channels.twilio.sms import STATUS

__all__ = [
    "CALL_STATUS",
    "FORM_TYPE",
    "SMS_STATUS",
    "AnsweredCall",
    "InboundText",
    "SignatureCheck",
    "StatusEvent",
    "UnknownStatus",
    "answered_call",
    "call_status",
    "form_fields",
    "inbound_text",
    "is_machine",
    "pressed",
    "reply_twiml",
    "signed_url",
    "status_event",
]

FORM_TYPE = "application/x-www-form-urlencoded"

# Twilio message statuses → ours: those a send's reply may carry (``sms.STATUS``), and
# ``read``, which only a status callback brings (a read receipt: it was delivered).
SMS_STATUS: Mapping[str, DeliveryStatus] = {**STATUS, "read": DeliveryStatus.delivered}

# Twilio call statuses → ours; ``completed`` means the call was answered (a person, or a
# machine when ``AnsweredBy`` says so: ``call_status``).
CALL_STATUS: Mapping[str, DeliveryStatus] = {
    "queued": DeliveryStatus.queued,
    "initiated": DeliveryStatus.sending,
    "ringing": DeliveryStatus.ringing,
    "in-progress": DeliveryStatus.in_progress,
    "completed": DeliveryStatus.answered,
    "busy": DeliveryStatus.busy,
    "no-answer": DeliveryStatus.no_answer,
    "failed": DeliveryStatus.failed,
    "canceled": DeliveryStatus.canceled,
}

# The fields of a callback kept with its delivery event: ids, statuses, codes and
# timings, never a number or a text.
_STATUS_FIELDS = (
    "MessageSid",
    "MessageStatus",
    "CallSid",
    "CallStatus",
    "AnsweredBy",
    "CallDuration",
    "ErrorCode",
    "SequenceNumber",
)
_ANSWER_FIELDS = ("CallSid", "CallStatus", "AnsweredBy", "MachineDetectionDuration")


def is_machine(answered_by: str | None) -> bool:
    """``AnsweredBy`` names a machine: ``machine_start``, ``machine_end_beep``,
    ``machine_end_silence``, ``machine_end_other`` or ``fax``. ``human``, ``unknown``
    and no answer detection at all are not."""
    value = (answered_by or "").strip().lower()
    return value.startswith("machine") or value == "fax"


def call_status(raw: str, answered_by: str | None = None) -> DeliveryStatus | None:
    """A Twilio ``CallStatus`` as ours: a completed call a machine answered is
    ``machine``; ``None`` for a status Twilio does not send."""
    status = CALL_STATUS.get(raw)
    if status == DeliveryStatus.answered and is_machine(answered_by):
        return DeliveryStatus.machine
    return status


# --- is it Twilio? ---------------------------------------------------------------------


def form_fields(body: bytes) -> dict[str, str]:
    """The fields of a urlencoded body. Twilio posts a flat form: ``parse_qsl`` is
    several times faster than a general multipart form parser, and every callback
    comes through here."""
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def signed_url(public_url: str, path: str, query: str = "") -> str:
    """The URL Twilio signed: the one it called, our public URL with the request's path
    and query (behind a proxy the request's own host is not the one Twilio saw)."""
    return public_url + path + (f"?{query}" if query else "")


class SignatureCheck:
    """Whether ``X-Twilio-Signature`` is the account's over a URL and form. Without an
    auth token nothing is Twilio's: every callback is refused."""

    def __init__(self, auth_token: str | None):
        self._validator = RequestValidator(auth_token) if auth_token else None

    def valid(self, url: str, form: Mapping[str, str], signature: str) -> bool:
        return bool(
            self._validator is not None
            and signature
            and self._validator.validate(url, form, signature)
        )


# --- what it says ----------------------------------------------------------------------


class UnknownStatus(ValueError):
    """A status callback without its sid, or with a status Twilio does not send."""

    def __init__(self, raw: str):
        self.raw = raw
        super().__init__(f"unknown status {raw!r}")


@dataclass(frozen=True)
class StatusEvent:
    """A message's or a call's status callback, in our terms."""

    provider_id: str  # MessageSid or CallSid
    status: DeliveryStatus
    event_key: str  # one per distinct callback: Twilio's retries of it repeat it
    duration: int  # seconds, for calls
    answered_by: str
    fields: dict[str, str]  # what is kept with the event (no number, no text)


def status_event(kind: str, form: Mapping[str, str]) -> StatusEvent:
    """The status callback of a text (``kind`` sms) or a call (voice); ``UnknownStatus``
    if it names no send or no status of ours. A call's status counts a machine's answer
    as ``machine`` (``call_status``)."""
    answered_by = form.get("AnsweredBy", "")
    if kind == "sms":
        sid, raw = form.get("MessageSid"), form.get("MessageStatus", "")
        status = SMS_STATUS.get(raw)
    else:
        sid, raw = form.get("CallSid"), form.get("CallStatus", "")
        status = call_status(raw, answered_by)
    if not sid or status is None:
        raise UnknownStatus(raw)
    key = f"{sid}:{raw}:{form.get('SequenceNumber', '')}:{answered_by}"
    return StatusEvent(
        provider_id=sid,
        status=status,
        event_key=key,
        duration=int(form.get("CallDuration") or 0),
        answered_by=answered_by,
        fields={k: v for k, v in form.items() if k in _STATUS_FIELDS},
    )


@dataclass(frozen=True)
class InboundText:
    """A text someone sent to one of our numbers."""

    sid: str  # MessageSid: a retry of the same text repeats it
    phone: str  # From
    body: str


def inbound_text(form: Mapping[str, str]) -> InboundText | None:
    """The text of an inbound-message webhook; ``None`` without a ``MessageSid`` (Twilio
    always sends one: without it a repeat could not be told)."""
    sid = form.get("MessageSid", "")
    if not sid:
        return None
    return InboundText(sid, form.get("From", ""), form.get("Body", ""))


def reply_twiml(texts: list[str]) -> str:
    """The answer to an inbound-message webhook: Twilio texts each of ``texts`` back to
    the sender (none: an empty ``<Response/>``)."""
    reply = MessagingResponse()
    for text in texts:
        reply.message(text)
    return str(reply)


@dataclass(frozen=True)
class AnsweredCall:
    """Twilio's request for what to say, once a call is answered."""

    sid: str | None  # CallSid
    answered_by: str  # machine detection's verdict; "" without detection
    fields: dict[str, str]  # what is kept with the event

    @property
    def status(self) -> DeliveryStatus:
        """Who answered, as a delivery status of the call."""
        if is_machine(self.answered_by):
            return DeliveryStatus.machine
        return (
            DeliveryStatus.answered if self.answered_by == "human" else DeliveryStatus.in_progress
        )


def answered_call(form: Mapping[str, str]) -> AnsweredCall:
    return AnsweredCall(
        sid=form.get("CallSid") or None,
        answered_by=form.get("AnsweredBy", ""),
        fields={k: v for k, v in form.items() if k in _ANSWER_FIELDS},
    )


def pressed(form: Mapping[str, str]) -> str:
    """The keys pressed at a ``<Gather>`` (``Digits``); "" for none."""
    return form.get("Digits", "")
