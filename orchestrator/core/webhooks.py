"""Outbound webhooks, the pure part: the event types a subscription may name, the
payload one event becomes, and its signature per the Standard Webhooks specification
(https://www.standardwebhooks.com/).

A message is signed with HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{body}``,
keyed by the bytes of the subscription's secret (``whsec_`` then base64), and the
signature is sent as ``v1,<base64>`` in ``webhook-signature``. The body is fixed when the
event is queued, so every retry sends the same bytes under the same ``webhook-id``.

Payloads carry ids, channels, statuses, dates and amounts, never a name, phone number,
email address, postal address or message text: ``EventDraft.data`` is built field by
field by the readers of each event source (``orchestrator.store.webhook_events``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.core.records import DecisionKind, iso_utc

__all__ = [
    "ALL_EVENTS",
    "EVENT_FAMILIES",
    "SECRET_PREFIX",
    "EventDraft",
    "decode_secret",
    "event_types",
    "known_event",
    "matches",
    "payload_body",
    "sign",
    "signed_headers",
    "webhook_id",
]

SECRET_PREFIX = "whsec_"
ALL_EVENTS = "*"

# Each family of events, and the types in it when the type says more than the family
# (``decision.sent``). A subscription names a family (every type in it), one type, or
# ``*``. A new event source is one line here and one reader in ``store.webhook_events``.
EVENT_FAMILIES: dict[str, tuple[str, ...]] = {
    "decision": tuple(f"decision.{kind}" for kind in DecisionKind),
    "delivery": ("delivery",),
    "click": ("click",),
    "inbound": ("inbound",),
    "opt_out": ("opt_out",),
    "promise": ("promise",),
    "payment": ("payment",),
    "case": ("case.opened", "case.acknowledged", "case.resolved"),
    "task": ("task.created", "task.claimed", "task.done"),
}


def event_types() -> list[str]:
    """Every event type a payload's ``type`` can hold, in family order."""
    return [t for types in EVENT_FAMILIES.values() for t in types]


def known_event(name: str) -> bool:
    """Whether a subscription may name ``name``: ``*``, a family or one type."""
    return name == ALL_EVENTS or name in EVENT_FAMILIES or name in event_types()


def matches(subscribed: Iterable[str], event_type: str) -> bool:
    """Whether a subscription to ``subscribed`` receives an event of ``event_type``."""
    family = event_type.split(".", 1)[0]
    return any(name in (ALL_EVENTS, family, event_type) for name in subscribed)


@dataclass(frozen=True)
class EventDraft:
    """One event read from a table: ``key`` is unique per event (``source:row id``), so
    reading it again queues nothing new; ``account_id`` orders deliveries."""

    key: str
    type: str
    time: datetime
    account_id: str | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def order_key(self) -> str:
        """What deliveries are ordered by: the account, else the debtor (an opt-out of a
        phone number belongs to a debtor, not one account)."""
        if self.account_id is not None:
            return self.account_id
        return f"debtor:{self.data.get('debtor_id')}"


def payload_body(event: EventDraft) -> str:
    """The JSON body posted for ``event``: ``{type, timestamp, data}``, compact and with
    sorted keys so that the same event always has the same bytes."""
    data = {"account_id": event.account_id, **event.data}
    document = {"type": event.type, "timestamp": iso_utc(event.time), "data": data}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)


def webhook_id(subscription: str, event_key: str) -> str:
    """A stable ``webhook-id`` for one event to one subscription: the same across retries
    and replays, so the receiver can drop a repeat."""
    digest = hashlib.sha256(f"{subscription}\x00{event_key}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def decode_secret(text: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; ``ValueError`` saying what is wrong."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"expected a secret starting with {SECRET_PREFIX!r}")
    encoded = text[len(SECRET_PREFIX) :].strip()
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the part after {SECRET_PREFIX!r} is not base64") from None
    if len(key) < 24:
        raise ValueError(f"the key is {len(key)} bytes; at least 24 are required (32 advised)")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(key: bytes, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    timestamp = int(at.timestamp())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
    }
