"""Payments: the payment provider's webhook, and the one way a payment is written.

The webhook is ours only with an HMAC-SHA256 of ``<timestamp>.<body>`` under
``OUTREACH_PAYMENT_WEBHOOK_SECRET`` and a timestamp within ``PAYMENT_WINDOW`` of now
(a captured request cannot be replayed later). A payment is recorded once per id
(``facts.record_payment``), in the account's currency, never dated after now; the API's
``payment`` events (``services.events``) write it the same way.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Connection, Row

from orchestrator.store import facts
from orchestrator.web.auth import same_secret
from orchestrator.web.schemas import PaymentIn
from orchestrator.web.server import Server
from orchestrator.web.services.refusals import (
    Invalid,
    NotAuthenticated,
    Unknown,
    checked_instant,
)

__all__ = [
    "PAYMENT_WINDOW",
    "currency_problem",
    "parse_payment",
    "record_webhook_payment",
    "verify_signature",
    "write_payment",
]

PAYMENT_WINDOW = timedelta(seconds=300)


def verify_signature(
    secret: str | None, stamp: str, signature: str, body: bytes, now: datetime
) -> None:
    """``NotAuthenticated`` unless the provider signed this body at ``stamp``, lately."""
    if not secret:
        raise NotAuthenticated("payment webhook disabled", "not_configured")
    expected = (
        "sha256="
        + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    if not same_secret(expected, signature):
        raise NotAuthenticated("invalid signature", "bad_signature")
    try:
        sent_at = datetime.fromtimestamp(int(stamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise NotAuthenticated("invalid timestamp", "bad_timestamp") from None
    if abs(now - sent_at) > PAYMENT_WINDOW:
        raise NotAuthenticated("timestamp outside 300 s", "stale")


def parse_payment(body: bytes, now: datetime) -> tuple[PaymentIn, datetime]:
    """The payment a webhook body gives, and when it was paid, in UTC; ``Invalid`` if
    the body is not one or ``paid_at`` is out of range."""
    try:
        payment = PaymentIn.model_validate_json(body)
    except ValidationError as exc:  # where and what, never the value (it may be personal)
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise Invalid(f"invalid payment: {where}", "invalid") from None
    return payment, checked_instant(payment.paid_at, now, "paid_at")


def record_webhook_payment(server: Server, payment: PaymentIn, paid_at: datetime) -> bool:
    """Record a webhook's payment; ``False``: its id was recorded before (a retry).
    A new one re-plans its account (a thank-you, no more reminders) at once."""
    now = server.clock.now()
    with server.tx() as conn:
        row = facts.account_row(conn, payment.account_id)
        if row is None:
            raise Unknown("unknown account", "unknown_account")
        problem = currency_problem(row, payment.currency)
        if problem is not None:
            raise Invalid(problem, "currency")
        new = write_payment(conn, row, payment.event_id, payment.amount, paid_at, "webhook", now)
    if new:
        server.replan([payment.account_id])
    return new


def currency_problem(row: Row[Any], currency: str | None) -> str | None:
    if currency is not None and currency.upper() != row.currency:
        return f"currency {currency} does not match the account's"
    return None


def write_payment(
    conn: Connection,
    row: Row[Any],
    payment_id: str,
    amount: Decimal,
    paid_at: datetime,
    source: str,
    now: datetime,
) -> bool:
    """Record a payment checked already; ``False``: its id was recorded before."""
    return facts.record_payment(
        conn,
        account_id=row.account_id,
        payment_id=payment_id,
        amount=amount,
        currency=row.currency,
        paid_at=min(paid_at, now),
        source=source,
        now=now,
    )
