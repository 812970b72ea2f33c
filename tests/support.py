"""Shared set-up for tests that run the product against a database: a small config
directory, a CSV of accounts, a migrated database with them imported."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import socketserver
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy.engine import Connection

from orchestrator.core.crypto import DataCipher
from orchestrator.ingest.importer import import_accounts
from orchestrator.store import db
from orchestrator.store.tables import Debtor, Send, table_of

ROOT = Path(__file__).resolve().parent.parent

# OUTREACH_SECRET_KEY of the tests: at least 32 bytes, as `run` and `serve` require.
TEST_SECRET = "test-secret-for-links-0123456789abcdef"

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_database(tmp: str | Path, postgresql: bool) -> Iterator[str]:
    """The URL of an empty database for one run: SQLite in ``tmp``, or a new PostgreSQL
    database on the local server, dropped afterwards (the benchmarks' scratch space)."""
    if not postgresql:
        yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"outreach_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


CADENCES = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00", expires: 3d}
"""
CREDITORS = """
creditors:
  acme: {name: Acme Consumer Finance, phone: "+18005550100", pay_url: "https://pay.example.com/{reference}"}
"""


def write_config(
    directory: Path,
    *,
    outbox: Path,
    limits: str = "[]",
    delay: float = 0.0,
    retry: str = "",
    cadences: str = CADENCES,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cadences.yaml").write_text(cadences)
    (directory / "creditors.yaml").write_text(CREDITORS)
    (directory / "policy.yaml").write_text(
        f"timezone: {{default: America/New_York, sources: [explicit, address, phone]}}\n"
        f"hours: {{default: any}}\nlimits: {limits}\n"
    )
    (directory / "channels.yaml").write_text(
        f"sms: {{adapter: outbox, dir: '{outbox}', delay: {delay}{retry}}}\n"
        f"email: {{adapter: outbox, dir: '{outbox}'}}\n"
        f"voice: {{adapter: outbox, dir: '{outbox}'}}\n"
    )
    return directory


def write_accounts(path: Path, n: int, *, per_debtor: int = 1) -> Path:
    lines = [
        "account_id,debtor_id,name,phone,email,city,region,country,currency,balance,"
        "due_date,creditor,reference,consent_sms,consent_email"
    ]
    for i in range(n):
        debtor = f"D{i // per_debtor:05d}"
        lines.append(
            f"A{i:05d},{debtor},Pat Doe,+1212{2000000 + (i // per_debtor) * 37:07d},"
            f"pat{i}@example.com,New York,NY,US,USD,100.00,2026-03-01,acme,R{i},true,"
            f"true"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def setup_db(
    db_url: str, tmp_path: Path, n: int, *, per_debtor: int = 1, **config: Any
) -> tuple[dict[str, str], Path]:
    keys = Fernet.generate_key().decode()
    outbox = tmp_path / "outbox"
    config_dir = write_config(tmp_path / "config", outbox=outbox, **config)
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    import_accounts(
        engine, write_accounts(tmp_path / "a.csv", n, per_debtor=per_debtor), DataCipher([keys])
    )
    engine.dispose()
    env = dict(
        os.environ,
        OUTREACH_DATABASE_URL=db_url,
        OUTREACH_DATA_KEYS=keys,
        OUTREACH_SECRET_KEY=TEST_SECRET,
        OUTREACH_CONFIG=str(config_dir),
        OUTREACH_TEMPLATES=str(ROOT / "templates"),
    )
    return env, outbox


def insert_sends(conn: Connection, sends: list[dict[str, Any]]) -> None:
    """Debtor ``D1`` with one account ``A1``, and these SMS sends of it (each row gives
    ``message_id``, ``provider_id``, ``status`` and ``sent_at``): status callbacks to
    record, without planning anything."""
    conn.execute(table_of(Debtor).insert(), [{"id": "D1"}])
    conn.execute(
        sa.text(
            "insert into account (account_id, debtor_id, balance, currency, due_date, status) "
            "values ('A1', 'D1', 100, 'USD', '2026-01-01', 'open')"
        )
    )
    conn.execute(
        table_of(Send).insert(),
        [{"account_id": "A1", "debtor_id": "D1", "channel": "sms", **send} for send in sends],
    )


def wait_healthy(base_url: str, seconds: float = 15.0) -> None:
    """Return once ``base_url`` answers ``/healthz`` with 200; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base_url} did not answer /healthz within {seconds:.0f} s")


