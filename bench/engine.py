"""Engine benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/engine.py [--accounts 5000] [--days 30] [--pass-accounts 100000]
        [--db-accounts 100000,1000000] [--no-pg] [--skip-simulate]

1. simulate: decisions/s for N sample accounts over D days (shipped config and templates),
   in one process and split across processes (``--jobs``; the same output).
2. daily plan+gate pass, in memory: N accounts planned for one local day and every
   occurrence gated at its planned instant (the pure engine, no database).
3. daily plan+gate pass on the database (SQLite and PostgreSQL), the daemon's own code
   (``orchestrator.dispatch.runner``): import N generated accounts, plan the day for all of them,
   then dispatch hourly for 24 hours (gate, render, outbox write, decision rows; letters
   written as HTML, not printed to PDF), each size in a child process so peak RSS is its
   own. Beside it, the floor measured in the same
   run on the same database: plain SQL reading the N account rows and writing N rows.
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
sys.path.insert(0, str(ROOT / "tests"))

from support import scratch_database  # noqa: E402

from orchestrator.config.loading import load_config  # noqa: E402
from orchestrator.core.gate import evaluate  # noqa: E402
from orchestrator.core.planner import plan_day  # noqa: E402
from orchestrator.core.rules import RuleBook  # noqa: E402
from orchestrator.core.state import AccountState, SendHistory  # noqa: E402
from orchestrator.simulation.events import ScenarioEvent  # noqa: E402
from orchestrator.simulation.sample import generate_accounts, generate_events  # noqa: E402
from orchestrator.simulation.simulate import Scenario, simulate_lines  # noqa: E402

START = datetime(2026, 3, 2, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_simulate(n: int, days: int, jobs: list[int]) -> None:
    config = load_config(ROOT / "config", ROOT / "templates")
    accounts = list(generate_accounts(n, today=START.date()))
    events = [
        ScenarioEvent(e.at, e.account, e.type, e.data)
        for e in generate_events(accounts, start=START, days=days)
    ]
    scenario = Scenario(START, days, config, ROOT / "templates", accounts, events)
    for j in jobs:
        t0 = time.perf_counter()
        count = sum(1 for _ in simulate_lines(scenario, j))
        elapsed = time.perf_counter() - t0
        print(
            f"simulate --jobs {j}: {n} accounts x {days} days: {count} decisions in "
            f"{elapsed:.2f} s = {count / elapsed:,.0f} decisions/s (target >= 5,000); "
            f"peak RSS {peak_rss_mb():.0f} MB (this process)",
            flush=True,
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
    # Generated before the clock starts: the floor reads its rows, the pass is handed them.
    accounts = list(generate_accounts(n, today=START.date()))
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


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def _db_floor(url: str, n: int) -> float:
    """Plain SQL on the same database: read the N account rows, write N narrow rows."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "create table floor_out (account text, step text, "
                "time text, decision text, reason text)"
            )
        )
    t0 = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("select account_id, due_date, balance, timezone from account")
        rows = cur.fetchall()
        marker = "?" if url.startswith("sqlite") else "%s"
        cur.executemany(
            f"insert into floor_out values ({', '.join([marker] * 5)})",
            [(r[0], "step", "2026-03-09T15:00:00Z", "sent", None) for r in rows],
        )
        raw.commit()
    finally:
        raw.close()
    engine.dispose()
    return time.perf_counter() - t0


def _db_pass(url: str, n: int, out: object) -> None:
    """Child process: import N accounts, then one day of the daemon's plan + dispatch."""
    from channels.outbox.adapter import OutboxChannel
    from orchestrator.clock import VirtualClock
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.core.crypto import DataCipher
    from orchestrator.dispatch.runner import Runner
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.simulation.sample import write_csv
    from orchestrator.store import db

    day = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)  # local midnight in New York
    config = load_config(ROOT / "config", ROOT / "templates")
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "accounts.csv"
        write_csv(generate_accounts(n, today=day.date()), csv_path)
        db.upgrade(url)
        engine = db.make_engine(url)
        cipher = DataCipher.ephemeral()
        t0 = time.perf_counter()
        import_accounts(engine, csv_path, cipher)
        t_import = time.perf_counter() - t0
        clock = VirtualClock(day)
        # Letters as HTML only: printing a PDF (WeasyPrint, ~0.2 s a letter) would be the
        # whole figure, and it is the letter adapter's work, not the engine's.
        outbox = {
            c: OutboxChannel(c, Path(tmp) / "outbox", clock, pdf=False) for c in config.channels
        }
        runner = Runner(
            engine,
            config,
            TemplateRenderer(ROOT / "templates"),
            outbox,
            cipher,
            public_url="http://127.0.0.1:8000",
            secret="bench",
            batch=1000,
        )
        t0 = time.perf_counter()
        planned = runner.plan(day)
        t_plan = time.perf_counter() - t0
        decisions: dict[str, int] = {}
        t0 = time.perf_counter()
        for hour in range(1, 25):
            clock.set(day + timedelta(hours=hour))
            result = runner.dispatch(clock.now())
            for k, v in result.decisions.items():
                decisions[k] = decisions.get(k, 0) + v
        t_dispatch = time.perf_counter() - t0
        engine.dispose()
        peak = _vm_hwm_mb()  # the pass's own peak: the floor below holds all N rows at once
        t_floor = _db_floor(url, n)
    out.put((t_import, planned, t_plan, t_dispatch, decisions, t_floor, peak))  # type: ignore[attr-defined]


def bench_db_pass(sizes: list[int], with_pg: bool) -> None:
    import multiprocessing as mp

    for n in sizes:
        backends = ["sqlite"] + (["postgresql"] if with_pg else [])
        for backend in backends:
            with (
                tempfile.TemporaryDirectory() as tmp,
                scratch_database(tmp, backend == "postgresql") as url,
            ):
                queue: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
                proc = mp.get_context("spawn").Process(target=_db_pass, args=(url, n, queue))
                proc.start()
                t_import, planned, t_plan, t_dispatch, decisions, t_floor, rss = queue.get()
                proc.join()
            total = t_plan + t_dispatch
            made = sum(decisions.values())
            print(
                f"daily pass on {backend}: {n:,} accounts: plan {planned:,} occurrences in "
                f"{t_plan:.1f} s + dispatch {made:,} decisions in {t_dispatch:.1f} s = "
                f"{total:.1f} s; floor (plain SQL read {n:,} + write {n:,}) {t_floor:.2f} s; "
                f"ratio {total / t_floor:.0f}x (target <= 3x); peak RSS {rss:.0f} MB "
                f"(target < 500 MB); import took {t_import:.1f} s; {decisions}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--pass-accounts", type=int, default=100_000)
    parser.add_argument("--db-accounts", default="100000,1000000")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--skip-simulate", action="store_true")
    parser.add_argument("--jobs", default="1,2", help="simulate --jobs values to time")
    args = parser.parse_args()
    if not args.skip_simulate:
        bench_simulate(args.accounts, args.days, [int(j) for j in args.jobs.split(",")])
        bench_pass(args.pass_accounts)
    sizes = [int(x) for x in args.db_accounts.split(",") if x.strip()]
    bench_db_pass(sizes, with_pg=not args.no_pg)


if __name__ == "__main__":
    main()
