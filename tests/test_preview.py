"""`outreach templates preview`: the letter PDF reads back with its fields, in both
languages, with Babel's money and dates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader
from support import ROOT, letter_library  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app


def preview(tmp_path: Path, *args: str) -> tuple[str, dict[str, Path]]:
    _register_all()
    result = CliRunner().invoke(
        app,
        [
            "templates",
            "preview",
            *args,
            "--out",
            str(tmp_path),
            "--config",
            str(ROOT / "config"),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert result.exit_code == 0, result.output
    files = {p.suffix: p for p in tmp_path.iterdir()}
    return result.stdout, files


def pdf_text(path: Path) -> str:
    return "".join(page.extract_text() for page in PdfReader(path).pages).replace("\n", "")


@pytest.mark.parametrize(
    ("locale", "fields"),
    [
        (
            "zh-CN",
            [
                "催 款 函",
                "张伟",
                "¥1,234.50",
                "2025年12月1日",
                "REF-2026-000123",
                "还款期限",
                "6222",
                "/p/",
                "投诉",
            ],
        ),
        ("en-US", ["REF-", "$1,234.50", "December 1, 2025", "/p/"]),
    ],
)
def test_letter_preview_pdf_reads_back(tmp_path: Path, locale: str, fields: list[str]) -> None:
    stdout, files = preview(tmp_path, "demand_letter", "--channel", "letter", "--locale", locale)
    assert str(files[".pdf"]) in stdout.replace("\n", "")
    text = pdf_text(files[".pdf"])
    missing = [f for f in fields if f.replace(" ", "") not in text.replace(" ", "")]
    assert not missing, text


def test_sms_preview_prints_the_text(tmp_path: Path) -> None:
    stdout, files = preview(tmp_path, "reminder", "--channel", "sms", "--locale", "zh-CN")
    assert ".pdf" not in files
    assert "退订" in stdout


def test_a_letter_cannot_put_the_environment_in_its_pdf(tmp_path: Path) -> None:
    """``<link rel="attachment" href="file:///proc/self/environ">`` embedded the daemon's
    environment, its keys with it, in the PDF. The printer loads no file outside the
    template directory now: the letter is printed without it."""
    templates = tmp_path / "templates"
    letter_library(templates, head='<link rel="attachment" href="file:///proc/self/environ">')
    marker = "marker-5f0c1e-not-for-the-printer"
    env = dict(os.environ, OUTREACH_DATA_KEYS=marker)  # in the printing process's environ
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "templates",
            "preview",
            "demand_letter",
            "--channel",
            "letter",
            "--locale",
            "en-US",
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(ROOT / "config"),
            "--templates",
            str(templates),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    pdf = tmp_path / "out" / "letter-demand_letter.en-US.pdf"
    reader = PdfReader(pdf)
    assert dict(reader.attachments) == {}
    assert marker.encode() not in pdf.read_bytes()
    assert "REF-2026-000123" in pdf_text(pdf)  # and the letter itself is there


def test_sms_preview_prints_segments_and_encoding(tmp_path: Path) -> None:
    """The Chinese reminder is UCS-2; the English one GSM-7: what the carrier bills."""
    zh, _ = preview(tmp_path, "reminder", "--channel", "sms", "--locale", "zh-CN")
    en, _ = preview(tmp_path, "reminder", "--channel", "sms", "--locale", "en-US")
    from channels.segments import segments

    for stdout, encoding in ((zh, "UCS-2"), (en, "GSM-7")):
        text = stdout.split("\n== ")[0].split("\n", 1)[1].split("\n\nSMS: ")[0]
        info = segments(text)
        assert info.encoding == encoding
        plural = "s" if info.segments != 1 else ""
        assert f"SMS: {info.segments} segment{plural}, {encoding}, {info.units} " in stdout


@pytest.mark.parametrize(
    ("channel", "to", "message"),
    [
        ("sms", "12345", "'12345' is not a phone number in E.164 form"),
        ("sms", "+1212555", "is not a phone number"),
        ("voice", "me@example.com", "is not a phone number"),
        ("email", "+12125550100", "'+12125550100' is not an email address"),
    ],
)
def test_send_test_refuses_an_address_the_channel_cannot_reach(
    channel: str, to: str, message: str
) -> None:
    _register_all()
    result = CliRunner().invoke(
        app,
        [
            "templates",
            "send-test",
            "reminder",
            "--channel",
            channel,
            "--to",
            to,
            "--config",
            str(ROOT / "config"),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("--to: error: ")
    assert message in result.stderr and "Traceback" not in result.output
