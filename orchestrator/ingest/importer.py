"""CSV → validated rows → upsert, all rows or none (docs/csv.md).

Files are streamed with the ``csv`` module and written in batches, all inside one
transaction: any bad row anywhere rolls the whole file back, and every bad row is
reported (``FILE:LINE: COLUMN: message``). Re-importing a file is an upsert by
``account_id``; a keyed digest of the personal fields tells whether they changed
without decrypting what is stored.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.clock import Clock, SystemClock
from orchestrator.core.account import (
    ACCOUNT_COLUMNS,
    PERSONAL_FIELDS,
    REQUIRED_ACCOUNT_COLUMNS,
    Account,
)
from orchestrator.core.crypto import DataCipher
from orchestrator.core.zones import phone_zones_text
from orchestrator.errors import Problem
from orchestrator.ingest.csvfile import (
    BATCH_SIZE,
    Problems,
    Progress,
    SeenKeys,
    audit_row,
    read_row_lists,
)
from orchestrator.ingest.validation import parse_account
from orchestrator.store.bulk import BulkInsert
from orchestrator.store.facts import replan
from orchestrator.store.tables import AccountRow, AuditLog, Debtor, table_of

__all__ = [
    "ImportResult",
    "import_accounts",
]

# Clear columns that an import sets; compared one by one on re-import.
CLEAR_FIELDS = (
    "debtor_id",
    "balance",
    "currency",
    "due_date",
    "creditor",
    "reference",
    "segment",
    "product",
    "risk_score",
    "principal",
    "interest",
    "fees",
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

account_t = table_of(AccountRow)
debtor_t = table_of(Debtor)
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
            .values({f: sa.bindparam(f) for f in (*CLEAR_FIELDS, "updated_at")})
        )
        personal = INDEX_FIELDS + tuple(f"{f}_enc" for f in PERSONAL_FIELDS)
        self._update_full = (
            account_t.update()
            .where(cols.account_id == sa.bindparam("b_account_id"))
            .values({f: sa.bindparam(f) for f in (*CLEAR_FIELDS, *personal, "updated_at")})
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
                audit_row(
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
        # What changed is planned again at the next round.
        replan(self.conn, [u["b_account_id"] for u in (*clear_updates, *full_updates)])
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
        (
            index(account.phone, "phone"),
            index(account.email, "email"),
            cipher.digest(personal),
            phone_zones_text(account),
        ),  # found with the check of the number
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
    problems: Problems,
) -> Iterator[tuple[int, Prepared | None, list[Problem]]]:
    """``(line, prepared or None, problems)`` for every data row, in file order."""
    header: list[str] = []
    lines = read_row_lists(path, ACCOUNT_COLUMNS, REQUIRED_ACCOUNT_COLUMNS, problems, header)
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
    problems = Problems(source)
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
                    problems.error(
                        line,
                        "account_id",
                        f"duplicate account_id {account_id!r} in file (first on line {first})",
                    )
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
                    audit_row(
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
