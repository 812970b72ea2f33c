"""``import payments``: a CSV file of payments, each row checked (``_parse_payment``)
and the file recorded all or none, in batches (``_PaymentWriter``). The file is read as
the account import reads its own (``csvfile``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.clock import Clock, SystemClock, to_utc
from orchestrator.core.bounds import AMOUNT_LIMIT, FUTURE_LEEWAY, instant_problem
from orchestrator.ingest.csvfile import (
    BATCH_SIZE,
    Problems,
    Progress,
    SeenKeys,
    audit_row,
    read_rows,
)
from orchestrator.ingest.validation import parse_decimal, text_problem, valid_currency
from orchestrator.store.facts import replan
from orchestrator.store.tables import AccountRow, AuditLog, Payment, table_of

__all__ = ["PaymentImportResult", "import_payments"]

PAYMENT_COLUMNS = ("payment_id", "account_id", "amount", "paid_at", "currency")
REQUIRED_PAYMENT_COLUMNS = ("payment_id", "account_id", "amount", "paid_at")
PAYMENT_MAX_LENGTH = {
    "payment_id": 200,
    "account_id": 100,
    "amount": 40,
    "paid_at": 40,
    "currency": 10,
}  # as the payment webhook bounds them

account_t = table_of(AccountRow)
payment_t = table_of(Payment)
audit_t = table_of(AuditLog)


@dataclass(frozen=True)
class PaymentImportResult:
    inserted: int
    skipped: int  # payment ids already recorded
    dry_run: bool = False


def import_payments(
    engine: Engine,
    path: str | Path,
    *,
    dry_run: bool = False,
    actor: str = "cli",
    progress: Progress | None = None,
    clock: Clock | None = None,
    batch_size: int = BATCH_SIZE,
) -> PaymentImportResult:
    """Record the payments of a CSV file, all or none; ids already recorded are skipped.

    Each payment reduces its account's balance (never below zero); a payment that
    covers the balance closes the account. Promise bookkeeping belongs to the engine.
    """
    path = Path(path)
    source = str(path)
    problems = Problems(source)
    now = (clock or SystemClock()).now().astimezone(UTC)
    rows = 0
    with engine.connect() as conn, SeenKeys() as seen:
        transaction = conn.begin()
        try:
            writer = _PaymentWriter(conn, problems, now)
            batch: list[tuple[int, dict[str, Any]]] = []
            for line, raw in read_rows(path, PAYMENT_COLUMNS, REQUIRED_PAYMENT_COLUMNS, problems):
                rows += 1
                payment = _parse_payment(raw, line, problems, now)
                if payment is None:
                    continue
                first = seen.first(payment["payment_id"], line)
                if first is not None:
                    problems.error(
                        line,
                        "payment_id",
                        f"duplicate payment_id "
                        f"{payment['payment_id']!r} in file (first on line {first})",
                    )
                    continue
                batch.append((line, payment))
                if len(batch) >= batch_size:
                    writer.write(batch)
                    batch = []
                    if progress:
                        progress(rows)
            if batch:
                writer.write(batch)
            problems.raise_if_any()
            conn.execute(
                audit_t.insert(),
                [
                    audit_row(
                        now,
                        actor,
                        "import.payments",
                        "file",
                        path.name,
                        {
                            "file": str(path),
                            "rows": rows,
                            "inserted": writer.inserted,
                            "skipped": writer.skipped,
                        },
                    )
                ],
            )
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return PaymentImportResult(writer.inserted, writer.skipped, dry_run)


class _PaymentWriter:
    """Records one batch of parsed payments on ``conn``. A payment for an unknown
    account, or in another currency than its account's, is a problem, and a batch with
    problems writes nothing (the rest of the file is still checked)."""

    def __init__(self, conn: Connection, problems: Problems, now: datetime):
        self.conn = conn
        self.problems = problems
        self.now = now
        self.inserted = self.skipped = 0

    def write(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        known = self._recorded([p["payment_id"] for _, p in batch])
        accounts = self._accounts({p["account_id"] for _, p in batch})
        balances: dict[str, Decimal] = {}
        new: list[dict[str, Any]] = []
        for line, payment in batch:
            account = accounts.get(payment["account_id"])
            if account is None:
                self.problems.error(
                    line, "account_id", f"unknown account {payment['account_id']!r}"
                )
                continue
            if payment["currency"] and payment["currency"] != account.currency:
                self.problems.error(
                    line,
                    "currency",
                    f"currency {payment['currency']} differs from the account's {account.currency}",
                )
                continue
            if payment["payment_id"] in known:
                self.skipped += 1
                continue
            balance = balances.get(account.account_id, account.balance)
            balances[account.account_id] = max(balance - payment["amount"], Decimal("0.00"))
            new.append(
                {
                    **payment,
                    "currency": payment["currency"] or account.currency,
                    "source": "import",
                    "created_at": self.now,
                }
            )
        if self.problems.count:
            return
        if new:
            self.conn.execute(payment_t.insert(), new)
            self.inserted += len(new)
        if balances:
            self._write_balances(balances)

    def _recorded(self, ids: list[str]) -> set[str]:
        """The payment ids of ``ids`` already recorded."""
        return set(
            self.conn.scalars(
                sa.select(payment_t.c.payment_id).where(payment_t.c.payment_id.in_(ids))
            )
        )

    def _accounts(self, account_ids: set[str]) -> dict[str, Any]:
        return {
            row.account_id: row
            for row in self.conn.execute(
                sa.select(account_t.c.account_id, account_t.c.balance, account_t.c.currency).where(
                    account_t.c.account_id.in_(account_ids)
                )
            )
        }

    def _write_balances(self, balances: dict[str, Decimal]) -> None:
        """Each account's new balance; one paid in full (zero) is closed."""
        self.conn.execute(
            account_t.update()
            .where(account_t.c.account_id == sa.bindparam("b_account_id"))
            .values(
                balance=sa.bindparam("balance"),
                status=sa.case(
                    (sa.bindparam("closed", type_=sa.Boolean), "closed"),
                    else_=account_t.c.status,
                ),
                updated_at=sa.bindparam("updated_at"),
            ),
            [
                {
                    "b_account_id": aid,
                    "balance": bal,
                    "closed": bal <= 0,
                    "updated_at": self.now,
                }
                for aid, bal in balances.items()
            ],
        )
        replan(self.conn, balances)  # each is planned again (a thank-you, collection ends)


