"""Report benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/report.py [--decisions 1000000] [--accounts 100000] [--db URL]

Fills a fresh SQLite database (or the empty database at --db) with a synthetic month of
activity: accounts across every stage, decisions of every kind and reason (about 40%
``sent``, each with its send and a delivery status), promises, payments, conversations,
opt-outs and complaints. Then times ``build_report`` over the month and the HTML render,
and prints rows per second and the peak memory of the report process. Target (issue 9):
the report over 1M decisions in under 30 s on SQLite.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.config.loading import load_config  # noqa: E402
from orchestrator.reporting.html import render_html  # noqa: E402
from orchestrator.reporting.kpis import build_report  # noqa: E402
from orchestrator.store import db  # noqa: E402
from orchestrator.store.tables import (  # noqa: E402
    AccountEvent,
    AccountRow,
    Debtor,
    Decision,
    OptOut,
    Payment,
    Promise,
    Send,
    table_of,
)

START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 30
CHANNELS = ("sms", "sms", "voice", "email", "letter")
OUTCOMES = (
    ("sent", None),
    ("sent", None),
    ("sent", None),
    ("sent", None),
    ("deferred", "quiet_hours"),
    ("deferred", "limit:sms-daily"),
    ("deferred", "holiday"),
    ("suppressed", "promise_pending"),
    ("suppressed", "paid"),
    ("suppressed", "opted_out"),
    ("blocked", "no_consent"),
    ("skipped", "expired"),
)
STATUSES = ("delivered", "delivered", "delivered", "undelivered", "answered", "clicked", "sent")
BATCH = 20_000


def fill(url: str, n_decisions: int, n_accounts: int) -> None:
    rng = random.Random(5)
    db.upgrade(url)
    engine = db.make_engine(url)
    ids = [f"B{i:07d}" for i in range(n_accounts)]
    dues = {aid: START.date() - timedelta(days=rng.randint(1, 150)) for aid in ids}
    with engine.begin() as conn:
        conn.execute(table_of(Debtor).insert(), [{"id": aid} for aid in ids])
        conn.execute(
            table_of(AccountRow).insert(),
            [
                {
                    "account_id": aid,
                    "debtor_id": aid,
                    "due_date": dues[aid],
                    "balance": Decimal(rng.randint(100, 5000)),
                    "currency": rng.choice(("USD", "CNY")),
                    "status": "open",
                    "timezone": rng.choice(("America/New_York", "Asia/Shanghai")),
                }
                for aid in ids
            ],
        )
        payments, promises, events, optouts = [], [], [], []
        for i, aid in enumerate(ids):
            when = START + timedelta(minutes=rng.randint(0, DAYS * 1440 - 1))
            roll = rng.random()
            if roll < 0.15:
                payments.append(
                    {
                        "payment_id": f"p{i}",
                        "account_id": aid,
                        "paid_at": when,
                        "amount": Decimal(rng.randint(20, 500)),
                    }
                )
            if roll < 0.25:
                promises.append(
                    {
                        "account_id": aid,
                        "amount": Decimal(100),
                        "made_at": when,
                        "due": (when + timedelta(days=7)).date(),
                        "state": rng.choice(("kept", "broken", "pending")),
                    }
                )
            if roll < 0.30:
                events.append(
                    {
                        "account_id": aid,
                        "type": "conversation",
                        "channel": "voice",
                        "time": when - timedelta(hours=1),
                    }
                )
            if roll > 0.995:
                events.append(
                    {"account_id": aid, "type": "complaint", "channel": None, "time": when}
                )
            if 0.96 < roll < 0.98:
                optouts.append(
                    {"debtor_id": aid, "account_id": aid, "channel": "sms", "created_at": when}
                )
        for table, rows in (
            (Payment, payments),
            (Promise, promises),
            (AccountEvent, events),
            (OptOut, optouts),
        ):
            if rows:
                conn.execute(table_of(table).insert(), rows)
    made = 0
    while made < n_decisions:
        decisions, sends = [], []
        for _ in range(min(BATCH, n_decisions - made)):
            aid = ids[rng.randrange(n_accounts)]
            when = START + timedelta(minutes=rng.randint(0, DAYS * 1440 - 1))
            dpd = (when.date() - dues[aid]).days
            stage = "M1" if dpd <= 30 else "M2" if dpd <= 60 else "M3" if dpd <= 90 else "M3+"
            channel = rng.choice(CHANNELS)
            decision, reason = rng.choice(OUTCOMES)
            message_id = f"m{made}" if decision == "sent" else None
            decisions.append(
                {
                    "time": when,
                    "account_id": aid,
                    "debtor_id": aid,
                    "stage": stage,
                    "step": f"{stage}-{channel}",
                    "channel": channel,
                    "kind": "collection",
                    "decision": decision,
                    "reason": reason,
                    "message_id": message_id,
                }
            )
            if message_id:
                sends.append(
                    {
                        "message_id": message_id,
                        "account_id": aid,
                        "debtor_id": aid,
                        "channel": channel,
                        "status": rng.choice(STATUSES),
                        "sent_at": when,
                        "segments": 1,
                    }
                )
            made += 1
        with engine.begin() as conn:
            conn.execute(table_of(Decision).insert(), decisions)
            if sends:
                conn.execute(table_of(Send).insert(), sends)
        print(f"\rfilled {made:,} decisions", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--db", help="an empty database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    config = load_config(ROOT / "config", ROOT / "templates")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        fill(url, args.decisions, args.accounts)
        print(
            f"fill: {args.decisions:,} decisions, {args.accounts:,} accounts "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        engine = db.make_engine(url)
        t0 = time.perf_counter()
        with engine.connect() as conn:
            report = build_report(conn, config, date(2026, 3, 1), date(2026, 3, 30))
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        html = render_html(report)
        rendered = time.perf_counter() - t0
        engine.dispose()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"report on {url.split(':', 1)[0]}: built in {built:.1f} s "
            f"({args.decisions / built:,.0f} decisions/s; target < 30 s for 1M), "
            f"HTML {len(html) / 1024:.0f} KiB in {rendered:.2f} s, "
            f"peak RSS {peak:.0f} MiB"
        )
        print(
            f"check: sends {report['total']['sends']:,}, accounts "
            f"{report['total']['accounts']:,}, contact rate "
            f"{report['total']['contact_rate']['value']:.3f}"
        )


if __name__ == "__main__":
    main()
