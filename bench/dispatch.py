"""Dispatch benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/dispatch.py [--accounts 10000] [--workers 1,2,4] [--sqlite]
        [--send-batch 100]

For each send batch cap (``OUTREACH_SEND_BATCH``, default 100; the runner claims as many
as it sends in about a quarter second, at most that) and worker count: a fresh PostgreSQL
database (or SQLite with --sqlite), N accounts each with one SMS due now, planned once;
then W ``outreach run --once`` processes start together and dispatch everything to the
outbox adapter. Prints sends/s overall, per worker, and the per-worker ratio to the
single worker (1.0 = perfect scaling), with the outbox journal checked for duplicates.
The time includes each process's start (imports, configuration).

Every run's files are deleted at the end, not between runs: ext4 passes over inodes freed
in the last minutes when it allocates new ones, so deleting one run's 10,000 outbox files
made the next run's file creation up to ten times slower (the same code measured 1,500
to 2,300 sends/s depending on what the run before it had deleted). For the same reason a
first, single-worker run warms up (the file system after whatever ran before, such as
the last benchmark's clean-up, and PostgreSQL): it is printed, not counted
(``--no-warm-up`` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support import scratch_database, setup_db  # noqa: E402

NOW = "2026-03-10T15:00:00+00:00"


def startup() -> float:
    """How long ``outreach run --once`` takes with nothing to do (imports, configuration,
    adapters): part of every figure below, whatever the number of sends."""
    with tempfile.TemporaryDirectory() as tmp:
        env, _ = setup_db(f"sqlite:///{tmp}/idle.db", Path(tmp), 0)
        args = [sys.executable, "-m", "orchestrator", "run", "--once", "--now", NOW]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(args, env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        return min(times)


def run(n: int, workers: int, sqlite: bool, batch: int, tmp: str) -> tuple[float, int, int]:
    """One run in ``tmp``, whose files stay until every run is done (see above)."""
    with scratch_database(tmp, not sqlite) as url:
        env, outbox = setup_db(url, Path(tmp), n)
        base = [sys.executable, "-m", "orchestrator", "run", "--once", "--now", NOW]
        # plan first (one process), so the figure is dispatch alone
        from orchestrator.cli.runcmd import build_runner

        env["OUTREACH_SEND_BATCH"] = str(batch)
        os.environ.update(env)
        runner, _ = build_runner(worker="planner")
        runner.plan(runner_clock_now())
        runner.db.dispose()
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*base, "--worker-id", f"w{i}"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(workers)
        ]
        for p in procs:
            p.communicate(timeout=1800)
        elapsed = time.perf_counter() - t0
        lines = [json.loads(x) for x in (outbox / "journal.jsonl").read_text().splitlines()]
        dupes = sum(c - 1 for c in Counter(x["message_id"] for x in lines).values())
        return elapsed, len(lines), dupes


def runner_clock_now() -> datetime:
    from orchestrator.clock import parse_instant

    return parse_instant(NOW)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--send-batch", default="100")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false")
    args = parser.parse_args()
    idle = startup()
    print(
        f"a worker process starts and exits with nothing to do in {idle:.1f} s; "
        f"'excluding start' below subtracts it",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as root:
        measure(args, idle, root)


def measure(args: argparse.Namespace, idle: float, root: str) -> None:
    runs = 0
    if args.warm_up:
        os.mkdir(os.path.join(root, "warm-up"))
        elapsed, sent, _ = run(
            args.accounts,
            1,
            args.sqlite,
            int(args.send_batch.split(",")[0]),
            os.path.join(root, "warm-up"),
        )
        print(
            f"warm-up (not counted): 1 worker: {sent:,} sends in {elapsed:.1f} s = "
            f"{sent / elapsed:,.0f} sends/s",
            flush=True,
        )
    for batch in [int(x) for x in args.send_batch.split(",")]:
        single = None
        for w in [int(x) for x in args.workers.split(",")]:
            runs += 1
            tmp = os.path.join(root, f"run{runs}")
            os.mkdir(tmp)
            elapsed, sent, dupes = run(args.accounts, w, args.sqlite, batch, tmp)
            rate = sent / elapsed
            single = single or rate
            working = sent / max(elapsed - idle, 1e-9)
            print(
                f"dispatch on {'sqlite' if args.sqlite else 'postgresql'}, send batch "
                f"{batch}: {w} worker(s): {sent:,} sends in {elapsed:.1f} s = "
                f"{rate:,.0f} sends/s ({rate / w:,.0f} per worker; per-worker ratio to 1 "
                f"worker {rate / w / single:.2f}); excluding start {working:,.0f} sends/s; "
                f"duplicates {dupes} (target: >= 2,000 sends/s for one worker)",
                flush=True,
            )


if __name__ == "__main__":
    main()