def _parse_payment(
    raw: dict[str, str], line: int, problems: Problems, now: datetime
) -> dict[str, Any] | None:
    before = problems.count
    values = {k: (v or "").strip() for k, v in raw.items()}
    bad = set()
    for column, text in values.items():
        problem = text_problem(text, PAYMENT_MAX_LENGTH[column])
        if problem is not None:
            problems.error(line, column, problem)
            bad.add(column)
            values[column] = ""  # reported once
    for column in REQUIRED_PAYMENT_COLUMNS:
        if not values.get(column) and column not in bad:
            problems.error(line, column, "required value is missing")
    amount: Decimal | None = None
    if values.get("amount"):
        try:
            amount = parse_decimal(values["amount"])
        except ValueError as exc:
            problems.error(line, "amount", str(exc))
        else:
            if amount <= 0:
                problems.error(line, "amount", f"amount must be positive, got {values['amount']}")
            elif amount >= AMOUNT_LIMIT:  # before quantize, which fails on huge values
                problems.error(line, "amount", f"amount too large: {values['amount']}")
            elif amount != amount.quantize(Decimal("0.01")):
                problems.error(line, "amount", f"more than 2 decimal places: {values['amount']}")
    paid_at: datetime | None = None
    if values.get("paid_at"):
        try:
            paid_at = parse_instant(values["paid_at"])
        except ValueError as exc:
            problems.error(line, "paid_at", str(exc))
        else:
            out_of_range = instant_problem(paid_at, now + FUTURE_LEEWAY)
            if out_of_range is not None:
                problems.error(line, "paid_at", out_of_range)
    currency = (values.get("currency") or "").upper() or None
    if currency and not valid_currency(currency):
        problems.error(line, "currency", f"unknown currency {values['currency']!r} (ISO 4217)")
    if problems.count != before:
        return None
    return {
        "payment_id": values["payment_id"],
        "account_id": values["account_id"],
        "amount": amount,
        "paid_at": paid_at,
        "currency": currency,
    }


def parse_instant(value: Any) -> datetime:
    """An ISO-8601 instant; a bare date is midnight UTC, a naive time is UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if not text:
            raise ValueError("required value is missing")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected an ISO-8601 date-time, got {text!r}") from None
    return to_utc(moment)
