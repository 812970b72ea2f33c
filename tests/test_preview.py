"""`outreach templates preview`: the letter PDF reads back with its fields, in both
languages, with Babel's money and dates."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app

ROOT = Path(__file__).resolve().parent.parent


def preview(tmp_path: Path, *args: str) -> tuple[str, dict[str, Path]]:
    _register_all()
    result = CliRunner().invoke(app, ["templates", "preview", *args, "--out", str(tmp_path),
                                      "--config", str(ROOT / "config"),
                                      "--templates", str(ROOT / "templates")])
    assert result.exit_code == 0, result.output
    files = {p.suffix: p for p in tmp_path.iterdir()}
    return result.stdout, files


def pdf_text(path: Path) -> str:
    return "".join(page.extract_text() for page in PdfReader(path).pages).replace("\n", "")


@pytest.mark.parametrize(
    ("locale", "fields"),
    [
        ("zh-CN", ["催 款 函", "张伟", "¥1,234.50", "2025年12月1日", "REF-2026-000123",
                   "还款期限", "6222", "/p/", "投诉"]),
        ("en-US", ["REF-", "$1,234.50", "December 1, 2025", "/p/"]),
    ],
)
def test_letter_preview_pdf_reads_back(tmp_path: Path, locale: str, fields: list[str]) -> None:
    stdout, files = preview(tmp_path, "demand_letter", "--channel", "letter",
                            "--locale", locale)
    assert str(files[".pdf"]) in stdout.replace("\n", "")
    text = pdf_text(files[".pdf"])
    missing = [f for f in fields if f.replace(" ", "") not in text.replace(" ", "")]
    assert not missing, text


def test_sms_preview_prints_the_text(tmp_path: Path) -> None:
    stdout, files = preview(tmp_path, "reminder", "--channel", "sms",
                            "--locale", "zh-CN")
    assert ".pdf" not in files
    assert "退订" in stdout
