"""The audit log: who changed what, when (``audit_log``).

Every change a person or a system part makes to an account's data, its cases, its
opt-outs or what was agreed with the debtor is written here in the transaction that
makes it, with its actor: a CLI's OS user, ``api`` for the REST API, or the part that
acted (``inbound_sms``, ``unsubscribe``, ``provider``). An entry's ``detail`` holds
field names, ids, channels and states: never a name, a phone, an email or an address.
``outreach audit --account ID`` reads an account's entries (``account_entries``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.tables import AuditLog, table_of

__all__ = ["AuditEntry", "account_entries", "write", "write_many"]

audit_t = table_of(AuditLog)


def write(
    conn: Connection,
    *,
    now: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    account_id: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry (the caller's transaction commits it with the change)."""
    write_many(
        conn,
        now=now,
        actor=actor,
        action=action,
        object_type=object_type,
        entries=[(object_id, account_id, detail)],
    )


def write_many(
    conn: Connection,
    *,
    now: datetime,
    actor: str,
    action: str,
    object_type: str,
    entries: list[tuple[str, str | None, dict[str, Any] | None]],
) -> None:
    """Add one entry per ``(object_id, account_id, detail)``, the same action on each,
    in one statement."""
    if not entries:
        return
    conn.execute(
        audit_t.insert(),
        [
            {
                "time": now,
                "actor": actor,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "account_id": account_id,
                "detail": detail,
            }
            for object_id, account_id, detail in entries
        ],
    )


@dataclass(frozen=True)
class AuditEntry:
    time: datetime
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    detail: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "detail": self.detail,
        }


def account_entries(conn: Connection, account_id: str) -> list[AuditEntry]:
    """The entries about one account, oldest first (in the order written, at a tie)."""
    rows = conn.execute(
        sa.select(audit_t)
        .where(audit_t.c.account_id == account_id)
        .order_by(audit_t.c.time, audit_t.c.id)
    ).all()
    return [
        AuditEntry(r.time, r.actor, r.action, r.object_type, r.object_id, r.detail) for r in rows
    ]