# --- a live server ---------------------------------------------------------------------------


def free_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1, for a server to listen on: bound
    before the server starts, so its URL is known first (Twilio signs over it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Errors(logging.Handler):
    """The error lines uvicorn logs while it starts (it logs why, then exits)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def live_server(app: Any, sock: socket.socket, *, seconds: float = 10.0) -> Iterator[None]:
    """``app`` served by uvicorn on ``sock``, in a thread, while the block runs. If it
    has not started within ``seconds`` the test fails there, with the server's error,
    rather than going on against no server."""
    uv = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            uv.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported by the test, below
            crashed.append(exc)

    errors = _Errors()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(errors)
    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + seconds
        while not uv.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        uvicorn_log.removeHandler(errors)
    if not uv.started:
        uv.should_exit = True
        thread.join(timeout=10)
        why = "; ".join([*errors.lines, *(repr(e) for e in crashed)]) or "no error logged"
        when = "failed to start" if crashed else f"did not start within {seconds:.0f} s"
        pytest.fail(f"the server {when}: {why}", pytrace=False)
    try:
        yield
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


# --- letters that try to reach outside ------------------------------------------------------

LAYOUT = "letter/_letter.en-US.html.j2"  # the en-US letters' shared layout


def letter_library(templates: Path, *, head: str = "", body: str = "") -> Path:
    """A copy of the shipped templates in ``templates``, whose en-US letter layout has
    ``head`` after its ``<meta charset>`` line and ``body`` after its letterhead's first
    line (each a line of its own); returns the layout's path."""
    shutil.copytree(ROOT / "templates", templates)
    layout = templates / LAYOUT
    text = layout.read_text(encoding="utf-8")
    text = text.replace('<meta charset="utf-8">\n', f'<meta charset="utf-8">\n{head}\n', 1)
    text = text.replace('<div class="letterhead">\n', f'<div class="letterhead">\n{body}\n', 1)
    layout.write_text(text, encoding="utf-8")
    return layout


def tiny_png() -> bytes:
    """A valid 2x2 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@contextmanager
def listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP port on 127.0.0.1 that records every connection made to it: (port, what
    each connection sent first)."""
    hits: list[str] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            hits.append(self.request.recv(200).decode("latin-1"))

    server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


def line_of(path: Path, needle: str) -> int:
    """The number of the first line of ``path`` holding ``needle``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def config_check(config_dir: Path) -> tuple[int, str]:
    """``outreach config check`` on this directory and the shipped templates, through
    the real command line: its exit code and output."""
    from typer.testing import CliRunner

    from orchestrator.cli import _register_all, app

    _register_all()
    result = CliRunner().invoke(
        app,
        ["config", "check"],
        env={"OUTREACH_CONFIG": str(config_dir), "OUTREACH_TEMPLATES": str(ROOT / "templates")},
    )
    return result.exit_code, result.output


def sample_runner(
    db_url: str,
    data_keys: str,
    tmp_path: Path,
    config: Any,
    accounts: list[Any],
    *,
    start: Any,
    batch: int,
) -> tuple[sa.Engine, Any]:
    """A database holding these accounts (imported from a CSV) and the daemon's runner on
    it, with ``simulate``'s channel, URL and secret: what the daemon-vs-simulate tests
    drive."""
    from channels.simulated import SimulatedChannel
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.dispatch.runner import Runner
    from orchestrator.simulation.sample import write_csv
    from orchestrator.simulation.simulate import SIMULATION_PUBLIC_URL, SIMULATION_SECRET

    csv = tmp_path / "accounts.csv"
    write_csv(accounts, csv)
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    cipher = DataCipher([data_keys])
    import_accounts(engine, csv, cipher)
    channel = SimulatedChannel()
    runner = Runner(
        engine,
        config,
        TemplateRenderer(ROOT / "templates"),
        {c: channel for c in config.channels},
        cipher,
        public_url=SIMULATION_PUBLIC_URL,
        secret=SIMULATION_SECRET,
        not_before=start,
        batch=batch,
    )
    return engine, runner
