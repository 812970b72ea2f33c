"""Operator pauses: an emergency stop of outbound sends, stored in ``operator_pause``.

``outreach pause`` and ``POST /api/v1/pauses`` start one (every channel of every
creditor, one channel, one creditor, or one channel of one creditor); ``outreach
resume`` and ``DELETE /api/v1/pauses/{id}`` end them. Each start and end is written to
``audit_log`` with its actor in the same transaction. Every worker reads the active
pauses at each claim (``dispatch.claiming``), so a pause holds back whatever is claimed
after it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.tables import AuditLog, OperatorPause, table_of

__all__ = ["ActivePause", "active_pauses", "covering", "end_pauses", "start_pause"]

pause_t = table_of(OperatorPause)
audit_t = table_of(AuditLog)


@dataclass(frozen=True)
class ActivePause:
    """A pause not yet ended; ``channel``/``creditor`` ``None``: every one."""

    id: int
    channel: str | None
    creditor: str | None
    reason: str | None
    actor: str
    created_at: datetime

    def covers(self, channel: str, creditor: str | None) -> bool:
        """Whether a send of ``channel`` for an account of ``creditor`` is held back."""
        return (self.channel is None or self.channel == channel) and (
            self.creditor is None or self.creditor == creditor
        )

    def describe(self) -> str:
        """``#3 channel sms, creditor acme (by ops, since ...): reason``, one line."""
        scope = ", ".join(
            [
                f"channel {self.channel}" if self.channel else "every channel",
                f"creditor {self.creditor}" if self.creditor else "every creditor",
            ]
        )
        since = self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        why = f": {self.reason}" if self.reason else ""
        return f"#{self.id} {scope} (by {self.actor}, since {since}){why}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "creditor": self.creditor,
            "reason": self.reason,
            "actor": self.actor,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def covering(
    pauses: Sequence[ActivePause], channel: str, creditor: str | None
) -> ActivePause | None:
    """The first (oldest) of ``pauses`` that holds back this send, if any."""
    return next((p for p in pauses if p.covers(channel, creditor)), None)


def active_pauses(conn: Connection) -> list[ActivePause]:
    """The pauses not yet ended, oldest first."""
    rows = conn.execute(
        sa.select(pause_t).where(pause_t.c.ended_at.is_(None)).order_by(pause_t.c.id)
    ).all()
    return [ActivePause(r.id, r.channel, r.creditor, r.reason, r.actor, r.created_at) for r in rows]


def start_pause(
    conn: Connection,
    *,
    channel: str | None,
    creditor: str | None,
    reason: str | None,
    actor: str,
    now: datetime,
) -> ActivePause:
    """Start a pause (the caller's transaction commits it), audited as ``pause.start``."""
    pause_id = conn.execute(
        pause_t.insert()
        .values(channel=channel, creditor=creditor, reason=reason, actor=actor, created_at=now)
        .returning(pause_t.c.id)
    ).scalar_one()
    pause = ActivePause(pause_id, channel, creditor, reason, actor, now)
    _audit(conn, now, actor, "pause.start", pause)
    return pause


def end_pauses(
    conn: Connection,
    *,
    actor: str,
    now: datetime,
    pause_id: int | None = None,
    channel: str | None = None,
    creditor: str | None = None,
    every: bool = False,
) -> list[ActivePause]:
    """End active pauses, each audited as ``pause.end``; those ended. ``every``: all of
    them; else the one ``pause_id``, or those whose scope is exactly ``channel`` and
    ``creditor`` (``None``: the pause of every channel, or of every creditor)."""
    ended = []
    for pause in active_pauses(conn):
        if pause_id is not None:
            match = pause.id == pause_id
        else:
            match = every or (pause.channel == channel and pause.creditor == creditor)
        if not match:
            continue
        done = conn.execute(
            pause_t.update()
            .where(pause_t.c.id == pause.id, pause_t.c.ended_at.is_(None))
            .values(ended_at=now)
        ).rowcount
        if done:
            ended.append(pause)
            _audit(conn, now, actor, "pause.end", pause)
    return ended


def _audit(conn: Connection, now: datetime, actor: str, action: str, pause: ActivePause) -> None:
    conn.execute(
        audit_t.insert(),
        [
            {
                "time": now,
                "actor": actor,
                "action": action,
                "object_type": "operator_pause",
                "object_id": str(pause.id),
                "detail": {
                    "channel": pause.channel,
                    "creditor": pause.creditor,
                    "reason": pause.reason,
                },
            }
        ],
    )
