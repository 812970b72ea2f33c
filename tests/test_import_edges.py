"""Hostile or broken CSV input to ``outreach import``: each problem names its real line
and column, and the file is rejected whole (through the CLI, on both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_import import (  # noqa: F401
    GOOD,
    count,
    import_payments_after_one_account,
    run,
    url,
    write_rows,
)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("name", "Jane\x00Doe", "control character U+0000"),
        ("name", "Jane\x1b[31mDoe", "control character U+001B"),
        ("address_line1", "12 Elm\x85Street", "control character U+0085"),
        ("city", "New\u2028York", "control character U+2028"),
        ("reference", "R\x7f1", "control character U+007F"),
        ("name", "J" * 201, "too long: 201 characters (at most 200)"),
        ("account_id", "A" * 101, "too long: 101 characters (at most 100)"),
    ],
)
def test_control_characters_and_oversized_values_reject_the_file(
    url: str,
    data_keys: str,
    tmp_path: Path,  # noqa: F811
    column: str,
    value: str,
    message: str,
) -> None:
    rows = [dict(GOOD, account_id=f"A{i}", phone=f"+1212555010{i}") for i in range(3)]
    rows[1][column] = value
    path = write_rows(tmp_path / "bad.csv", rows)
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 2, result.stdout
    assert f"{path}:3: {column}: {message}" in result.stderr, result.stderr
    assert value not in result.stderr  # never quoted back
    assert count(url, "account") == 0


def test_a_control_character_in_a_payment_rejects_the_file(
    url: str, data_keys: str, tmp_path: Path
) -> None:  # noqa: F811
    payments = import_payments_after_one_account(
        url, data_keys, tmp_path, "P1,A1,50.00,2026-03-01", "P\x002,A1,5.00,2026-03-02"
    )
    result = run(["import", "payments", str(payments)], url, None)
    assert result.exit_code == 2
    assert f"{payments}:3: payment_id: control character U+0000" in result.stderr, result.stderr
    assert count(url, "payment") == 0


@pytest.mark.parametrize("bad_line", [2, 3, 400])
def test_a_byte_that_is_not_utf8_is_reported_on_its_own_line(
    url: str, data_keys: str, tmp_path: Path, bad_line: int
) -> None:  # noqa: F811
    """A text-mode file decodes 8 KB ahead: a latin-1 'é' on line 2 was reported on line 1
    (the header being parsed), one on line 400 on some line before it."""
    rows = [dict(GOOD, account_id=f"A{i}", phone="") for i in range(bad_line + 10)]
    rows[bad_line - 2]["name"] = "Ren\u00e9 Dupont"
    path = write_rows(tmp_path / "latin1.csv", rows)
    path.write_bytes(path.read_bytes().replace("Ren\u00e9".encode(), b"Ren\xe9"))
    result = run(["import", "accounts", str(path)], url, data_keys)
    assert result.exit_code == 2
    at = len(f"{rows[bad_line - 2]['account_id']},D1,Ren") + 1
    assert f"{path}:{bad_line}: byte 0xe9 at byte {at} is not UTF-8" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert count(url, "account") == 0
    with_bom = tmp_path / "bom.csv"  # a UTF-8 byte order mark (Excel's "CSV UTF-8") is fine
    with_bom.write_bytes(
        b"\xef\xbb\xbf"
        + write_rows(tmp_path / "ok.csv", rows[:3]).read_bytes().replace(b"\r\n", b"\r")
    )
    assert run(["import", "accounts", str(with_bom)], url, data_keys).exit_code == 0
    assert count(url, "account") == 3
