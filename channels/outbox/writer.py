"""The outbox's writer: a process of its own that writes the files and journal lines of
the messages an ``OutboxChannel`` accepted, in the order accepted.

Why a process, not a thread: a thread gives up the interpreter lock at each system call
(create, write, close, rename: four a message) and then waits for it again, up to the
5 ms switch interval, while the daemon's thread is busy rendering the next batch. Under
load the writer wrote one file in 18 ms where it alone takes 0.1 ms, and the daemon
waited on it at every batch. Here the file system's time overlaps the daemon's work on
another core.

Standard library only, run by path with ``python -I -S`` (it starts in milliseconds).
Frames on standard input, each a kind byte and a payload length (8 bytes, little
endian):

- ``W``: a ``marshal``-ed list of messages ``(number, folder, [(file name, bytes)],
  journal line)``. Each message's files are written through a temporary name and a
  rename, the JSON last; then the journal lines of all that were written go in one
  ``O_APPEND`` write. A message that could not be written is a failure ``(number,
  reason)`` and has no journal line.
- ``S``: sync. The journal is ``fsync``-ed if anything was written since the last time,
  then the reply goes to standard output (a length, then ``marshal``):
  ``(written through, durable through, failures since the last reply, fsyncs so far,
  error)``.

SIGINT and SIGTERM are ignored: a Ctrl-C or ``systemctl stop`` reaches the whole
process group, and the daemon, which finishes its in-flight batch on those, still needs
its writer. The writer ends when its standard input does, after writing everything it
was given (so also when the daemon is killed).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import sys
from typing import Any, BinaryIO

__all__ = ["append_line", "frame", "sync_file", "write_renamed"]

HEADER = 9  # kind (1 byte) and payload length (8 bytes)


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + len(payload).to_bytes(8, "little") + payload


def write_renamed(folder: str, name: str, data: bytes) -> None:
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


def append_line(path: Any, data: bytes, *, sync: bool = True) -> None:
    """Append ``data`` to ``path`` in one ``O_APPEND`` write (a journal line); ``sync``:
    on disk before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_file(path: Any) -> None:
    """``fsync`` a file written through other descriptors."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    def __init__(self, journal: str):
        self.journal = journal
        self.folders: set[str] = set()
        self.written = 0  # the last message number handled (written or failed)
        self.durable = 0  # journal fsynced through this number
        self.failures: list[tuple[int, str]] = []  # since the last reply
        self.syncs = 0

    def write(self, messages: list[tuple[int, str, list[tuple[str, bytes]], bytes]]) -> None:
        lines: list[bytes] = []
        numbers: list[int] = []
        for number, folder, files, line in messages:
            try:
                if folder not in self.folders:
                    os.makedirs(folder, exist_ok=True)
                    self.folders.add(folder)
                for name, data in files:  # the JSON last
                    write_renamed(folder, name, data)
                lines.append(line)
                numbers.append(number)
            except OSError as exc:
                self.failures.append((number, str(exc)))
        if lines:
            try:
                append_line(self.journal, b"".join(lines), sync=False)
            except OSError as exc:  # none of them is journaled: all failed
                self.failures += [(n, str(exc)) for n in numbers]
        if messages:
            self.written = messages[-1][0]

    def sync(self) -> bytes:
        error = None
        if self.durable < self.written:
            try:
                sync_file(self.journal)
                self.syncs += 1
                self.durable = self.written
            except OSError as exc:
                error = str(exc)
        reply = marshal.dumps((self.written, self.durable, self.failures, self.syncs, error))
        self.failures = []
        return len(reply).to_bytes(8, "little") + reply


def serve(journal: str, source: BinaryIO, sink: BinaryIO) -> None:
    writer = Writer(journal)
    while True:
        header = source.read(HEADER)
        if len(header) < HEADER:
            return
        payload = source.read(int.from_bytes(header[1:], "little"))
        if header[:1] == b"W":
            writer.write(marshal.loads(payload))
        elif header[:1] == b"S":
            sink.write(writer.sync())
            sink.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
