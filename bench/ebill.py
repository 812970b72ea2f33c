"""The e-bill page (``/p/<token>``): its size and its server-side render time. Prints
figures and exits 1 past the budget (issue 25): HTML under 30 KB, under 50 ms.

    .venv/bin/python bench/ebill.py [--rounds 200] [--pg]

The shipped configuration on a scratch database (SQLite, or PostgreSQL with ``--pg``),
an en-US and a zh-CN account with a breakdown, one text each (its pay link); then
what the server does for a browser's GET of the link, timed per request: open the
token, read the account and replay its facts, compute the offers, render the page
(``services.ebill``, as a HEAD: no click written), and the rendering alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sqlalchemy as sa  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from support import TEST_SECRET, scratch_database  # noqa: E402

from channels.registry import create_adapter  # noqa: E402
from orchestrator.clock import VirtualClock  # noqa: E402
from orchestrator.config.loading import load_config  # noqa: E402
from orchestrator.config.settings import Settings  # noqa: E402
from orchestrator.content.rendering import TemplateRenderer  # noqa: E402
from orchestrator.core.crypto import DataCipher  # noqa: E402
from orchestrator.core.links import make_token  # noqa: E402
from orchestrator.dispatch.runner import Runner  # noqa: E402
from orchestrator.ingest.importer import import_accounts  # noqa: E402
from orchestrator.store import db  # noqa: E402
from orchestrator.store.tables import Send, table_of  # noqa: E402
from orchestrator.web.ebillpage import render_bill  # noqa: E402
from orchestrator.web.server import Server  # noqa: E402
from orchestrator.web.services import ebill  # noqa: E402
from orchestrator.web.services.links import open_link  # noqa: E402

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
BUDGET_BYTES = 30 * 1024
BUDGET_MS = 50.0
ACCOUNTS = (
    "account_id,name,phone,country,locale,currency,balance,principal,interest,fees,"
    "due_date,creditor,reference,consent_sms\n"
    "E1,Pat Doe,+12125550147,US,en-US,USD,1234.56,1000.00,200.00,34.56,2026-03-01,acme,"
    "R-EN-1,true\n"
    "Z1,王小明,+8613812345678,CN,zh-CN,CNY,36000.00,30000.00,4500.00,1500.00,2026-03-01,"
    "huaxia,R-ZH-1,true\n"
)


def _server(url: str, tmp: Path) -> Server:
    keys = Fernet.generate_key().decode()
    db.upgrade(url)
    engine = db.make_engine(url)
    (tmp / "a.csv").write_text(ACCOUNTS)
    import_accounts(engine, tmp / "a.csv", DataCipher([keys]))
    settings = Settings.from_env(
        {
            "OUTREACH_DATABASE_URL": url,
            "OUTREACH_DATA_KEYS": keys,
            "OUTREACH_SECRET_KEY": TEST_SECRET,
            "OUTREACH_CONFIG": str(ROOT / "config"),
            "OUTREACH_TEMPLATES": str(ROOT / "templates"),
            "OUTREACH_PUBLIC_URL": "https://pay.example.com",
        }
    )
    config = load_config(settings.config_dir, settings.templates_dir)
    clock = VirtualClock(T)
    adapters = {
        n: create_adapter(n, c, base_dir=tmp, clock=clock) for n, c in config.channels.items()
    }
    cipher = DataCipher(settings.data_keys)
    renderer = TemplateRenderer(ROOT / "templates")
    runner = Runner(
        engine,
        config,
        renderer,
        adapters,
        cipher,
        public_url="https://pay.example.com",
        secret=TEST_SECRET,
    )
    with engine.begin() as conn:  # one reminder each: the send its pay link names
        conn.execute(
            table_of(Send).insert(),
            [
                {
                    "message_id": f"m_{n:032x}",
                    "account_id": a,
                    "debtor_id": a,
                    "channel": "sms",
                    "status": "delivered",
                    "sent_at": T,
                }
                for n, a in enumerate(("E1", "Z1"), start=1)
            ],
        )
    return Server(
        db=engine, config=config, cipher=cipher, settings=settings, clock=clock, runner=runner
    )


def _tokens(server: Server) -> dict[str, str]:
    sends = table_of(Send)
    with server.db.connect() as conn:
        rows = conn.execute(sa.select(sends.c.account_id, sends.c.message_id)).all()
    first: dict[str, str] = {}
    for account, message in rows:
        first.setdefault(account, message)
    return {a: make_token(TEST_SECRET, m, "pay", T + timedelta(days=30)) for a, m in first.items()}


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):6.2f} ms  p99 {p99:6.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL at 127.0.0.1:5432")
    args = parser.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp, scratch_database(tmp, args.pg) as url:
        server = _server(url, Path(tmp))
        for account, token in sorted(_tokens(server).items()):
            page = ebill.show_bill(server, token, method="HEAD", user_agent=None)
            assert page is not None, account
            size = len(page.encode("utf-8"))
            full, alone = [], []
            for _ in range(args.rounds):
                start = time.perf_counter()
                ebill.show_bill(server, token, method="HEAD", user_agent=None)
                full.append((time.perf_counter() - start) * 1000)
            with server.db.connect() as conn:
                found = ebill._bill(server, conn, open_link(server, token, "pay"), token)
            assert found is not None
            for _ in range(args.rounds):
                start = time.perf_counter()
                render_bill(found.bill)
                alone.append((time.perf_counter() - start) * 1000)
            worst = max(worst, statistics.median(full))
            print(f"{account}: {size:6,} bytes (budget {BUDGET_BYTES:,})")
            print(f"    request (token, account, offers, page): {_ms(full)}")
            print(f"    rendering alone:                        {_ms(alone)}")
            if size >= BUDGET_BYTES:
                return 1
        server.db.dispose()
    print(f"budget: {BUDGET_MS:.0f} ms server-side; median of the slowest page {worst:.2f} ms")
    return 0 if worst < BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
