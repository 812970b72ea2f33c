"""The outbox adapter (docs/configuration.md): every send becomes a JSON file.

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
its files and journal line are written by a process of its own (``outbox_writer``), so
that the file system's time (creating and renaming files costs more than the rest of a
send on some disks) overlaps the daemon's next send instead of adding to it, on another
core and without waiting for the daemon's interpreter lock. ``sync`` (which the daemon
calls after each batch of sends, before it records them sent; ``close`` calls it too)
waits until every accepted message is written, then makes the journal durable with one
``fsync``; a write that failed, or a writer that stopped, makes ``sync`` raise, and the
daemon records that batch ``ambiguous``. The files are not synced one by one: after a
power cut the journal is the record of what was handed over, and the daemon has the
batch that was in flight as ``sending``, which it resolves as ``ambiguous``. Whoever
reads the files right after sending calls ``sync`` first. A daemon that is killed
leaves its writer to finish what it was given, then exit.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import queue
import re
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from channels.base import AdapterSettings, DeliveryStatus, OutboundMessage, SendResult
from channels.outbox.writer import append_line, frame, sync_file
from channels.segments import segments
from channels.simulated import provider_id_for
from orchestrator.clock import Clock
from orchestrator.errors import OutreachError, PermanentChannelError, TransientChannelError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class OutboxSettings(AdapterSettings):
    dir: str = "var/outbox"
    delay: float = Field(default=0.0, ge=0, le=60)  # seconds per send: a slow provider
    pdf: bool = True  # print letters to PDF (false: their HTML only)


WRITE_GROUP = 256  # most messages sent to the writer in one frame

__all__ = [
    "OutboxChannel",
    "OutboxSettings",
    "append_line",
    "pretty_json",
    "require_safe_id",
    "resolve_dir",
    "sync_file",
]


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
        raise PermanentChannelError(
            f"message id {message_id!r} is not a safe file name", code="bad_id"
        )


def resolve_dir(directory: str, base_dir: Path) -> Path:
    """A folder of channels.yaml, relative to ``base_dir`` unless absolute."""
    path = Path(directory)
    return path if path.is_absolute() else base_dir / path


def _render_pdf(message: OutboundMessage) -> bytes | None:
    """The letter as PDF bytes, or ``None`` when WeasyPrint cannot be loaded here. It
    loads files from its template directory only (``OutboundMessage.templates_dir``)."""
    from channels.pdf import PrinterUnavailable, render_pdf

    assert message.html is not None
    try:
        document = render_pdf(
            message.html, templates_dir=message.templates_dir, channel=message.channel
        )
    except PrinterUnavailable:
        return None
    except OutreachError as exc:  # Chinese text and no font for it
        raise PermanentChannelError(str(exc), code="pdf") from exc
    return document.write_pdf()  # type: ignore[no-any-return]


class _Sync:
    """A sync request in the writer's queue: answered once everything before it is."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: str | None = None


_CLOSE = object()  # the writer's queue: stop after what came before


