"""Provider status callbacks, written in batches (``store.groupcommit``).

A callback moves its send forward (never back: ``facts.record_deliveries``). A call a
person answered and stayed on for ``conversation_seconds`` is also a conversation,
which starts the policy's pause after a call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from channels.base import DeliveryStatus
from channels.twilio.webhooks import StatusEvent
from orchestrator.store import facts

__all__ = ["StatusCallback", "record_statuses", "status_callback"]


@dataclass(frozen=True)
class StatusCallback:
    kind: str  # sms | voice
    delivery: facts.Delivery
    duration: int  # seconds, for calls
    answered_by: str


def status_callback(
    kind: str, event: StatusEvent, message_id: str | None, now: datetime
) -> StatusCallback:
    """A parsed callback as the batch writes it; ``message_id`` is ours, from the query
    of the callback URL the send gave (a status may come before the send's reply)."""
    delivery = facts.Delivery(
        provider_id=event.provider_id,
        message_id=message_id,
        status=event.status,
        event_key=event.event_key,
        at=now,
        raw=event.fields,
    )
    return StatusCallback(kind, delivery, event.duration, event.answered_by)


def record_statuses(
    conn: Connection, callbacks: list[StatusCallback], *, conversation_seconds: int
) -> list[facts.DeliveryResult]:
    """Provider status callbacks (a group commit's batch). An answered call that lasted
    ``conversation_seconds`` is a conversation: it starts the policy's call pause."""
    results = facts.record_deliveries(conn, [c.delivery for c in callbacks])
    for c, result in zip(callbacks, results, strict=True):
        if (
            c.kind == "voice"
            and result.outcome == "recorded"
            and result.account_id
            and c.delivery.status == DeliveryStatus.answered
            and c.duration >= conversation_seconds
        ):
            facts.record_event(
                conn,
                account_id=result.account_id,
                type_="conversation",
                at=c.delivery.at,
                channel="voice",
                detail={
                    "call_sid": c.delivery.provider_id,
                    "answered_by": c.answered_by or "human",
                },
            )
    return results
