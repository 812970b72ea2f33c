"""Keyed API requests: each is recorded once, however often it is sent.

A client that times out does not know whether its request was recorded, so it sends it
again; without a key a repeated payment counted twice, and two payments in the same
second (their ids were made of the account and the second) counted once. As Stripe
does, a request carries a key (an ``Idempotency-Key`` header, or a payment's own
``payment_id``); its first successful answer is stored with the key in the transaction
that records it, so a repeat gets that answer again (same status and body) and writes
nothing, and the key sent with another request is refused. The key is unique in the
table, so of two identical requests racing, one commits and the other finds its answer.
A refused request (4xx) stores nothing: sent again once mended, it is a first request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from orchestrator.store.tables import IdempotencyKey, table_of

__all__ = ["Answer", "first_answer", "fingerprint", "remember"]

key_t = table_of(IdempotencyKey)


@dataclass(frozen=True)
class Answer:
    """A stored first answer, and the fingerprint of the request it answered."""

    status: int
    body: dict[str, Any]
    fingerprint: str


def _canonical(value: Any) -> str:
    """One text per value: amounts as numbers (100 and 100.00 are one amount), instants
    in UTC (a naive one is UTC, as the API reads it)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"no canonical form for {type(value).__name__}")


def fingerprint(account_id: str, request: BaseModel) -> str:
    """What makes two requests the same one: their account and every field they give."""
    text = json.dumps(
        {"account": account_id, "request": request.model_dump()}, sort_keys=True, default=_canonical
    )
    return hashlib.sha256(text.encode()).hexdigest()


def first_answer(conn: Connection, key: str) -> Answer | None:
    """The answer stored for ``key``, if a request with it was recorded."""
    row = conn.execute(
        sa.select(key_t.c.status_code, key_t.c.response, key_t.c.fingerprint).where(
            key_t.c.key == key
        )
    ).first()
    return None if row is None else Answer(row.status_code, row.response, row.fingerprint)


def remember(
    conn: Connection,
    *,
    key: str,
    account_id: str,
    fingerprint: str,
    answer: Answer | tuple[int, dict[str, Any]],
    now: datetime,
) -> None:
    """Store the first answer to a keyed request, in the transaction that recorded it.
    Raises ``IntegrityError`` if another request took the key meanwhile (that
    transaction must then be rolled back: its request was recorded by the other)."""
    status, body = (answer.status, answer.body) if isinstance(answer, Answer) else answer
    conn.execute(
        key_t.insert().values(
            key=key,
            account_id=account_id,
            fingerprint=fingerprint,
            status_code=status,
            response=body,
            created_at=now,
        )
    )
