"""Partitioned planning benchmark (PostgreSQL): prints figures, asserts nothing.

    .venv/bin/python bench/partitions.py [--accounts 100000] [--workers 1,2] [--rounds 2]

Imports N sample accounts into a scratch PostgreSQL database, then plans the day with 1
worker and with 2 worker processes at once (each its own ``Runner``, as two daemons on
one database), resetting the plan between runs, taking turns. Prints accounts planned
per second for each and the ratio. Target (issue 27): 2 workers >= 1.6x the rate of one.
This machine has 2 cores that PostgreSQL shares with the workers: say what you see.

Beside each figure, how many of the machine's cores were busy on average during the run
(``/proc/stat``: the workers, PostgreSQL and anything else) and the processor time it
took in all. A round that already keeps every core busy with one worker can go faster
with two only by doing less work: the cores, not the workers, are then the limit.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support import scratch_database  # noqa: E402

DAY = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)  # local midnight in New York


def _runner(url: str, worker: str, key: str) -> Any:
    from channels.simulated import SimulatedChannel
    from orchestrator.config.loading import load_config
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.core.crypto import DataCipher
    from orchestrator.dispatch.runner import Runner
    from orchestrator.store import db

    config = load_config(ROOT / "config", ROOT / "templates")
    channel = SimulatedChannel()
    return Runner(
        db.make_engine(url),
        config,
        TemplateRenderer(ROOT / "templates"),
        {c: channel for c in config.channels},
        DataCipher([key]),
        public_url="http://127.0.0.1:8000",
        secret="bench",
        batch=1000,
        worker=worker,
    )


def _plan(url: str, worker: str, key: str, start: Any, out: Any) -> None:
    runner = _runner(url, worker, key)
    start.wait()
    t0 = time.perf_counter()
    planned = runner.plan(DAY)
    out.put((planned, time.perf_counter() - t0))
    runner.db.dispose()


def _reset(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM occurrence"))
        conn.execute(sa.text("DELETE FROM planner_state"))
        conn.execute(sa.text("DELETE FROM account_plan"))
    engine.dispose()


def cpu_jiffies() -> tuple[int, int]:
    """The machine's processor time so far (``/proc/stat``, all cores): busy, and in all
    (idle and waiting for I/O included), in clock ticks."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def run(url: str, workers: int, key: str) -> tuple[float, int, float]:
    """Wall seconds for ``workers`` processes to plan the day, occurrences planned, and
    the cores busy on average meanwhile."""
    _reset(url)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_plan, args=(url, f"w{i}", key, start, out)) for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    time.sleep(3)  # every process has imported and built its runner
    busy0, total0 = cpu_jiffies()
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=3600) for _ in procs]  # a worker that died: queue.Empty
    elapsed = time.perf_counter() - t0
    busy1, total1 = cpu_jiffies()
    for proc in procs:
        proc.join()
    cores = (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)
    return elapsed, sum(planned or 0 for planned, _ in results), cores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    from cryptography.fernet import Fernet

    from orchestrator.core.crypto import DataCipher
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.simulation.sample import generate_accounts, write_csv
    from orchestrator.store import db

    with tempfile.TemporaryDirectory() as tmp, scratch_database(tmp, True) as url:
        csv_path = Path(tmp) / "accounts.csv"
        write_csv(generate_accounts(args.accounts, today=DAY.date()), csv_path)
        db.upgrade(url)
        engine = db.make_engine(url)
        key = Fernet.generate_key().decode()  # every worker reads with the same key
        import_accounts(engine, csv_path, DataCipher([key]))
        engine.dispose()
        times: dict[int, list[float]] = {n: [] for n in counts}
        busy: dict[int, list[float]] = {n: [] for n in counts}
        planned: dict[int, int] = {}
        for _ in range(args.rounds):
            for n in counts:
                elapsed, planned[n], cores = run(url, n, key)
                times[n].append(elapsed)
                busy[n].append(cores)
    ncpu = os.cpu_count() or 1
    rate = {n: args.accounts / statistics.median(times[n]) for n in counts}
    for n in counts:
        wall, cores = statistics.median(times[n]), statistics.median(busy[n])
        print(
            f"planning {args.accounts:,} accounts on PostgreSQL with {n} worker(s): "
            f"{wall:.1f} s (median of {args.rounds}), "
            f"{rate[n]:,.0f} accounts/s, {planned[n]:,} occurrences; "
            f"{cores:.2f} of {ncpu} cores busy, {cores * wall:.0f} core-seconds in all"
        )
    if 1 in rate:
        alone = statistics.median(busy[1])
        for n in counts:
            if n != 1:
                print(
                    f"{n} workers / 1 worker: {rate[n] / rate[1]:.2f}x (target >= 1.6x); "
                    f"one worker already kept {alone:.2f} of {ncpu} cores busy"
                )


if __name__ == "__main__":
    main()
