"""Engine benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/engine.py [--accounts 5000] [--days 30] [--pass-accounts 100000]

1. simulate: decisions/s for N sample accounts over D days (shipped config and templates).
2. daily plan+gate pass: N accounts planned for one local day and every occurrence gated
   at its planned instant (pure engine, in memory), beside the floor: plain sqlite3 reading
   N account rows and writing N decision rows. Peak RSS is printed for each.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.configload import load_config  # noqa: E402
from orchestrator.events import ScenarioEvent  # noqa: E402
from orchestrator.gate import evaluate  # noqa: E402
from orchestrator.planner import plan_day  # noqa: E402
from orchestrator.rules import RuleBook  # noqa: E402
from orchestrator.sample import generate_accounts, generate_events  # noqa: E402
from orchestrator.simulate import Scenario, Simulation  # noqa: E402
from orchestrator.state import AccountState, SendHistory  # noqa: E402

START = datetime(2026, 3, 2, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_simulate(n: int, days: int) -> None:
    config = load_config(ROOT / "config", ROOT / "templates")
    accounts = list(generate_accounts(n, today=START.date()))
    events = [
        ScenarioEvent(e.at, e.account, e.type, e.data)
        for e in generate_events(accounts, start=START, days=days)
    ]
    scenario = Scenario(START, days, config, ROOT / "templates", accounts, events)
    t0 = time.perf_counter()
    count = sum(1 for _ in Simulation(scenario).run())
    elapsed = time.perf_counter() - t0
    print(
        f"simulate: {n} accounts x {days} days: {count} decisions in {elapsed:.2f} s "
        f"= {count / elapsed:,.0f} decisions/s (target >= 5,000); peak RSS {peak_rss_mb():.0f} MB"
    )


def floor(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db")
        db.execute("create table account (id text primary key, due text, balance text, tz text)")
        db.executemany(
            "insert into account values (?, ?, ?, ?)",
            ((f"A{i}", "2026-02-01", "100.00", "America/New_York") for i in range(n)),
        )
        db.execute(
            "create table decision (account text, step text, time text, decision text, reason text)"
        )
        db.commit()
        t0 = time.perf_counter()
        rows = db.execute("select id, due, balance, tz from account")
        db.executemany(
            "insert into decision values (?, ?, ?, ?, ?)",
            ((r[0], "step", "2026-03-02T15:00:00Z", "sent", None) for r in rows),
        )
        db.commit()
        return time.perf_counter() - t0


def bench_pass(n: int) -> None:
    config = load_config(ROOT / "config", ROOT / "templates")
    book = RuleBook(config)
    accounts = generate_accounts(n, today=START.date())
    history = SendHistory()
    t0 = time.perf_counter()
    decisions = 0
    for account in accounts:
        rules = book.for_account(account)
        state = AccountState(account, rules.zones)
        day = START.astimezone(rules.zones.primary).date()
        for occ in plan_day(state, rules, day):
            evaluate(occ, state, history, rules, occ.planned_at)
            decisions += 1
    elapsed = time.perf_counter() - t0
    base = floor(n)
    print(
        f"daily plan+gate (in memory): {n:,} accounts, {decisions:,} occurrences in "
        f"{elapsed:.2f} s; floor (sqlite3 read {n:,} + write {n:,}) {base:.2f} s; "
        f"ratio {elapsed / base:.1f}x (target <= 3x); peak RSS {peak_rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--pass-accounts", type=int, default=100_000)
    args = parser.parse_args()
    bench_simulate(args.accounts, args.days)
    bench_pass(args.pass_accounts)
    _ = timedelta


if __name__ == "__main__":
    main()
