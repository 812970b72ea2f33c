"""Every CSV the product writes is safe to open in a spreadsheet (``orchestrator.core.csvsafe``):
the print vendor's letter manifest, written by the real daemon, and the import-format
portfolio, read back by the real ``outreach import``."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import CREDITORS, ROOT, TEST_SECRET  # noqa: I001 - tests/support.py

from orchestrator.core.account import ACCOUNT_COLUMNS
from orchestrator.core.crypto import DataCipher
from orchestrator.simulation.sample import generate_accounts, write_csv
from orchestrator.store import db
from orchestrator.store.tables import AccountRow, table_of

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
NAME = '=HYPERLINK("http://evil.example/","Pay here")'
LETTERS = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: letter, channel: letter, template: reminder_letter, every: 1d, at: "10:00"}
"""


def outreach(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_letter_manifest_never_holds_a_formula(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "cadences.yaml").write_text(LETTERS)
    (config / "channels.yaml").write_text(
        f"letter: {{adapter: pdf_batch, out_dir: '{tmp_path / 'letters'}'}}\n"
    )
    (config / "creditors.yaml").write_text(CREDITORS)
    accounts = tmp_path / "a.csv"
    with accounts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "account_id",
                "name",
                "address_line1",
                "city",
                "region",
                "postal_code",
                "country",
                "currency",
                "balance",
                "due_date",
                "creditor",
                "reference",
            ]
        )
        writer.writerow(
            [
                "-A0",
                NAME,
                "1 Main St",
                "@SUM(1+1)",
                "NY",
                "10001",
                "US",
                "USD",
                "100.00",
                "2026-03-01",
                "acme",
                "-1.50",
            ]
        )
        writer.writerow(
            [
                "A1",
                "Pat Doe",
                "2 Main St",
                "+1 (cmd)",
                "NY",
                "10001",
                "US",
                "USD",
                "100.00",
                "2026-03-01",
                "acme",
                "R1",
            ]
        )
    env = {
        "PATH": "/usr/bin:/bin",
        "OUTREACH_DATABASE_URL": db_url,
        "OUTREACH_DATA_KEYS": Fernet.generate_key().decode(),
        "OUTREACH_SECRET_KEY": TEST_SECRET,
        "OUTREACH_CONFIG": str(config),
        "OUTREACH_PUBLIC_URL": "https://outreach.example.com",  # letters reach people
        "OUTREACH_TEMPLATES": str(ROOT / "templates"),
    }
    for step in (
        ("db", "upgrade"),
        ("import", "accounts", str(accounts)),
        ("run", "--once", "--now", T.isoformat()),
    ):
        done = outreach(*step, env=env)
        assert done.returncode == 0, (step, done.stderr)
    manifest = tmp_path / "letters" / "2026-03-10" / "manifest.csv"
    cells = {r["account_id"]: r for r in csv.DictReader(manifest.open(encoding="utf-8"))}
    assert set(cells) == {"'-A0", "A1"}
    assert cells["'-A0"]["mail_to"].startswith("'" + NAME + ",")
    assert cells["A1"]["mail_to"].startswith("Pat Doe, ")  # a plain name as it is
    for row in cells.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert cells["A1"]["pages"].isdigit()  # numbers stay numbers


def test_the_portfolio_file_is_safe_and_imports_as_written(db_url: str, tmp_path: Path) -> None:
    accounts = list(generate_accounts(3, today=date(2026, 3, 2)))
    accounts[0].name = NAME
    accounts[1].address_line1 = "-12 Elm Street"
    path = tmp_path / "portfolio.csv"
    write_csv(accounts, path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert rows[0]["name"] == "'" + NAME
    assert rows[1]["address_line1"] == "'-12 Elm Street"
    assert all(
        not r[c].startswith(("=", "-", "@"))
        for r in rows
        for c in ACCOUNT_COLUMNS
        if r[c] and not r[c].lstrip("+-").replace(".", "").isdigit()
    )
    keys = Fernet.generate_key().decode()
    env = {"PATH": "/usr/bin:/bin", "OUTREACH_DATABASE_URL": db_url, "OUTREACH_DATA_KEYS": keys}
    assert outreach("db", "upgrade", env=env).returncode == 0
    done = outreach("import", "accounts", str(path), env=env)
    assert done.returncode == 0, done.stderr
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        stored = {r.account_id: r for r in conn.execute(sa.select(table_of(AccountRow)))}
    engine.dispose()
    cipher = DataCipher([keys])
    assert cipher.decrypt(stored[accounts[0].account_id].name_enc) == NAME
    assert cipher.decrypt(stored[accounts[1].account_id].address_line1_enc) == "-12 Elm Street"
    assert stored[accounts[2].account_id].balance == accounts[2].balance
