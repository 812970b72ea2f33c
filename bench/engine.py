"""Engine benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/engine.py [--accounts 5000] [--days 30] [--jobs 1,2]
        [--pass-accounts 100000,1000000] [--dispatch-accounts 100000] [--no-pg]
        [--backends sqlite,postgresql] [--rounds 1]
        [--skip-simulate]

The yardstick is the product's own engine: what the rules cost in memory, measured in
the same run over the same generated accounts.

1. simulate: decisions/s for N sample accounts over D days (shipped config and
   templates), in one process and split across processes (``--jobs``; the same output).
   Two workloads: the sample portfolio (a quarter Chinese), and the mixed workload
   (US only, six time zones, every stage, the Massachusetts and Washington overlays on
   the limits, events on about a third of the accounts). Target: >= 5,000 decisions/s
   with one process on the mixed workload.
2. the daily pass over N accounts (``--pass-accounts``), each backend in a child process
   so that its peak RSS is its own:
   - in memory: every account planned for its local day (``plan_day``) and every
     occurrence gated at its planned instant, accounts streamed from the generator;
   - on the database (SQLite and PostgreSQL), the daemon's own code
     (``orchestrator.dispatch.runner``): the N accounts imported, then the planning
     round of the day before (the first: every account enters its stage; its
     occurrences are then dropped, not dispatched; on PostgreSQL a ``VACUUM ANALYZE``
     then stands for the day's autovacuum), then the round timed: the next day, every
     account due again, its facts read and replayed,
     its occurrences inserted and its plan written back;
   - ``--dispatch-accounts``: also the day's dispatch on the database (every due
     occurrence gated, rendered, handed to a channel that sends nothing, its decision
     recorded), hour by hour.
   Target: the planning round <= 3x the in-memory pass; peak RSS <= 500 MB at 1M.
   ``--rounds R``: the in-memory pass run R times, and R days planned on the database
   one after the other (each day's occurrences dropped, and on PostgreSQL vacuumed,
   before the next): the ratio is of the medians, every time printed. This machine's
   noise at 1M accounts is larger than the differences the ratio is asked to show.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
DAY = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)  # local midnight in New York


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_simulate(n: int, days: int, jobs: list[int], *, mixed: bool) -> None:
    config = load_config(ROOT / "config", ROOT / "templates")
    accounts = list(generate_accounts(n, today=START.date(), chinese_share=0 if mixed else 0.25))
    sample = generate_events(accounts, start=START, days=days)
    events = [ScenarioEvent(e.at, e.account, e.type, e.data) for e in sample]
    if mixed:
        describe_mixed(config, accounts, sample)
    scenario = Scenario(START, days, config, ROOT / "templates", accounts, events)
    name = "mixed workload" if mixed else "sample portfolio"
    for j in jobs:
        t0 = time.perf_counter()
        count = sum(1 for _ in simulate_lines(scenario, j))
        elapsed = time.perf_counter() - t0
        print(
            f"simulate --jobs {j}, {name}: {n} accounts x {days} days: {count:,} decisions "
            f"in {elapsed:.2f} s = {count / elapsed:,.0f} decisions/s"
            f"{' (target >= 5,000 with one process)' if mixed and j == 1 else ''}; "
            f"peak RSS {peak_rss_mb():.0f} MB (this process)",
            flush=True,
        )


def describe_mixed(config: Any, accounts: list[Any], events: list[Any]) -> None:
    """What the mixed workload holds: zones, stages, overlays and events."""
    book = RuleBook(config)
    zones = Counter(str(book.for_account(a).zones.primary) for a in accounts)
    stages = Counter(_stage(config, (START.date() - a.due_date).days) for a in accounts)
    overlays = sum(1 for a in accounts if book.for_account(a).overlays)
    kinds = Counter(e.type for e in events)
    with_events = len({e.account for e in events})
    kept = _kept_promises(events)
    print(
        f"mixed workload: {len(accounts):,} US accounts; zones "
        + ", ".join(f"{z} {c}" for z, c in sorted(zones.items()))
        + "; stages "
        + ", ".join(f"{s} {c}" for s, c in sorted(stages.items()))
        + f"; {overlays:,} under a state overlay (US-MA, US-WA); events on {with_events:,} "
        f"accounts ({with_events / len(accounts):.0%}): "
        + ", ".join(f"{k} {c}" for k, c in sorted(kinds.items()))
        + f" (promises kept {kept}, broken {kinds['promise'] - kept})",
        flush=True,
    )


def _stage(config: Any, dpd: int) -> str:
    stage = config.cadences.stage_for(dpd)
    return stage.id if stage is not None else f"no stage (DPD {dpd})"


def _kept_promises(events: list[Any]) -> int:
    promised = {e.account for e in events if e.type == "promise"}
    return len({e.account for e in events if e.type == "payment" and e.account in promised})


def _memory_pass(n: int, rounds: int, out: Any) -> None:
    """Child process: the in-memory engine over the N generated accounts, streamed,
    for the ``rounds`` days the database plans (each with a new rule book)."""
    config = load_config(ROOT / "config", ROOT / "templates")
    times: list[tuple[float, float]] = []
    counts: list[int] = []
    clock = time.perf_counter
    for day in range(1, rounds + 1):
        now = DAY + timedelta(days=day)
        book = RuleBook(config)
        history = SendHistory()
        t_plan = t_gate = 0.0
        occurrences = 0
        for account in generate_accounts(n, today=DAY.date()):
            t0 = clock()
            rules = book.for_account(account)
            state = AccountState(account, rules.zones)
            planned = plan_day(state, rules, now.astimezone(rules.zones.primary).date())
            t1 = clock()
            for occ in planned:
                evaluate(occ, state, history, rules, occ.planned_at)
            t_gate += clock() - t1
            t_plan += t1 - t0
            occurrences += len(planned)
        times.append((t_plan, t_gate))
        counts.append(occurrences)
    out.put((times, counts, _vm_hwm_mb()))


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def _db_pass(url: str, n: int, dispatch: bool, rounds: int, out: Any) -> None:
    """Child process: import N accounts, plan the day before, then time the next
    ``rounds`` days' planning rounds (and, with ``dispatch``, the last day's dispatch)."""
    import sqlalchemy as sa

    from channels.simulated import SimulatedChannel
    from orchestrator.clock import VirtualClock
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.core.crypto import DataCipher
    from orchestrator.dispatch.runner import Runner
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.simulation.sample import write_csv
    from orchestrator.store import db

    config = load_config(ROOT / "config", ROOT / "templates")
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "accounts.csv"
        write_csv(generate_accounts(n, today=DAY.date()), csv_path)
        db.upgrade(url)
        engine = db.make_engine(url)
        cipher = DataCipher.ephemeral()
        t0 = time.perf_counter()
        import_accounts(engine, csv_path, cipher)
        t_import = time.perf_counter() - t0
        csv_path.unlink()
        now = DAY + timedelta(days=1)
        clock = VirtualClock(DAY)
        channel = SimulatedChannel()
        runner = Runner(
            engine,
            config,
            TemplateRenderer(ROOT / "templates"),
            {c: channel for c in config.channels},
            cipher,
            public_url="http://127.0.0.1:8000",
            secret="bench",
            batch=1000,
        )
        t0 = time.perf_counter()
        runner.plan(DAY)
        t_first = time.perf_counter() - t0
        t_plans: list[float] = []
        planned: list[int] = []
        for day in range(1, rounds + 1):
            with engine.begin() as conn:  # a day before is not dispatched here: only its stages
                conn.execute(sa.text("DELETE FROM occurrence"))
            if engine.dialect.name == "postgresql":
                # A day passes between two rounds, and autovacuum with it: the first round
                # rewrote every account's stage (and the occurrences just went). Left to
                # run, autovacuum would share the timed round's two cores.
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text("VACUUM ANALYZE"))
            now = DAY + timedelta(days=day)
            clock.set(now)
            t0 = time.perf_counter()
            planned.append(runner.plan(now) or 0)
            t_plans.append(time.perf_counter() - t0)
        decisions: dict[str, int] = {}
        t_dispatch = 0.0
        if dispatch:
            t0 = time.perf_counter()
            for hour in range(1, 25):
                clock.set(now + timedelta(hours=hour))
                result = runner.dispatch(clock.now())
                for k, v in result.decisions.items():
                    decisions[k] = decisions.get(k, 0) + v
            t_dispatch = time.perf_counter() - t0
        engine.dispose()
    out.put((t_import, t_first, planned, t_plans, t_dispatch, decisions, _vm_hwm_mb()))


def _child(target: Any, *args: Any) -> Any:
    import multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=target, args=(*args, queue))
    proc.start()
    found = queue.get()
    proc.join()
    return found


def _times(values: list[float]) -> str:
    """The median of ``values``, and each of them when there are several."""
    median = f"{statistics.median(values):.2f} s"
    if len(values) == 1:
        return median
    return f"{median} (median of {', '.join(f'{v:.2f}' for v in values)})"


def _counts(counts: list[int]) -> str:
    """Occurrences planned, a figure for each day."""
    return " / ".join(f"{c:,}" for c in counts)


def bench_pass(
    sizes: list[int], dispatch_sizes: set[int], backends: list[str], rounds: int
) -> None:
    for n in sizes:
        times, counts, rss = _child(_memory_pass, n, rounds)
        t_plan = statistics.median(p for p, _ in times)
        t_gate = statistics.median(g for _, g in times)
        memory = statistics.median(p + g for p, g in times)
        print(
            f"daily pass in memory: {n:,} accounts: plan {_counts(counts)} occurrences "
            f"{t_plan:.2f} s + gate them {t_gate:.2f} s = {_times([p + g for p, g in times])}; "
            f"peak RSS {rss:.0f} MB",
            flush=True,
        )
        for backend in backends:
            with (
                tempfile.TemporaryDirectory() as tmp,
                scratch_database(tmp, backend == "postgresql") as url,
            ):
                found = _child(_db_pass, url, n, n in dispatch_sizes, rounds)
            t_import, t_first, planned, t_dbs, t_dispatch, decisions, rss = found
            t_db = statistics.median(t_dbs)
            line = (
                f"daily pass on {backend}: {n:,} accounts: planning round {_times(t_dbs)} "
                f"({_counts(planned)} occurrences) = {t_db / memory:.1f}x the in-memory plan+gate, "
                f"{t_db / t_plan:.1f}x its plan alone (target <= 3x); "
                f"peak RSS {rss:.0f} MB (target <= 500 MB at 1M); "
                f"import {t_import:.1f} s, first round {t_first:.1f} s"
            )
            if n in dispatch_sizes:
                made = sum(decisions.values())
                line += (
                    f"; dispatch of the day {t_dispatch:.1f} s ({made:,} decisions: "
                    f"{decisions}); plan+dispatch {(t_db + t_dispatch) / memory:.1f}x"
                )
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--pass-accounts", default="100000,1000000")
    parser.add_argument("--dispatch-accounts", default="100000")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--backends", default="sqlite,postgresql", help="databases to time")
    parser.add_argument("--skip-simulate", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="daily passes timed, each")
    parser.add_argument("--jobs", default="1,2", help="simulate --jobs values to time")
    args = parser.parse_args()
    if not args.skip_simulate:
        jobs = [int(j) for j in args.jobs.split(",")]
        bench_simulate(args.accounts, args.days, jobs, mixed=False)
        bench_simulate(args.accounts, args.days, jobs, mixed=True)
    sizes = [int(x) for x in args.pass_accounts.split(",") if x.strip()]
    dispatch = {int(x) for x in args.dispatch_accounts.split(",") if x.strip()}
    backends = [b for b in args.backends.split(",") if b and not (args.no_pg and b == "postgresql")]
    bench_pass(sizes, dispatch, backends, max(args.rounds, 1))


if __name__ == "__main__":
    main()
