"""Webhook benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/webhooks.py [--requests 4000] [--concurrency 50] [--pg] [--workers N]

Starts ``outreach serve`` in its own process on a loopback port (SQLite by default, or a
fresh PostgreSQL database), creates N sends, then fires N concurrent Twilio status
callbacks, each signed with the SDK's RequestValidator, and prints requests/s, p50/p99
latency, errors, and how many events reached the database (lost = N - stored).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa
from cryptography.fernet import Fernet
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))

from support import insert_sends, scratch_database, wait_healthy  # noqa: E402

from orchestrator.store import db  # noqa: E402
from orchestrator.store.tables import DeliveryEvent, table_of  # noqa: E402

TOKEN = "bench-twilio-token"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(url: str, n: int) -> list[str]:
    db.upgrade(url)
    engine = db.make_engine(url)
    now = datetime.now(UTC)
    sids = [f"SM{uuid.uuid4().hex}" for _ in range(n)]
    with engine.begin() as conn:
        insert_sends(
            conn,
            [
                {"message_id": f"m_{i:08d}", "provider_id": sid, "status": "sent", "sent_at": now}
                for i, sid in enumerate(sids)
            ],
        )
    engine.dispose()
    return sids


async def _fire(base: str, sids: list[str], concurrency: int) -> tuple[list[float], int]:
    """Each of ``concurrency`` keep-alive connections posts its share of callbacks.

    A minimal HTTP/1.1 client on asyncio streams: httpx's async client tops out near
    300 requests/s at this concurrency on two cores and would measure itself."""
    path = "/webhooks/twilio/sms/status"
    validator = RequestValidator(TOKEN)
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for sid in sids:
        queue.put_nowait(sid)

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while not queue.empty():
                sid = queue.get_nowait()
                params = {"MessageSid": sid, "MessageStatus": "delivered"}
                signature = validator.compute_signature(base + path, params)
                body = urlencode(params).encode()
                request = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Type: application/x-www-form-urlencoded\r\n"
                    f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                t0 = time.perf_counter()
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="outreach serve --workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scratch_database(tmp, args.pg) as url:
        sids = _seed(url, args.requests)
        port = _port()
        base = f"http://127.0.0.1:{port}"
        env = dict(
            os.environ,
            OUTREACH_DATABASE_URL=url,
            OUTREACH_PUBLIC_URL=base,
            OUTREACH_SECRET_KEY="bench-secret-for-links-0123456789abcdef",
            TWILIO_AUTH_TOKEN=TOKEN,
            OUTREACH_DATA_KEYS=Fernet.generate_key().decode(),
            OUTREACH_CONFIG=str(ROOT / "config"),
            OUTREACH_TEMPLATES=str(ROOT / "templates"),
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(base)
            t0 = time.perf_counter()
            latencies, errors = asyncio.run(_fire(base, sids, args.concurrency))
            elapsed = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
        engine = db.make_engine(url)
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(sa.func.count()).select_from(table_of(DeliveryEvent))
            ).scalar_one()
        engine.dispose()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    backend = "postgresql" if args.pg else "sqlite"
    print(
        f"webhooks on {backend}, {args.workers} worker(s): {args.requests} signed status "
        f"callbacks, concurrency "
        f"{args.concurrency}: {args.requests / elapsed:,.0f} requests/s (target >= 500); "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; errors {errors}; stored {stored}, "
        f"lost {args.requests - stored}"
    )


if __name__ == "__main__":
    main()
