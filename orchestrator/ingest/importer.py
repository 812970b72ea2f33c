"""CSV → validated rows → upsert, all rows or none (docs/csv.md).

Files are streamed with the ``csv`` module and written in batches, all inside one
transaction: any bad row anywhere rolls the whole file back, and every bad row is
reported (``FILE:LINE: COLUMN: message``). Re-importing a file is an upsert by
``account_id``; a keyed digest of the personal fields tells whether they changed
without decrypting what is stored.
"""

from __future__ import annotations

import codecs
import csv
import operator
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.clock import Clock, SystemClock, to_utc
from orchestrator.core.account import (
    ACCOUNT_COLUMNS,
    PERSONAL_FIELDS,
    REQUIRED_ACCOUNT_COLUMNS,
    Account,
)
from orchestrator.core.bounds import AMOUNT_LIMIT, FUTURE_LEEWAY, instant_problem
from orchestrator.core.crypto import DataCipher
from orchestrator.core.csvsafe import unquote_cell
from orchestrator.core.zones import phone_zones_text
from orchestrator.errors import InputError, Problem
from orchestrator.ingest.validation import (
    parse_account,
    parse_decimal,
    text_problem,
    valid_currency,
)
from orchestrator.store.bulk import BulkInsert
from orchestrator.store.facts import REPLAN
from orchestrator.store.tables import AccountRow, AuditLog, Debtor, Payment, table_of

__all__ = [
    "ImportResult",
    "PaymentImportResult",
    "import_accounts",
    "import_payments",
]

BATCH_SIZE = 5000
MAX_PROBLEMS = 1000
PAYMENT_COLUMNS = ("payment_id", "account_id", "amount", "paid_at", "currency")
REQUIRED_PAYMENT_COLUMNS = ("payment_id", "account_id", "amount", "paid_at")
PAYMENT_MAX_LENGTH = {"payment_id": 200, "account_id": 100, "amount": 40, "paid_at": 40,
                      "currency": 10}  # as the payment webhook bounds them

# Clear columns that an import sets; compared one by one on re-import.
CLEAR_FIELDS = (
    "debtor_id",
    "balance",
    "currency",
    "due_date",
    "creditor",
    "reference",
    "segment",
    "consent_sms",
    "consent_voice",
    "consent_email",
    "locale",
    "timezone",
    "email_type",
    "city",
    "region",
    "postal_code",
    "country",
)

ENCRYPTED_FIELDS = tuple(f"{f}_enc" for f in PERSONAL_FIELDS)
INDEX_FIELDS = ("phone_index", "email_index", "personal_digest", "phone_zones")
# Column order of the bulk inserts (``_AccountWriter`` builds tuples in this order).
ACCOUNT_INSERT = (
    "account_id",
    *CLEAR_FIELDS,
    *ENCRYPTED_FIELDS,
    *INDEX_FIELDS,
    "status",
    "created_at",
    "updated_at",
)
DEBTOR_INSERT = (
    "id",
    "name_enc",
    "phone_enc",
    "email_enc",
    "phone_index",
    "email_index",
    "personal_digest",
    "created_at",
    "updated_at",
)

CHUNK_ROWS = 1000  # rows validated and prepared together

# (account_id, clear values in CLEAR_FIELDS order, tokens in PERSONAL_FIELDS order,
#  (phone_index, email_index, account digest, phone zones), debtor digest)
Prepared = tuple[str, tuple[Any, ...], tuple[str | None, ...], tuple[Any, ...], str]

_clear_of = operator.attrgetter(*CLEAR_FIELDS)
_personal_of = operator.attrgetter(*PERSONAL_FIELDS)

Progress = Callable[[int], None]

account_t = table_of(AccountRow)
debtor_t = table_of(Debtor)
payment_t = table_of(Payment)
audit_t = table_of(AuditLog)


@dataclass(frozen=True)
class ImportResult:
    inserted: int
    updated: int
    unchanged: int
    dry_run: bool = False

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


@dataclass(frozen=True)
class PaymentImportResult:
    inserted: int
    skipped: int  # payment ids already recorded
    dry_run: bool = False


