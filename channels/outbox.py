"""The outbox adapter (CONTRACT §4, §10.21): every send becomes a JSON file.

``{adapter: outbox, dir: var/outbox}`` writes ``<dir>/<channel>/<message_id>.json``
with ``message_id``, ``provider_id``, ``channel``, ``account``, ``to``, ``from``,
``subject``, ``text``, ``html`` and ``pdf`` (file paths, or null). HTML is written to
``<message_id>.html`` beside the JSON; a letter is also printed to ``<message_id>.pdf``
when WeasyPrint is installed and ``pdf`` is not false (printing takes ~0.2 s a letter),
else ``pdf`` is null. Every file is written to a temporary name and renamed into place,
and the JSON last, so a reader never sees a half-written send. It lets the product run
with no provider account anywhere.

Every send is also appended, as one JSON line, to ``<dir>/journal.jsonl`` (opened with
``O_APPEND``, one ``write`` per line): an append-only record in which a message sent
twice would show twice, which the files named by message id cannot show. ``delay``
(seconds) makes each send take that long, to stand in for a provider's latency.

Like a provider, the outbox accepts a message at ``send`` and stores it a moment later:
its files and journal line are written by a thread of the adapter's own, so that the
file system's time (creating and renaming files costs more than the rest of a send on
some disks) overlaps the daemon's next send instead of adding to it. ``sync`` (which
the daemon calls after each batch of sends, before it records them sent; ``close``
calls it too) waits until every accepted message is written, then makes the journal
durable with one ``fsync``; a write that failed makes ``sync`` raise, and the daemon
records that batch ``ambiguous``. The files are not synced one by one: after a power
cut the journal is the record of what was handed over, and the daemon has the batch
that was in flight as ``sending``, which it resolves as ``ambiguous``. Whoever reads
the files right after sending calls ``sync`` first.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from channels.base import AdapterSettings, DeliveryStatus, OutboundMessage, SendResult
from channels.simulated import provider_id_for
from orchestrator.clock import Clock
from orchestrator.errors import OutreachError, PermanentChannelError, TransientChannelError
from orchestrator.sms import segments

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class OutboxSettings(AdapterSettings):
    dir: str = "var/outbox"
    delay: float = Field(default=0.0, ge=0, le=60)  # seconds per send: a slow provider
    pdf: bool = True  # print letters to PDF (false: their HTML only)


WRITE_GROUP = 256  # most messages the writer takes from its queue at a time


def _write_renamed(folder: str, name: str, data: bytes) -> None:
    """Write ``data`` to ``folder/name`` via a temporary file in the same folder and a
    rename, so a reader never sees half a file. One send is written by one process at a
    time (its message id is claimed), so the process id keeps two writers' temporary
    names apart. (Plain strings, not ``Path``: this runs for every file of every send.)"""
    tmp = f"{folder}/.{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, f"{folder}/{name}")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def pretty_json(record: dict[str, Any]) -> str:
    """``record`` as ``json.dumps(record, indent=2)`` lays out a flat object, one key a
    line, through the C encoder (``indent`` makes ``json`` fall back to pure Python, a
    tenth of an outbox send). A record with a nested value takes ``json``'s own way."""
    if any(isinstance(v, dict | list | tuple) for v in record.values()):
        return json.dumps(record, ensure_ascii=False, indent=2, default=str) + "\n"
    inner = json.dumps(record, ensure_ascii=False, default=str, separators=(",\n  ", ": "))
    return "{\n  " + inner[1:-1] + "\n}\n" if record else "{}\n"


def require_safe_id(message_id: str) -> None:
    """Message ids name files: refuse one that is not a plain file name."""
    if not _SAFE_ID.match(message_id):
        raise PermanentChannelError(f"message id {message_id!r} is not a safe file name",
                                    code="bad_id")


def resolve_dir(directory: str, base_dir: Path) -> Path:
    """A folder of channels.yaml, relative to ``base_dir`` unless absolute."""
    path = Path(directory)
    return path if path.is_absolute() else base_dir / path


def append_line(path: Path | str, data: bytes, *, sync: bool = True) -> None:
    """Append ``data`` to ``path`` in one ``O_APPEND`` write (a journal line); ``sync``:
    on disk before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_file(path: Path | str) -> None:
    """``fsync`` a file written through other descriptors."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _render_pdf(html: str, base_dir: Path) -> bytes | None:
    """The letter as PDF bytes, or ``None`` when WeasyPrint cannot be loaded here."""
    from orchestrator.preview import PrinterUnavailable, render_pdf

    try:
        document = render_pdf(html, base_dir=base_dir)
    except PrinterUnavailable:
        return None
    except OutreachError as exc:  # Chinese text and no font for it
        raise PermanentChannelError(str(exc), code="pdf") from exc
    return document.write_pdf()  # type: ignore[no-any-return]


