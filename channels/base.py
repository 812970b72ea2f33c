"""What every channel adapter speaks: the message in, the result out, and the statuses.

An adapter is a class with a ``name``, a ``send`` that hands one message to its
provider, and a ``close``. It is built from its channel's ``channels.yaml`` entry by
``from_config``, after the adapter-specific keys have been validated by its
``settings_model`` (a pydantic model that forbids unknown keys)::

    class MyAdapter:
        name: ClassVar[str] = "my_adapter"
        settings_model: ClassVar[type[AdapterSettings]] = MySettings

        @classmethod
        def from_config(cls, channel, settings, *, base_dir, clock) -> MyAdapter: ...
        def send(self, message: OutboundMessage) -> SendResult: ...
        def close(self) -> None: ...

An adapter may also have a ``sync()``: make every message handed over since the last
call durable. The daemon calls it once per batch, after the batch's sends and before it
records them ``sent`` (if it raises, they are recorded ``ambiguous``), so an adapter that
writes locally can flush once per batch instead of once per message (the outbox does).

``send`` returns a ``SendResult`` or raises one of the ``ChannelError`` subclasses
(``TransientChannelError``: retry; ``PermanentChannelError``: do not;
``AmbiguousSendError``: it may have gone out, never resend blindly). It never returns
a success flag. Provider statuses are mapped into the closed ``DeliveryStatus``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import (
    AmbiguousSendError,
    ChannelError,
    PermanentChannelError,
    TransientChannelError,
)

__all__ = [
    "AdapterSettings",
    "AmbiguousSendError",
    "ChannelAdapter",
    "ChannelError",
    "DeliveryStatus",
    "OutboundMessage",
    "PermanentChannelError",
    "SendResult",
    "TransientChannelError",
    "can_move",
]


class DeliveryStatus(StrEnum):
    """Every provider's statuses map into these (docs/http.md)."""

    queued = "queued"  # accepted, waiting to go out
    sending = "sending"  # handed to the carrier / SMTP relay / printer
    sent = "sent"  # left the provider
    ringing = "ringing"  # voice: the phone is ringing
    in_progress = "in_progress"  # voice: the call is connected
    delivered = "delivered"  # reached the handset / mailbox / post
    undelivered = "undelivered"  # the carrier or mailbox rejected it
    failed = "failed"  # the provider could not send it
    answered = "answered"  # voice: a person answered
    machine = "machine"  # voice: an answering machine or voicemail answered
    no_answer = "no_answer"
    busy = "busy"
    canceled = "canceled"
    opened = "opened"  # email: the message was opened (after delivered)
    clicked = "clicked"  # a tracked link was followed (after delivered/opened)

    @property
    def is_final(self) -> bool:
        return self not in _PROGRESS

    @property
    def rank(self) -> int:
        """Position on the forward path; final statuses rank above every non-final one."""
        return _RANK[self]


_PROGRESS = (
    DeliveryStatus.queued,
    DeliveryStatus.sending,
    DeliveryStatus.sent,
    DeliveryStatus.ringing,
    DeliveryStatus.in_progress,
)
_RANK = {status: i for i, status in enumerate(_PROGRESS)}
_RANK.update({s: 10 for s in DeliveryStatus if s not in _RANK})
_RANK[DeliveryStatus.opened] = 11
_RANK[DeliveryStatus.clicked] = 12
# After a final status, only engagement with a delivered message may follow.
_AFTER_FINAL = {
    DeliveryStatus.delivered: frozenset({DeliveryStatus.opened, DeliveryStatus.clicked}),
    DeliveryStatus.opened: frozenset({DeliveryStatus.clicked}),
}


def can_move(old: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Whether a send at ``old`` may move to ``new``: forward only, a final status is
    never downgraded, and a repeat of the same status is not a move."""
    if old is None:
        return True
    if old == new:
        return False
    if old.is_final:
        return new in _AFTER_FINAL.get(old, frozenset())
    return new.rank > old.rank


@dataclass(frozen=True, kw_only=True)
class OutboundMessage:
    """One rendered message for one contact, ready for an adapter."""

    message_id: str  # unique per send; adapters use it as their idempotency key
    channel: str
    account_id: str
    debtor_id: str
    to: str  # E.164 phone, email address, or a postal address on one line
    from_: str = ""
    subject: str | None = None
    text: str
    html: str | None = None
    pdf_path: Path | None = None
    # The template directory: the only files a letter's HTML may load when it is printed
    # (images, fonts), its relative URLs starting from ``<templates_dir>/<channel>/``;
    # ``None``: no file at all (``data:`` URLs still work).
    templates_dir: Path | None = None
    locale: str = "en-US"
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_id: str  # the id status callbacks refer to (a Twilio MessageSid, ...)
    status: DeliveryStatus
    segments: int | None = None  # SMS segments billed, where known
    detail: str | None = None


class AdapterSettings(BaseModel):
    """Adapter-specific keys of a ``channels.yaml`` entry. Subclass per adapter.

    ``adapter``, ``rate`` and ``retry`` belong to the channel and are not passed here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")


@runtime_checkable
class ChannelAdapter(Protocol):
    name: ClassVar[str]

    def send(self, message: OutboundMessage) -> SendResult: ...

    def close(self) -> None: ...