class _Problems:
    """Every problem counted; the first ``MAX_PROBLEMS`` kept."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[Problem] = []
        self.count = 0

    def add(self, problem: Problem) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(problem)

    def error(self, line: int | None, column: str | None, message: str) -> None:
        self.add(Problem(self.source, line, None, message, field=column))

    def raise_if_any(self) -> None:
        if not self.count:
            return
        items = list(self.items)
        if self.count > len(items):
            more = self.count - len(items)
            items.append(Problem(self.source, None, None, f"... and {more} more problems"))
        raise InputError(items)


def _rows(
    path: Path, known: Sequence[str], required: Sequence[str], problems: _Problems
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, row)`` for each data row; header problems are raised at once."""
    header: list[str] = []
    for line, row in _row_lists(path, known, required, problems, header):
        yield line, dict(zip(header, row, strict=True))


def _row_lists(
    path: Path,
    known: Sequence[str],
    required: Sequence[str],
    problems: _Problems,
    header_out: list[str],
) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` for each data row, the header (stripped) put in ``header_out``
    before the first; header problems are raised at once."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        problems.error(None, None, f"cannot read file: {exc.strerror or exc}")
        problems.raise_if_any()
        return
    with handle:
        reader = csv.reader(_text_lines(handle))
        try:
            header = next(reader)
        except StopIteration:
            problems.error(1, None, "empty file: a header row is required")
            problems.raise_if_any()
            return
        except _NotUtf8 as exc:
            problems.error(exc.line, None, exc.message)
            problems.raise_if_any()
            return
        except csv.Error as exc:
            problems.error(1, None, f"unreadable CSV: {exc}")
            problems.raise_if_any()
            return
        header = [h.strip() for h in header]
        seen: set[str] = set()
        for name in header:
            if name not in known:
                problems.error(1, name or "(empty)", f"unknown column {name!r}")
            elif name in seen:
                problems.error(1, name, f"column {name!r} appears twice")
            seen.add(name)
        for name in required:
            if name not in seen:
                problems.error(1, name, f"missing required column {name!r}")
        problems.raise_if_any()
        header_out[:] = header
        width = len(header)
        try:
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != width:
                    problems.error(line, None, f"expected {width} fields, found {len(row)}")
                    continue
                if "'" in "".join(row):  # rare: a cell quoted against formulas (csvsafe)
                    row = [unquote_cell(cell) for cell in row]
                yield line, row
        except _NotUtf8 as exc:
            problems.error(exc.line, None, exc.message)
        except csv.Error as exc:
            problems.error(reader.line_num, None, f"unreadable CSV: {exc}")


class _NotUtf8(ValueError):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _text_lines(handle: BinaryIO) -> Iterator[str]:
    """The file's lines as text, each decoded on its own: a byte that is not UTF-8 is
    reported on its real line (a text-mode file decodes 8 KB ahead, so the error came up
    on whatever line was being parsed, often the header). A UTF-8 byte order mark is
    dropped; line ends are kept and a lone ``\\r`` ends a line, as ``newline=""`` does."""
    count = 0
    for raw in handle:
        try:
            text = raw.decode("utf-8-sig" if count == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            start = exc.start + (3 if count == 0 and raw.startswith(codecs.BOM_UTF8) else 0)
            raise _NotUtf8(count + 1, f"byte 0x{raw[start]:02x} at byte {start + 1} is not "
                           "UTF-8 (save the file as UTF-8)") from None
        pieces = _LINE.findall(text) if "\r" in text[:-2] else (text,)
        for piece in pieces:
            count += 1
            yield piece


def _audit(
    now: datetime, actor: str, action: str, object_type: str, object_id: str, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "time": now,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "detail": detail,
    }


class _AccountWriter:
    """Upserts one batch of validated accounts (and their debtors) on ``conn``."""

    def __init__(self, conn: Connection, cipher: DataCipher, now: datetime, actor: str, file: str):
        self.conn = conn
        self.cipher = cipher
        self.now = now
        self.actor = actor
        self.file = file
        self.inserted = self.updated = self.unchanged = 0
        cols = account_t.c
        self._update_clear = (
            account_t.update()
            .where(cols.account_id == sa.bindparam("b_account_id"))
            .values({**{f: sa.bindparam(f) for f in (*CLEAR_FIELDS, "updated_at")}, **REPLAN})
        )
        personal = INDEX_FIELDS + tuple(f"{f}_enc" for f in PERSONAL_FIELDS)
        self._update_full = (
            account_t.update()
            .where(cols.account_id == sa.bindparam("b_account_id"))
            .values({**{f: sa.bindparam(f) for f in (*CLEAR_FIELDS, *personal, "updated_at")},
                     **REPLAN})
        )
        self._update_debtor = (
            debtor_t.update()
            .where(debtor_t.c.id == sa.bindparam("b_id"))
            .values(
                {
                    f: sa.bindparam(f)
                    for f in (
                        "name_enc",
                        "phone_enc",
                        "email_enc",
                        "phone_index",
                        "email_index",
                        "personal_digest",
                        "updated_at",
                    )
                }
            )
        )

        self._insert_accounts = BulkInsert(account_t, ACCOUNT_INSERT, conn.dialect)
        self._insert_debtors = BulkInsert(debtor_t, DEBTOR_INSERT, conn.dialect)

    def write(self, batch: list[Prepared]) -> None:
        now = self.now
        existing = {
            row.account_id: row
            for row in self.conn.execute(
                sa.select(
                    account_t.c.account_id,
                    account_t.c.personal_digest,
                    *[account_t.c[f] for f in CLEAR_FIELDS],
                ).where(account_t.c.account_id.in_([p[0] for p in batch]))
            )
        }
        inserts: list[tuple[Any, ...]] = []
        clear_updates: list[dict[str, Any]] = []
        full_updates: list[dict[str, Any]] = []
        audits: list[dict[str, Any]] = []
        for account_id, clear, enc, indexes, _ in batch:
            old = existing.get(account_id)
            if old is None:
                inserts.append((account_id, *clear, *enc, *indexes, "open", now, now))
                continue
            changed = [
                f for f, value in zip(CLEAR_FIELDS, clear, strict=True) if getattr(old, f) != value
            ]
            personal_changed = old.personal_digest != indexes[2]
            if not changed and not personal_changed:
                self.unchanged += 1
                continue
            self.updated += 1
            row = {"b_account_id": account_id, **dict(zip(CLEAR_FIELDS, clear, strict=True))}
            row["updated_at"] = now
            if personal_changed:
                row.update(zip(ENCRYPTED_FIELDS, enc, strict=True))
                row.update(zip(INDEX_FIELDS, indexes, strict=True))
                full_updates.append(row)
                changed.append("personal_data")
            else:
                clear_updates.append(row)
            audits.append(
                _audit(
                    now,
                    self.actor,
                    "account.updated",
                    "account",
                    account_id,
                    {"fields": changed, "file": self.file},
                )
            )
        self._write_debtors(batch)
        if inserts:
            self._insert_accounts(self.conn, inserts)
            self.inserted += len(inserts)
        if clear_updates:
            self.conn.execute(self._update_clear, clear_updates)
        if full_updates:
            self.conn.execute(self._update_full, full_updates)
        if audits:
            self.conn.execute(audit_t.insert(), audits)

    def _write_debtors(self, batch: list[Prepared]) -> None:
        latest: dict[str, Prepared] = {}
        for prepared in batch:  # the last account in the file speaks for the debtor
            latest[prepared[1][0]] = prepared
        existing = {
            row.id: row.personal_digest
            for row in self.conn.execute(
                sa.select(debtor_t.c.id, debtor_t.c.personal_digest).where(
                    debtor_t.c.id.in_(list(latest))
                )
            )
        }
        now = self.now
        inserts: list[tuple[Any, ...]] = []
        updates: list[dict[str, Any]] = []
        for debtor_id, (_, _, enc, indexes, digest) in latest.items():
            if debtor_id in existing and existing[debtor_id] == digest:
                continue
            values = (enc[0], enc[1], enc[2], indexes[0], indexes[1], digest)
            if debtor_id in existing:
                updates.append(
                    {
                        "b_id": debtor_id,
                        **dict(zip(DEBTOR_INSERT[1:7], values, strict=True)),
                        "updated_at": now,
                    }
                )
            else:
                inserts.append((debtor_id, *values, now, now))
        if inserts:
            self._insert_debtors(self.conn, inserts)
        if updates:
            self.conn.execute(self._update_debtor, updates)


def prepare_account(cipher: DataCipher, account: Account) -> Prepared:
    """Everything the writer needs of one valid account, computed once: the clear
    columns, the tokens, the blind indexes and both fingerprints (account, debtor).
    Tokens are made eagerly (an unchanged row discards them): the step needs no
    database, so it could move to another process."""
    personal = _personal_of(account)
    encrypt = cipher.encrypt
    index = cipher.index
    return (
        account.account_id,
        _clear_of(account),
        tuple(encrypt(value) for value in personal),
        (index(account.phone, "phone"), index(account.email, "email"), cipher.digest(personal),
         phone_zones_text(account)),  # found with the check of the number
        cipher.digest(personal[:3]),  # name, phone, email: the debtor's
    )


def _prepare_chunk(
    cipher: DataCipher, header: list[str], source: str, chunk: list[tuple[int, list[str]]]
) -> list[tuple[int, Prepared | None, list[Problem]]]:
    """Validate and prepare consecutive rows: ``(line, prepared or None, problems)``."""
    out: list[tuple[int, Prepared | None, list[Problem]]] = []
    for line, fields in chunk:
        account, found = parse_account(
            dict(zip(header, fields, strict=True)), source=source, line=line
        )
        out.append((line, None if account is None else prepare_account(cipher, account), found))
    return out


def _prepared_rows(
    path: Path,
    source: str,
    cipher: DataCipher,
    problems: _Problems,
) -> Iterator[tuple[int, Prepared | None, list[Problem]]]:
    """``(line, prepared or None, problems)`` for every data row, in file order."""
    header: list[str] = []
    lines = _row_lists(path, ACCOUNT_COLUMNS, REQUIRED_ACCOUNT_COLUMNS, problems, header)
    for chunk in _chunked(lines, CHUNK_ROWS):
        yield from _prepare_chunk(cipher, header, source, chunk)


def _chunked(
    items: Iterator[tuple[int, list[str]]], size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    chunk: list[tuple[int, list[str]]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class SeenKeys:
    """The keys met so far in a file, to report duplicates, kept in a temporary SQLite
    table on disk rather than in a set: a million-row import holds a few megabytes of
    page cache, not a million strings. ``first(key, line)`` is the line that had ``key``
    first, or ``None`` (and ``key`` is now remembered at ``line``)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="outreach-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.db", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def first(self, key: str, line: int) -> int | None:
        if self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, line)).rowcount:
            return None
        row = self._db.execute("SELECT line FROM seen WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> SeenKeys:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def import_accounts(
    engine: Engine,
    path: str | Path,
    cipher: DataCipher,
    *,
    dry_run: bool = False,
    actor: str = "cli",
    progress: Progress | None = None,
    clock: Clock | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Upsert every account of the CSV file at ``path``; raise ``InputError`` (and write
    nothing) if any row is bad. ``dry_run`` validates and counts, then rolls back."""
    path = Path(path)
    source = str(path)
    problems = _Problems(source)
    now = (clock or SystemClock()).now().astimezone(UTC)
    rows = 0
    with engine.connect() as conn, SeenKeys() as seen:
        transaction = conn.begin()
        try:
            writer = _AccountWriter(conn, cipher, now, actor, path.name)
            batch: list[Prepared] = []
            for line, prepared, found in _prepared_rows(path, source, cipher, problems):
                rows += 1
                for problem in found:
                    problems.add(problem)
                if prepared is None:
                    continue
                account_id = prepared[0]
                first = seen.first(account_id, line)
                if first is not None:
                    problems.error(line, "account_id", f"duplicate account_id {account_id!r} "
                                   f"in file (first on line {first})")
                    continue
                if problems.count:
                    continue  # keep validating, stop writing: nothing will be kept
                batch.append(prepared)
                if len(batch) >= batch_size:
                    writer.write(batch)
                    batch = []
                    if progress:
                        progress(rows)
            if batch and not problems.count:
                writer.write(batch)
            if progress:
                progress(rows)
            problems.raise_if_any()
            result = ImportResult(writer.inserted, writer.updated, writer.unchanged, dry_run)
            conn.execute(
                audit_t.insert(),
                [
                    _audit(
                        now,
                        actor,
                        "import.accounts",
                        "file",
                        path.name,
                        {
                            "file": str(path),
                            "rows": rows,
                            "inserted": result.inserted,
                            "updated": result.updated,
                            "unchanged": result.unchanged,
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
    return result


# -- payments ----------------------------------------------------------------------


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
    problems = _Problems(source)
    now = (clock or SystemClock()).now().astimezone(UTC)
    inserted = skipped = rows = 0

    def write(conn: Connection, batch: list[tuple[int, dict[str, Any]]]) -> None:
        nonlocal inserted, skipped
        ids = [p["payment_id"] for _, p in batch]
        known = set(
            conn.scalars(sa.select(payment_t.c.payment_id).where(payment_t.c.payment_id.in_(ids)))
        )
        account_ids = {p["account_id"] for _, p in batch}
        accounts = {
            row.account_id: row
            for row in conn.execute(
                sa.select(account_t.c.account_id, account_t.c.balance, account_t.c.currency).where(
                    account_t.c.account_id.in_(account_ids)
                )
            )
        }
        balances: dict[str, Decimal] = {}
        new: list[dict[str, Any]] = []
        for line, payment in batch:
            account = accounts.get(payment["account_id"])
            if account is None:
                problems.error(line, "account_id", f"unknown account {payment['account_id']!r}")
                continue
            if payment["currency"] and payment["currency"] != account.currency:
                problems.error(
                    line,
                    "currency",
                    f"currency {payment['currency']} differs from the account's {account.currency}",
                )
                continue
            if payment["payment_id"] in known:
                skipped += 1
                continue
            balance = balances.get(account.account_id, account.balance)
            balances[account.account_id] = max(balance - payment["amount"], Decimal("0.00"))
            new.append(
                {
                    **payment,
                    "currency": payment["currency"] or account.currency,
                    "source": "import",
                    "created_at": now,
                }
            )
        if problems.count:
            return
        if new:
            conn.execute(payment_t.insert(), new)
            inserted += len(new)
        if balances:
            conn.execute(
                account_t.update()
                .where(account_t.c.account_id == sa.bindparam("b_account_id"))
                .values(
                    balance=sa.bindparam("balance"),
                    status=sa.case(
                        (sa.bindparam("closed", type_=sa.Boolean), "closed"),
                        else_=account_t.c.status,
                    ),
                    updated_at=sa.bindparam("updated_at"),
                    **REPLAN,
                ),
                [
                    {
                        "b_account_id": aid,
                        "balance": bal,
                        "closed": bal <= 0,
                        "updated_at": now,
                    }
                    for aid, bal in balances.items()
                ],
            )

    with engine.connect() as conn, SeenKeys() as seen:
        transaction = conn.begin()
        try:
            batch: list[tuple[int, dict[str, Any]]] = []
            for line, raw in _rows(path, PAYMENT_COLUMNS, REQUIRED_PAYMENT_COLUMNS, problems):
                rows += 1
                payment = _parse_payment(raw, line, problems, now)
                if payment is None:
                    continue
                first = seen.first(payment["payment_id"], line)
                if first is not None:
                    problems.error(line, "payment_id", f"duplicate payment_id "
                                   f"{payment['payment_id']!r} in file (first on line {first})")
                    continue
                batch.append((line, payment))
                if len(batch) >= batch_size:
                    write(conn, batch)
                    batch = []
                    if progress:
                        progress(rows)
            if batch:
                write(conn, batch)
            problems.raise_if_any()
            conn.execute(
                audit_t.insert(),
                [
                    _audit(
                        now,
                        actor,
                        "import.payments",
                        "file",
                        path.name,
                        {"file": str(path), "rows": rows, "inserted": inserted, "skipped": skipped},
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
    return PaymentImportResult(inserted, skipped, dry_run)


def _parse_payment(raw: dict[str, str], line: int, problems: _Problems, now: datetime
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


def upsert_account(
    conn: Connection, cipher: DataCipher, account: Account, *, now: datetime, actor: str
) -> str:
    """Insert or update one validated account (the REST API's path, same as a CSV row):
    ``inserted``, ``updated`` or ``unchanged``, with the same audit trail."""
    writer = _AccountWriter(conn, cipher, now, actor, "api")
    writer.write([prepare_account(cipher, account)])
    if writer.inserted:
        return "inserted"
    return "updated" if writer.updated else "unchanged"
