"""Reading and writing account state through the tables, with personal data decrypted
only here: load accounts as ``domain.Account`` and record decisions (``timeline`` builds
what ``account show`` tells, ``keys`` re-encrypts everything on ``keys rotate``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from orchestrator.core.account import Account
from orchestrator.core.crypto import DataCipher, mask_phone
from orchestrator.core.records import DecisionRecord
from orchestrator.core.zones import stored_phone_zones
from orchestrator.store.tables import AccountRow, Decision, table_of

__all__ = [
    "account_from_row",
    "decision_values",
    "iter_accounts",
    "load_account",
    "record_decision",
]

account_t = table_of(AccountRow)
decision_t = table_of(Decision)


def account_from_row(row: Row[Any] | Any, cipher: DataCipher) -> Account:
    """A decrypted ``Account`` from an ``account`` row."""
    dec = cipher.decrypt
    return Account(
        account_id=row.account_id,
        debtor_id=row.debtor_id,
        name=dec(row.name_enc) or "",
        phone=dec(row.phone_enc),
        email=dec(row.email_enc),
        address_line1=dec(row.address_line1_enc),
        address_line2=dec(row.address_line2_enc),
        city=row.city,
        region=row.region,
        postal_code=row.postal_code,
        country=row.country,
        timezone=row.timezone,
        locale=row.locale,
        email_type=row.email_type,
        currency=row.currency,
        balance=row.balance,
        due_date=row.due_date,
        creditor=row.creditor,
        reference=row.reference,
        consent_sms=row.consent_sms,
        consent_voice=row.consent_voice,
        consent_email=row.consent_email,
        segment=row.segment,
        product=row.product,
        risk_score=row.risk_score,
        principal=row.principal,
        interest=row.interest,
        fees=row.fees,
        status=row.status,
        created_at=row.created_at,
        phone_zones=stored_phone_zones(row.phone_zones),
    )


def load_account(conn: Connection, cipher: DataCipher, account_id: str) -> Account | None:
    row = conn.execute(sa.select(account_t).where(account_t.c.account_id == account_id)).first()
    return None if row is None else account_from_row(row, cipher)


def iter_accounts(
    engine: Engine, cipher: DataCipher, *, status: str | None = "open", batch: int = 1000
) -> Iterator[Account]:
    """Every account (by default the open ones), in ``account_id`` order, paged by key so
    memory stays flat however large the portfolio."""
    after = ""
    while True:
        query = sa.select(account_t).where(account_t.c.account_id > after)
        if status is not None:
            query = query.where(account_t.c.status == status)
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(account_t.c.account_id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield account_from_row(row, cipher)
        after = rows[-1].account_id


def decision_values(record: DecisionRecord, *, occurrence_id: int | None = None) -> dict[str, Any]:
    """The ``decision`` row of one record; ``record.to`` is stored masked, never in clear."""
    to = record.to
    masked = mask_phone(to) if to and to.startswith("+") else _mask_any(to)
    return {
        "occurrence_id": occurrence_id,
        "time": record.time,
        "local_time": record.local_time,
        "account_id": record.account,
        "debtor_id": record.debtor,
        "stage": record.stage,
        "step": record.step,
        "channel": record.channel,
        "kind": record.kind,
        "decision": str(record.decision),
        "reason": record.reason,
        "until": record.until,
        "message_id": record.message_id,
        "to_masked": masked,
        "subject": record.subject,
        "segment": record.segment,
        "experiment": record.experiment,
        "variant": record.variant,
    }


def record_decision(
    conn: Connection, record: DecisionRecord, *, occurrence_id: int | None = None
) -> int:
    """Insert one decision; ``record.to`` is stored masked, never in clear."""
    result = conn.execute(
        decision_t.insert().values(decision_values(record, occurrence_id=occurrence_id))
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _mask_any(to: str | None) -> str | None:
    from orchestrator.core.crypto import mask_email

    if not to:
        return None
    if "@" in to:
        return mask_email(to)
    return "***"  # a postal address or anything else: never stored