class OutboxChannel:
    name: ClassVar[str] = "outbox"
    settings_model: ClassVar[type[AdapterSettings]] = OutboxSettings

    def __init__(
        self,
        channel: str,
        directory: Path,
        clock: Clock,
        sender: str | None = None,
        delay: float = 0.0,
        *,
        pdf: bool = True,
    ):
        self.channel = channel
        self.directory = directory
        self.clock = clock
        self.sender = sender
        self.delay = delay
        self.pdf = pdf
        self._folders: set[str] = set()  # made already (by the writer)
        self._folder_of: dict[str, str] = {}  # channel -> its folder, as a string
        self._journal = str(directory / "journal.jsonl")
        # Accepted messages are numbered 1, 2, ... and written in that order by one thread:
        # (number, folder, files, journal line).
        self._jobs: queue.Queue[tuple[int, str, list[tuple[str, bytes]], bytes]] = (
            queue.Queue())
        self._writer: threading.Thread | None = None
        self._accepted = 0  # the last number handed to the writer
        self._done = threading.Condition()  # guards the three below
        self._written = 0  # the last number the writer finished (written or failed)
        self._durable = 0  # journal fsynced through this number
        self._failures: list[tuple[int, OSError]] = []  # writes failed, not yet reported

    @classmethod
    def from_config(
        cls, channel: str, settings: AdapterSettings, *, base_dir: Path, clock: Clock
    ) -> OutboxChannel:
        assert isinstance(settings, OutboxSettings)
        return cls(channel, resolve_dir(settings.dir, base_dir), clock, settings.from_,
                   settings.delay, pdf=settings.pdf)

    def path_for(self, message: OutboundMessage) -> Path:
        return self.directory / message.channel / f"{message.message_id}.json"

    def send(self, message: OutboundMessage) -> SendResult:
        require_safe_id(message.message_id)
        if self._failures:  # the writer is failing: accept nothing more now
            raise TransientChannelError(f"outbox write failed: {self._failures[0][1]}",
                                        code="io")
        folder = self._folder_of.get(message.channel)
        if folder is None:
            folder = self._folder_of[message.channel] = str(self.directory / message.channel)
        provider_id = provider_id_for("OB", message.message_id)
        record: dict[str, Any] = {
            "message_id": message.message_id,
            "provider_id": provider_id,
            "channel": message.channel,
            "account": message.account_id,
            "debtor": message.debtor_id,
            "to": message.to,
            "from": message.from_ or self.sender or "",
            "subject": message.subject,
            "text": message.text,
            "html": None,
            "pdf": str(message.pdf_path) if message.pdf_path else None,
            "locale": message.locale,
            "created_at": self.clock.now().isoformat().replace("+00:00", "Z"),
        }
        count = segments(message.text) if message.channel == "sms" else None
        if count is not None:
            record["segments"] = count.segments
            record["encoding"] = count.encoding
        if message.metadata:
            record["metadata"] = dict(message.metadata)
        files: list[tuple[str, bytes]] = []  # (name in the folder, content)
        if message.html is not None:
            files.append((f"{message.message_id}.html", message.html.encode("utf-8")))
            record["html"] = f"{folder}/{message.message_id}.html"
            if message.channel == "letter" and record["pdf"] is None and self.pdf:
                pdf = _render_pdf(message.html, Path(folder))
                if pdf is not None:
                    files.append((f"{message.message_id}.pdf", pdf))
                    record["pdf"] = f"{folder}/{message.message_id}.pdf"
        if self.delay:
            time.sleep(self.delay)
        body = pretty_json(record)
        files.append((f"{message.message_id}.json", body.encode("utf-8")))
        line = {k: record[k] for k in ("message_id", "provider_id", "channel", "account",
                                       "debtor", "created_at")}
        journal = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        self._accept(folder, files, journal)
        return SendResult(
            provider_id=provider_id,
            status=DeliveryStatus.sent,
            segments=count.segments if count else None,
        )

    def _accept(self, folder: str, files: list[tuple[str, bytes]], journal: bytes) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="outbox-writer",
                                            daemon=True)
            self._writer.start()
        self._accepted += 1
        self._jobs.put((self._accepted, folder, files, journal))

    def _write_loop(self) -> None:
        """Write what was accepted, in order: each message's files, then the journal lines
        of all those waiting, in one append (one write where there were one per message)."""
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < WRITE_GROUP:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            lines: list[bytes] = []
            failures: list[tuple[int, OSError]] = []
            for number, folder, files, journal in jobs:
                try:
                    if folder not in self._folders:
                        os.makedirs(folder, exist_ok=True)
                        self._folders.add(folder)
                    for name, data in files:  # the JSON last
                        _write_renamed(folder, name, data)
                    lines.append(journal)
                except OSError as exc:
                    failures.append((number, exc))
            if lines:
                try:
                    append_line(self._journal, b"".join(lines), sync=False)
                except OSError as exc:  # none of them is journaled: all failed
                    failed = {n for n, _ in failures}
                    failures += [(n, exc) for n, _, _, _ in jobs if n not in failed]
            with self._done:
                self._failures.extend(sorted(failures, key=lambda f: f[0]))
                self._written = jobs[-1][0]
                self._done.notify_all()
            for _ in jobs:
                self._jobs.task_done()

    def mark(self) -> int:
        """Where ``sync`` should wait up to for the messages accepted so far: a later
        ``sync(mark)`` (from another thread, say) does not wait for messages accepted
        after this call, nor answer for them."""
        return self._accepted

    def sync(self, upto: int | None = None) -> None:
        """Wait until every message accepted so far (or up to ``mark()``'s ``upto``) is
        written, then make them durable: one ``fsync`` of the journal. Raises if any of
        them could not be written."""
        target = self._accepted if upto is None else upto
        with self._done:
            self._done.wait_for(lambda: self._written >= target)
            failed = [exc for number, exc in self._failures if number <= target]
            self._failures = [(n, exc) for n, exc in self._failures if n > target]
            durable, written = self._durable, self._written
        if failed:
            raise TransientChannelError(f"outbox write failed: {failed[0]}", code="io")
        if durable < target:
            try:
                sync_file(self._journal)  # every line written so far
            except OSError as exc:
                raise TransientChannelError(f"outbox sync failed: {exc}", code="io") from exc
            with self._done:
                self._durable = max(self._durable, written)

    def close(self) -> None:
        self.sync()
