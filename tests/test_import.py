"""``outreach import``: all rows or none, upsert, no clear personal data at rest,
key rotation, idempotent payments — through the CLI, on both backends."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

from orchestrator.cli import data
from orchestrator.core.account import ACCOUNT_COLUMNS
from orchestrator.simulation.sample import generate_accounts, write_csv
from orchestrator.store import db, tables

GOOD = {
    "account_id": "A1",
    "debtor_id": "D1",
    "name": "Jane Doe",
    "phone": "(212) 555-0100",
    "email": "Jane.Doe@example.com",
    "address_line1": "12 Elm Street",
    "city": "New York",
    "region": "NY",
    "country": "US",
    "timezone": "America/New_York",
    "locale": "en-US",
    "currency": "USD",
    "balance": "250.00",
    "due_date": "2026-02-20",
    "consent_sms": "yes",
}


def cli() -> typer.Typer:
    app = typer.Typer()
    data.register(app)
    return app


def run(args: list[str], url: str, keys: str | None) -> Result:
    env = {"OUTREACH_DATABASE_URL": url, "OUTREACH_DATA_KEYS": keys or ""}
    return CliRunner().invoke(cli(), args, env=env)


def write_rows(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(ACCOUNT_COLUMNS)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


@pytest.fixture
def url(db_url: str) -> str:
    db.upgrade(db_url)
    return db_url


def count(url: str, table: str) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def show(url: str, keys: str, account_id: str) -> dict[str, Any]:
    result = run(["account", "show", account_id, "--json"], url, keys)
    assert result.exit_code == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def test_import_then_reimport_is_an_upsert(url: str, data_keys: str, tmp_path: Path) -> None:
    second = dict(GOOD, account_id="A2", debtor_id="D1", phone="+12125550123")
    path = write_rows(tmp_path / "a.csv", [GOOD, second])
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 0, result.stderr
    assert "2 new" in result.stdout
    assert count(url, "account") == 2 and count(url, "debtor") == 1

    changed = dict(GOOD, balance="199.99", name="Jane Q Doe")
    path = write_rows(tmp_path / "b.csv", [changed, second])
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 0, result.stderr
    assert "0 new, 1 updated, 1 unchanged" in result.stdout
    assert count(url, "account") == 2
    assert show(url, data_keys, "A1")["balance"] == "199.99"

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            audit_t = tables.table_of(tables.AuditLog)
            audit = conn.execute(sa.select(audit_t).order_by(audit_t.c.id)).all()
    finally:
        engine.dispose()
    actions = [a.action for a in audit]
    assert actions.count("import.accounts") == 2
    updated = [a for a in audit if a.action == "account.updated"]
    assert [a.object_id for a in updated] == ["A1"]
    assert set(updated[0].detail["fields"]) == {"balance", "personal_data"}


def test_dry_run_writes_nothing(url: str, data_keys: str, tmp_path: Path) -> None:
    path = write_rows(tmp_path / "a.csv", [GOOD])
    result = run(["import", "accounts", str(path), "--dry-run"], url, data_keys)
    assert result.exit_code == 0, result.stderr
    assert "1 new" in result.stdout
    assert count(url, "account") == 0


BAD_ROWS = [
    ("phone", {"phone": "555-01"}),
    ("due_date", {"due_date": "2026-02-30"}),
    ("due_date", {"due_date": "0001-01-01"}),  # the planner's date arithmetic overflowed
    ("due_date", {"due_date": "9999-12-31"}),
    ("balance", {"balance": "-5.00"}),
    ("balance", {"balance": "lots"}),
    ("currency", {"currency": "XXQ"}),
    ("timezone", {"timezone": "America/Atlantis"}),
    ("account_id", {"account_id": "A0"}),  # duplicate of the first row
]


@pytest.mark.parametrize(
    ("column", "change"), BAD_ROWS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD_ROWS)]
)
def test_one_bad_row_rejects_the_file(
    url: str, data_keys: str, tmp_path: Path, column: str, change: dict[str, str]
) -> None:
    rows = [dict(GOOD, account_id=f"A{i}", phone=f"+1212555010{i}") for i in range(3)]
    rows[2].update(change)
    path = write_rows(tmp_path / "bad.csv", rows)
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 2
    assert f"{path}:4: {column}: " in result.stderr, result.stderr
    assert count(url, "account") == 0 and count(url, "debtor") == 0


def test_a_duplicate_names_the_line_that_had_the_id_first(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    rows = [dict(GOOD, account_id=f"A{i}", phone=f"+1212555010{i}") for i in range(4)]
    rows[3]["account_id"] = "A1"
    path = write_rows(tmp_path / "dup.csv", rows)
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 2
    assert f"{path}:5: account_id: duplicate account_id 'A1' in file (first on line 3)" in (
        result.stderr
    ), result.stderr


def test_unknown_column_rejects_the_file(url: str, data_keys: str, tmp_path: Path) -> None:
    path = write_rows(tmp_path / "bad.csv", [GOOD], [*ACCOUNT_COLUMNS, "shoe_size"])
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 2
    assert f"{path}:1: shoe_size: unknown column" in result.stderr
    assert count(url, "account") == 0


def test_missing_required_column_rejects_the_file(url: str, data_keys: str, tmp_path: Path) -> None:
    columns = [c for c in ACCOUNT_COLUMNS if c != "balance"]
    path = write_rows(tmp_path / "bad.csv", [GOOD], columns)
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 2
    assert f"{path}:1: balance: missing required column" in result.stderr
    assert count(url, "account") == 0


def test_bad_row_after_a_full_batch_rolls_everything_back(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    from orchestrator.core.crypto import DataCipher
    from orchestrator.errors import InputError
    from orchestrator.ingest.importer import import_accounts

    rows = [dict(GOOD, account_id=f"A{i}", phone="") for i in range(25)]
    rows[-1]["balance"] = "x"
    path = write_rows(tmp_path / "bad.csv", rows)
    engine = db.make_engine(url)
    try:
        with pytest.raises(InputError):
            import_accounts(engine, path, DataCipher([data_keys]), batch_size=10)
    finally:
        engine.dispose()
    assert count(url, "account") == 0


def test_import_needs_keys(url: str, tmp_path: Path) -> None:
    path = write_rows(tmp_path / "a.csv", [GOOD])
    result = run(["import", "accounts", str(path)], url, None)
    assert result.exit_code == 2
    assert "OUTREACH_DATA_KEYS" in result.stderr


def _dump(url: str) -> str:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return "\n".join(conn.iterdump())
        finally:
            conn.close()
    name = url.rsplit("/", 1)[1]
    pg_dump = "/usr/bin/pg_dump"
    if not Path(pg_dump).exists():
        pg_dump = next(Path("/usr/lib/postgresql").glob("*/bin/pg_dump")).as_posix()
    return subprocess.run(
        [pg_dump, "-h", "127.0.0.1", "-U", "postgres", "--data-only", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_dump_holds_no_clear_personal_data(url: str, data_keys: str, tmp_path: Path) -> None:
    accounts = list(generate_accounts(60, today=date(2026, 3, 2)))
    write_csv(accounts, tmp_path / "sample.csv")
    result = run(["import", "accounts", str(tmp_path / "sample.csv")], url, data_keys)
    assert result.exit_code == 0, result.stderr
    dump = _dump(url)
    assert "U-000001" in dump or "C-000001" in dump  # the dump does hold the accounts
    for account in accounts:
        for value in (account.phone, account.email, account.name, account.address_line1):
            if value:
                assert value not in dump, f"{value!r} in clear in the dump"
        if account.phone:
            assert account.phone.lstrip("+") not in dump


def test_key_rotation(url: str, tmp_path: Path) -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    path = write_rows(tmp_path / "a.csv", [GOOD])
    assert run(["import", "accounts", str(path)], url, k1).exit_code == 0
    before = show(url, k1, "A1")

    result = run(["keys", "rotate"], url, f"{k2},{k1}")
    assert result.exit_code == 0, result.stderr
    assert show(url, k2, "A1") == before

    from orchestrator.core.crypto import DataCipher
    from orchestrator.store.accounts import load_account

    cipher = DataCipher([k2])
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            account = load_account(conn, cipher, "A1")
            row = conn.execute(sa.select(tables.table_of(tables.AccountRow))).one()
    finally:
        engine.dispose()
    assert account is not None
    assert (account.name, account.phone, account.email) == (
        "Jane Doe",
        "+12125550100",
        "jane.doe@example.com",
    )
    assert account.address_line1 == "12 Elm Street"
    assert row.phone_index == cipher.index("+12125550100")
    # Re-importing the same file after rotation finds nothing changed.
    result = run(["import", "accounts", str(path)], url, k2)
    assert "1 unchanged" in result.stdout, result.stdout + result.stderr


def test_rotation_without_the_old_key_changes_nothing(url: str, tmp_path: Path) -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    path = write_rows(tmp_path / "a.csv", [GOOD])
    assert run(["import", "accounts", str(path)], url, k1).exit_code == 0
    result = run(["keys", "rotate"], url, k2)
    assert result.exit_code == 2
    assert show(url, k1, "A1")["account_id"] == "A1"


def import_payments_after_one_account(url: str, keys: str, tmp_path: Path, *lines: str) -> Path:
    """Import the account ``A1`` (``GOOD``), then write these payment rows under the header."""
    path = write_rows(tmp_path / "a.csv", [GOOD])
    assert run(["import", "accounts", str(path)], url, keys).exit_code == 0
    payments = tmp_path / "p.csv"
    payments.write_text(
        "".join(f"{line}\n" for line in ["payment_id,account_id,amount,paid_at", *lines])
    )
    return payments


def test_payments_are_idempotent_and_close_a_paid_account(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    payments = import_payments_after_one_account(
        url, data_keys, tmp_path, "P1,A1,50.00,2026-03-01T10:00:00Z", "P2,A1,200.00,2026-03-03"
    )
    first = run(["import", "payments", str(payments)], url, None)
    assert first.exit_code == 0, first.stderr
    again = run(["import", "payments", str(payments)], url, None)
    assert again.exit_code == 0, again.stderr
    assert "0 payments; 2 already recorded" in again.stdout
    assert count(url, "payment") == 2
    shown = show(url, data_keys, "A1")
    assert shown["balance"] == "0.00" and shown["status"] == "closed"
    assert shown["payments"] == [
        {"amount": "50.00", "paid_at": "2026-03-01T10:00:00Z"},
        {"amount": "200.00", "paid_at": "2026-03-03T00:00:00Z"},
    ]


def test_payment_for_unknown_account_rejects_the_file(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    payments = import_payments_after_one_account(
        url,
        data_keys,
        tmp_path,
        "P1,A1,50.00,2026-03-01T10:00:00Z",
        "P2,NOPE,20.00,2026-03-01T10:00:00Z",
    )
    result = run(["import", "payments", str(payments)], url, None)
    assert result.exit_code == 2
    assert f"{payments}:3: account_id: unknown account 'NOPE'" in result.stderr
    assert count(url, "payment") == 0
    assert show(url, data_keys, "A1")["balance"] == "250.00"


@pytest.mark.parametrize(
    "paid_at",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+05:00",
        "1969-12-31T23:59:59Z",
        "9999-12-31",
        "2100-01-01T00:00:00Z",
    ],
)
def test_a_payment_out_of_range_rejects_the_file(
    url: str, data_keys: str, tmp_path: Path, paid_at: str
) -> None:
    """Before 1970 or more than a day ahead of the clock: a date the engine cannot
    reckon with, or a payment not yet made."""
    payments = import_payments_after_one_account(
        url, data_keys, tmp_path, "P1,A1,50.00,2026-03-01T10:00:00Z", f"P2,A1,20.00,{paid_at}"
    )
    result = run(["import", "payments", str(payments)], url, None)
    assert result.exit_code == 2, result.stdout
    assert f"{payments}:3: paid_at: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert count(url, "payment") == 0


def test_a_payment_too_large_to_store_rejects_the_file(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    """Money is NUMERIC(18, 2): PostgreSQL refused the row mid-import with a traceback."""
    payments = import_payments_after_one_account(
        url, data_keys, tmp_path, "P1,A1,99999999999999999999.99,2026-03-01T10:00:00Z"
    )
    result = run(["import", "payments", str(payments)], url, None)
    assert result.exit_code == 2
    assert f"{payments}:2: amount: amount too large" in result.stderr, result.stderr
    assert count(url, "payment") == 0


def test_many_rows_over_several_batches_then_an_unchanged_reimport(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    from orchestrator.core.crypto import DataCipher
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.store.accounts import load_account

    path = tmp_path / "many.csv"
    write_csv(generate_accounts(230, today=date(2026, 3, 2)), path)
    engine = db.make_engine(url)
    cipher = DataCipher([data_keys])
    try:
        first = import_accounts(engine, path, cipher, batch_size=50)
        assert (first.inserted, first.updated, first.unchanged) == (230, 0, 0)
        again = import_accounts(engine, path, DataCipher([data_keys]), batch_size=64)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 230)
        expected = {a.account_id: a for a in generate_accounts(230, today=date(2026, 3, 2))}
        with engine.connect() as conn:
            for account_id in list(expected)[::23]:
                got = load_account(conn, cipher, account_id)
                assert got is not None
                want = expected[account_id]
                for field in ("name", "phone", "email", "address_line1", "balance", "due_date"):
                    assert getattr(got, field) == getattr(want, field), field
                assert got.consent_voice == want.consent_voice
    finally:
        engine.dispose()
    assert count(url, "account") == 230


def test_every_bad_line_is_reported_even_when_values_repeat(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    rows = [dict(GOOD, account_id=f"A{i}", phone="555-01") for i in range(3)]
    rows[1]["balance"] = "1e40"
    path = write_rows(tmp_path / "bad.csv", rows)
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 2
    for line in (2, 3, 4):
        assert f"{path}:{line}: phone: invalid phone number '555-01'" in result.stderr
    assert f"{path}:3: balance: balance too large" in result.stderr
    assert count(url, "account") == 0 and count(url, "debtor") == 0


def test_a_duplicate_payment_in_the_file_rejects_it(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    payments = import_payments_after_one_account(
        url,
        data_keys,
        tmp_path,
        "P1,A1,50.00,2026-03-01T10:00:00Z",
        "P2,A1,20.00,2026-03-01T10:00:00Z",
        "P1,A1,50.00,2026-03-02T10:00:00Z",
    )
    result = run(["import", "payments", str(payments)], url, None)
    assert result.exit_code == 2
    assert (
        f"{payments}:4: payment_id: duplicate payment_id 'P1' in file (first on line 2)"
        in result.stderr
    ), result.stderr
    assert count(url, "payment") == 0


def test_phone_zones_are_stored_at_import_and_read_as_the_number_gives_them(
    url: str, data_keys: str, tmp_path: Path
) -> None:
    """The import stores each phone's zones, so that the daemon need not parse every
    number again: read back they are what the number gives, for every sample account
    (US, Chinese, mobile, landline); a changed phone stores its new zones; zones stored
    under another phonenumbers release are read from the number again."""
    from orchestrator.config.models import TimezonePolicy
    from orchestrator.core.crypto import DataCipher
    from orchestrator.core.zones import candidate_zones, phone_zones
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.store.accounts import load_account

    accounts = list(generate_accounts(120, today=date(2026, 3, 2), seed=11))
    path = tmp_path / "a.csv"
    write_csv(accounts, path)
    engine = db.make_engine(url)
    cipher = DataCipher([data_keys])
    policy = TimezonePolicy(sources=["phone", "address", "explicit"], default="UTC")
    try:
        import_accounts(engine, path, cipher)
        with engine.connect() as conn:
            loaded = [load_account(conn, cipher, a.account_id) for a in accounts]
        assert all(a is not None for a in loaded)
        zoned = [a for a in loaded if a is not None and a.phone_zones]
        assert len(zoned) > 60, "few numbers have zones: the test proves little"
        for got, want in zip(loaded, accounts, strict=True):
            assert got is not None and got.phone_zones == phone_zones(want.phone)
            assert candidate_zones(got, policy) == candidate_zones(want, policy)

        moved = dict(GOOD, phone="+8613800138000")  # New York to Beijing
        write_rows(tmp_path / "b.csv", [GOOD])
        import_accounts(engine, tmp_path / "b.csv", cipher)
        write_rows(tmp_path / "c.csv", [moved])
        import_accounts(engine, tmp_path / "c.csv", cipher)
        with engine.begin() as conn:
            a1 = load_account(conn, cipher, "A1")
            assert a1 is not None and a1.phone_zones == ("Asia/Shanghai",)
            conn.execute(
                sa.text(
                    "UPDATE account SET phone_zones = 'phonenumbers-0.0 Etc/UTC' "
                    "WHERE account_id = 'A1'"
                )
            )
            a1 = load_account(conn, cipher, "A1")
        assert a1 is not None and a1.phone_zones is None
        assert candidate_zones(a1, policy).primary.key == "Asia/Shanghai"
    finally:
        engine.dispose()