class _WriterProcess:
    """The parent's side of one ``outbox_writer`` process: a queue of accepted messages,
    and a thread that passes them to the process in frames of up to ``WRITE_GROUP`` (one
    system call where the writing takes four a message) and brings its sync replies
    back. State learnt from the replies is guarded by ``lock``."""

    def __init__(self, journal: str):
        script = str(Path(__file__).with_name("writer.py"))
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", script, journal],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.queue: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()
        self.durable = 0  # the journal is fsynced through this message number
        self.failures: list[tuple[int, str]] = []  # (number, reason), not yet reported
        self.syncs = 0  # the writer's fsyncs of the journal, so far
        self.broken: str | None = None  # the process stopped or its pipe failed
        self.thread = threading.Thread(target=self._feed, name="outbox-writer", daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        carry: Any = None
        try:
            while True:
                item = self.queue.get() if carry is None else carry
                carry = None
                if item is _CLOSE:
                    return
                if isinstance(item, _Sync):
                    stdin.write(frame(b"S"))
                    stdin.flush()
                    self._answer(item, stdout)
                    continue
                group = [item]
                while len(group) < WRITE_GROUP:
                    try:
                        nxt = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(nxt, tuple):
                        group.append(nxt)
                    else:
                        carry = nxt
                        break
                stdin.write(frame(b"W", marshal.dumps(group)))
                stdin.flush()
        except (OSError, ValueError, EOFError) as exc:
            with self.lock:
                self.broken = f"outbox writer stopped: {exc or type(exc).__name__}"
            if isinstance(carry, _Sync):
                carry.error = self.broken
                carry.done.set()
            while True:  # answer whoever waits; nothing more is written
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Sync):
                    item.error = self.broken
                    item.done.set()
        finally:
            with contextlib.suppress(OSError):
                stdin.close()  # the writer ends once it has written what it was given

    def _answer(self, request: _Sync, stdout: Any) -> None:
        head = stdout.read(8)
        body = stdout.read(int.from_bytes(head, "little")) if len(head) == 8 else b""
        if not body:
            request.error = "outbox writer stopped"
            request.done.set()
            raise EOFError("the outbox writer exited")
        _, durable, failures, syncs, error = marshal.loads(body)
        with self.lock:
            self.durable = max(self.durable, durable)
            self.failures.extend(failures)
            self.syncs = syncs
        request.error = error and f"outbox sync failed: {error}"
        request.done.set()

    def sync(self, target: int) -> None:
        """Wait until the messages numbered up to ``target`` are written and the journal
        is durable; raise ``TransientChannelError`` for a failed one among them."""
        with self.lock:
            if (
                self.durable >= target
                and self.broken is None
                and not any(n <= target for n, _ in self.failures)
            ):
                return
        request = _Sync()
        self.queue.put(request)
        request.done.wait()
        with self.lock:
            failed = [reason for n, reason in self.failures if n <= target]
            self.failures = [(n, r) for n, r in self.failures if n > target]
        if failed:
            raise TransientChannelError(f"outbox write failed: {failed[0]}", code="io")
        if request.error:
            raise TransientChannelError(request.error, code="io")

    def close(self) -> None:
        """Let the writer finish what it was given, and wait for it to exit."""
        self.queue.put(_CLOSE)
        self.thread.join()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


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
        self._folder_of: dict[str, str] = {}  # channel -> its folder, as a string
        self._journal = str(directory / "journal.jsonl")
        # Accepted messages are numbered 1, 2, ... and written in that order.
        self._accepted = 0
        self._writer: _WriterProcess | None = None
        self._finalizer: weakref.finalize[[], OutboxChannel] | None = None

    @classmethod
    def from_config(
        cls, channel: str, settings: AdapterSettings, *, base_dir: Path, clock: Clock
    ) -> OutboxChannel:
        assert isinstance(settings, OutboxSettings)
        return cls(
            channel,
            resolve_dir(settings.dir, base_dir),
            clock,
            settings.from_,
            settings.delay,
            pdf=settings.pdf,
        )

    def send(self, message: OutboundMessage) -> SendResult:
        require_safe_id(message.message_id)
        writer = self._writer
        if writer is not None and (writer.failures or writer.broken):
            # failing: accept nothing more until a ``sync`` has reported it
            raise TransientChannelError(
                f"outbox write failed: {writer.broken or writer.failures[0][1]}", code="io"
            )
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
                pdf = _render_pdf(message)
                if pdf is not None:
                    files.append((f"{message.message_id}.pdf", pdf))
                    record["pdf"] = f"{folder}/{message.message_id}.pdf"
        if self.delay:
            time.sleep(self.delay)
        body = pretty_json(record)
        files.append((f"{message.message_id}.json", body.encode("utf-8")))
        line = {
            k: record[k]
            for k in ("message_id", "provider_id", "channel", "account", "debtor", "created_at")
        }
        journal = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        self._accept(folder, files, journal)
        return SendResult(
            provider_id=provider_id,
            status=DeliveryStatus.sent,
            segments=count.segments if count else None,
        )

    def _accept(self, folder: str, files: list[tuple[str, bytes]], journal: bytes) -> None:
        if self._writer is None:
            self._writer = _WriterProcess(self._journal)
            self._finalizer = weakref.finalize(self, self._writer.close)
        self._accepted += 1
        self._writer.queue.put((self._accepted, folder, files, journal))

    @property
    def journal_syncs(self) -> int:
        """How many times the writer made the journal durable (``fsync``), as of the last
        ``sync``."""
        return self._writer.syncs if self._writer is not None else 0

    def mark(self) -> int:
        """Where ``sync`` should wait up to for the messages accepted so far: a later
        ``sync(mark)`` (from another thread, say) does not wait for messages accepted
        after this call, nor answer for them."""
        return self._accepted

    def sync(self, upto: int | None = None) -> None:
        """Wait until every message accepted so far (or up to ``mark()``'s ``upto``) is
        written, then make them durable: one ``fsync`` of the journal. Raises if any of
        them could not be written, or the writer stopped (the next ``send`` then starts
        a new one)."""
        writer = self._writer
        if writer is None:
            return
        try:
            writer.sync(self._accepted if upto is None else upto)
        except TransientChannelError:
            if writer.broken and self._writer is writer:  # reported: start afresh
                self._writer = None
                if self._finalizer is not None:
                    self._finalizer()
            raise

    def close(self) -> None:
        try:
            self.sync()
        finally:
            if self._finalizer is not None:
                self._finalizer()  # the writer finishes and exits
            self._writer = None
