"""What every CSV import shares: the file read as UTF-8 line by line, so that a problem
names its real line; the header checked against the known and required columns; every
problem counted and the first ``MAX_PROBLEMS`` kept; the keys met so far, on disk; and
the audit row an import writes."""

from __future__ import annotations

import codecs
import csv
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.core.csvsafe import unquote_cell
from orchestrator.errors import InputError, Problem

__all__ = [
    "BATCH_SIZE",
    "MAX_PROBLEMS",
    "Problems",
    "Progress",
    "SeenKeys",
    "audit_row",
    "read_row_lists",
    "read_rows",
]

BATCH_SIZE = 5000
MAX_PROBLEMS = 1000

Progress = Callable[[int], None]


class Problems:
    """Every problem counted; the first ``MAX_PROBLEMS`` kept."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[Problem] = []
        self.count = 0

    def add(self, problem: Problem) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(problem)

    def error(self, line: int | None, column: str | None, message: str) -> None:
        self.add(Problem(self.source, line, None, message, field=column))

    def raise_if_any(self) -> None:
        if not self.count:
            return
        items = list(self.items)
        if self.count > len(items):
            more = self.count - len(items)
            items.append(Problem(self.source, None, None, f"... and {more} more problems"))
        raise InputError(items)


def read_rows(
    path: Path, known: Sequence[str], required: Sequence[str], problems: Problems
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, row)`` for each data row; header problems are raised at once."""
    header: list[str] = []
    for line, row in read_row_lists(path, known, required, problems, header):
        yield line, dict(zip(header, row, strict=True))


def read_row_lists(
    path: Path,
    known: Sequence[str],
    required: Sequence[str],
    problems: Problems,
    header_out: list[str],
) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` for each data row, the header (stripped) put in ``header_out``
    before the first; header problems are raised at once."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        problems.error(None, None, f"cannot read file: {exc.strerror or exc}")
        problems.raise_if_any()
        return
    with handle:
        reader = csv.reader(_text_lines(handle))
        try:
            header = next(reader)
        except StopIteration:
            problems.error(1, None, "empty file: a header row is required")
            problems.raise_if_any()
            return
        except _NotUtf8 as exc:
            problems.error(exc.line, None, exc.message)
            problems.raise_if_any()
            return
        except csv.Error as exc:
            problems.error(1, None, f"unreadable CSV: {exc}")
            problems.raise_if_any()
            return
        header = [h.strip() for h in header]
        seen: set[str] = set()
        for name in header:
            if name not in known:
                problems.error(1, name or "(empty)", f"unknown column {name!r}")
            elif name in seen:
                problems.error(1, name, f"column {name!r} appears twice")
            seen.add(name)
        for name in required:
            if name not in seen:
                problems.error(1, name, f"missing required column {name!r}")
        problems.raise_if_any()
        header_out[:] = header
        width = len(header)
        try:
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != width:
                    problems.error(line, None, f"expected {width} fields, found {len(row)}")
                    continue
                if "'" in "".join(row):  # rare: a cell quoted against formulas (csvsafe)
                    row = [unquote_cell(cell) for cell in row]
                yield line, row
        except _NotUtf8 as exc:
            problems.error(exc.line, None, exc.message)
        except csv.Error as exc:
            problems.error(reader.line_num, None, f"unreadable CSV: {exc}")


class _NotUtf8(ValueError):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _text_lines(handle: BinaryIO) -> Iterator[str]:
    """The file's lines as text, each decoded on its own: a byte that is not UTF-8 is
    reported on its real line (a text-mode file decodes 8 KB ahead, so the error came up
    on whatever line was being parsed, often the header). A UTF-8 byte order mark is
    dropped; line ends are kept and a lone ``\\r`` ends a line, as ``newline=""`` does."""
    count = 0
    for raw in handle:
        try:
            text = raw.decode("utf-8-sig" if count == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            start = exc.start + (3 if count == 0 and raw.startswith(codecs.BOM_UTF8) else 0)
            raise _NotUtf8(
                count + 1,
                f"byte 0x{raw[start]:02x} at byte {start + 1} is not "
                "UTF-8 (save the file as UTF-8)",
            ) from None
        pieces = _LINE.findall(text) if "\r" in text[:-2] else (text,)
        for piece in pieces:
            count += 1
            yield piece


def audit_row(
    now: datetime, actor: str, action: str, object_type: str, object_id: str, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "time": now,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "detail": detail,
        "account_id": object_id if object_type == "account" else None,
    }


class SeenKeys:
    """The keys met so far in a file, to report duplicates, kept in a temporary SQLite
    table on disk rather than in a set: a million-row import holds a few megabytes of
    page cache, not a million strings. ``first(key, line)`` is the line that had ``key``
    first, or ``None`` (and ``key`` is now remembered at ``line``)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="outreach-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.db", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def first(self, key: str, line: int) -> int | None:
        if self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, line)).rowcount:
            return None
        row = self._db.execute("SELECT line FROM seen WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> SeenKeys:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
