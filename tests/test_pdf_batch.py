"""The pdf_batch letter adapter: real PDFs read back with pypdf, and the day's manifest."""

from __future__ import annotations

import base64
import csv
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from support import ROOT, letter_library, listener, tiny_png  # noqa: I001 - tests/support.py

from channels.base import DeliveryStatus, OutboundMessage
from channels.outbox.adapter import OutboxChannel
from channels.registry import create_adapter
from orchestrator.clock import FrozenClock
from orchestrator.config.models import ChannelConfig
from orchestrator.content.preview import sample_context
from orchestrator.content.rendering import TemplateRenderer

NOW = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)


def letter(locale: str, message_id: str) -> tuple[OutboundMessage, dict[str, Any]]:
    context = sample_context(locale, channel="letter")
    rendered = TemplateRenderer(ROOT / "templates").render(
        "letter", "demand_letter", locale, context
    )
    assert rendered.html is not None
    message = OutboundMessage(
        message_id=message_id,
        channel="letter",
        account_id="A-SAMPLE",
        debtor_id="D-SAMPLE",
        to="1 Main St, Springfield",
        locale=locale,
        text=rendered.text,
        html=rendered.html,
    )
    return message, context


def text_of(path: Path) -> str:
    return "".join(p.extract_text() for p in PdfReader(path).pages).replace("\n", "")


@pytest.mark.parametrize(
    ("locale", "amount", "deadline"),
    [
        ("en-US", "$1,234.50", "March 16, 2026"),
        ("zh-CN", "¥1,234.50", "2026年3月16日"),
    ],
)
def test_each_letter_is_a_pdf_with_its_fields(
    tmp_path: Path, locale: str, amount: str, deadline: str
) -> None:
    adapter = create_adapter(
        "letter",
        ChannelConfig.model_validate({"adapter": "pdf_batch", "out_dir": "letters"}),
        base_dir=tmp_path,
        clock=FrozenClock(NOW),
    )
    message, context = letter(locale, "m-1")
    result = adapter.send(message)
    assert result.status == DeliveryStatus.queued
    day = tmp_path / "letters" / "2026-03-06"
    pdf = day / "m-1.pdf"
    assert result.provider_id == "2026-03-06/m-1.pdf"
    text = text_of(pdf).replace(" ", "")
    for part in (context["debtor"].name, amount, "REF-2026-000123", deadline):
        assert part.replace(" ", "") in text, part
    if locale == "zh-CN":
        assert "催款函" in text

    # The same message again prints nothing new; another one adds a row.
    adapter.send(message)
    adapter.send(letter(locale, "m-2")[0])
    rows = list(csv.DictReader((day / "manifest.csv").open(encoding="utf-8")))
    assert [r["message_id"] for r in rows] == ["m-1", "m-2"]
    assert rows[0]["file"] == "m-1.pdf" and rows[0]["mail_to"] == "1 Main St, Springfield"
    assert int(rows[0]["pages"]) == len(PdfReader(pdf).pages) >= 1
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600
    assert stat.S_IMODE(day.stat().st_mode) == 0o700
    assert not list(day.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("adapter", ["pdf_batch", "outbox"])
def test_a_letter_loads_only_files_under_the_template_directory(
    tmp_path: Path, adapter: str
) -> None:
    """What each letter printer fetches: the image beside the template and a data: image,
    yes; an attachment of the process's environment, a file outside through ``..`` or a
    symbolic link, and anything on the network, never (the port below would see it)."""
    templates = tmp_path / "templates"
    (tmp_path / "secret.txt").write_text("s3cret-outside", encoding="utf-8")
    with listener() as (port, hits):
        letter_library(
            templates,
            head=(
                '<link rel="attachment" href="file:///proc/self/environ">'
                '<link rel="attachment" href="notes.txt">'
                '<link rel="stylesheet" href="../../secret.txt">'
                f'<link rel="stylesheet" href="http://127.0.0.1:{port}/style.css">'
            ),
            body=(
                f'<img src="http://127.0.0.1:{port}/logo.png" alt="">'
                '<img src="logo.png" alt="">'
                '<img src="data:image/png;base64,'
                + base64.b64encode(tiny_png()).decode()
                + '" alt="">'
            ),
        )
        (templates / "letter" / "logo.png").write_bytes(tiny_png())
        (templates / "letter" / "notes.txt").symlink_to(tmp_path / "secret.txt")
        pdf = _print(tmp_path, adapter, templates)
    assert hits == []  # nothing reached the network
    reader = PdfReader(pdf)
    assert dict(reader.attachments) == {}
    assert b"s3cret-outside" not in pdf.read_bytes()
    assert len(reader.pages[0].images) == 2  # the template directory's image, and data:
    assert "REF-2026-000123" in text_of(pdf)


def _print(tmp_path: Path, adapter: str, templates: Path) -> Path:
    """The sample demand letter rendered from ``templates`` and printed by ``adapter``."""
    rendered = TemplateRenderer(templates).render(
        "letter", "demand_letter", "en-US", sample_context("en-US", channel="letter")
    )
    message = OutboundMessage(
        message_id="m-1",
        channel="letter",
        account_id="A-SAMPLE",
        debtor_id="D-SAMPLE",
        to="1 Main St",
        locale="en-US",
        text=rendered.text,
        html=rendered.html,
        templates_dir=templates,
    )
    if adapter == "outbox":
        outbox = OutboxChannel("letter", tmp_path / "outbox", FrozenClock(NOW))
        outbox.send(message)
        outbox.close()
        return tmp_path / "outbox" / "letter" / "m-1.pdf"
    create_adapter(
        "letter",
        ChannelConfig.model_validate({"adapter": "pdf_batch", "out_dir": "letters"}),
        base_dir=tmp_path,
        clock=FrozenClock(NOW),
    ).send(message)
    return tmp_path / "letters" / "2026-03-06" / "m-1.pdf"
