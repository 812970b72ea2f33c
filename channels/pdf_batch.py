"""The letter adapter (docs/configuration.md): one PDF per letter, a daily manifest for printers.

``{adapter: pdf_batch, out_dir: var/letters}`` prints each letter's HTML with WeasyPrint
to ``<out_dir>/<YYYY-MM-DD>/<message_id>.pdf`` (the date of the send, UTC) and appends a
row to ``<out_dir>/<YYYY-MM-DD>/manifest.csv``: the file a print-and-mail vendor picks up
with the day's PDFs (``message_id``, ``account_id``, ``debtor_id``, ``locale``,
``pages``, ``file``, ``mail_to`` — the postal address on one line — and ``created_at``).

The folder holds what will be posted (names and addresses in clear, as on the envelope),
so it is created readable by its owner only (0700, files 0600). A Chinese letter without
a CJK font installed fails permanently rather than print empty boxes. Sending the same
message id twice prints it once: the PDF is named by message id and the manifest gets
one row per PDF. Its cells are written by ``orchestrator.core.csvsafe``: a name such as
``=HYPERLINK(...)`` is quoted, never a formula in the vendor's spreadsheet.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import ClassVar

from channels.base import AdapterSettings, DeliveryStatus, OutboundMessage, SendResult
from channels.outbox.adapter import append_line, require_safe_id, resolve_dir
from orchestrator.clock import Clock
from orchestrator.core.csvsafe import SafeWriter
from orchestrator.errors import OutreachError, PermanentChannelError, TransientChannelError

MANIFEST_FIELDS = (
    "message_id",
    "account_id",
    "debtor_id",
    "locale",
    "pages",
    "file",
    "mail_to",
    "created_at",
)


class PdfBatchSettings(AdapterSettings):
    out_dir: str = "var/letters"


class PdfBatchChannel:
    name: ClassVar[str] = "pdf_batch"
    settings_model: ClassVar[type[AdapterSettings]] = PdfBatchSettings

    def __init__(self, channel: str, out_dir: Path, clock: Clock):
        self.channel = channel
        self.out_dir = out_dir
        self.clock = clock

    @classmethod
    def from_config(
        cls, channel: str, settings: AdapterSettings, *, base_dir: Path, clock: Clock
    ) -> PdfBatchChannel:
        assert isinstance(settings, PdfBatchSettings)
        return cls(channel, resolve_dir(settings.out_dir, base_dir), clock)

    def send(self, message: OutboundMessage) -> SendResult:
        from channels.pdf import print_pdf

        require_safe_id(message.message_id)
        if message.html is None:
            raise PermanentChannelError("a letter needs an HTML template", code="no_html")
        now = self.clock.now()
        day = self.out_dir / now.date().isoformat()
        pdf_path = day / f"{message.message_id}.pdf"
        result = SendResult(provider_id=f"{day.name}/{pdf_path.name}", status=DeliveryStatus.queued)
        if pdf_path.exists():
            return result  # printed already: the manifest has its row
        try:
            self.out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            day.mkdir(mode=0o700, exist_ok=True)
            tmp = day / f".{pdf_path.name}.printing"
            pages = print_pdf(
                message.html, tmp, templates_dir=message.templates_dir, channel=message.channel
            )
            os.chmod(tmp, 0o600)
            os.replace(tmp, pdf_path)
            self._manifest(
                day,
                {
                    "message_id": message.message_id,
                    "account_id": message.account_id,
                    "debtor_id": message.debtor_id,
                    "locale": message.locale,
                    "pages": pages,
                    "file": pdf_path.name,
                    "mail_to": message.to,
                    "created_at": now.isoformat().replace("+00:00", "Z"),
                },
            )
        except OutreachError as exc:
            raise PermanentChannelError(str(exc), code="pdf") from exc
        except OSError as exc:
            raise TransientChannelError(f"letter write failed: {exc}", code="io") from exc
        return result

    def _manifest(self, day: Path, row: dict[str, object]) -> None:
        path = day / "manifest.csv"
        buffer = io.StringIO()
        writer = SafeWriter(buffer, lineterminator="\r\n")  # names are not formulas
        if not path.exists():
            writer.writerow(MANIFEST_FIELDS)
        writer.writerow(row[field] for field in MANIFEST_FIELDS)
        append_line(path, buffer.getvalue().encode("utf-8"))

    def close(self) -> None:
        return None


ADAPTER = PdfBatchChannel
