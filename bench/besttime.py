"""``at: best`` planning benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/besttime.py [--accounts 20000] [--db-accounts 20000] [--rounds 5]

The shipped configuration, planned as it is (every step at a fixed ``at``) and with every
step and trigger ``at: best``, in the same run, interleaved (machines are noisy: compare
the ratio, not the seconds). Target (issue 23): ``at: best`` within 20% of fixed.

1. in memory: one local day of ``plan_day`` for N sample accounts, each debtor with a
   history of ~12 counted sends per channel at random hours (what ``at: best`` reads);
2. on SQLite, the daemon's own planning round (``Runner.plan``) over N imported accounts,
   with ``contact_hour`` filled the same way (the round's fold and the page reads
   included).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.config.loading import load_config  # noqa: E402
from orchestrator.config.models import Config  # noqa: E402
from orchestrator.core.besttime import HourBook  # noqa: E402
from orchestrator.core.planner import plan_day  # noqa: E402
from orchestrator.core.rules import RuleBook  # noqa: E402
from orchestrator.core.state import AccountState  # noqa: E402
from orchestrator.simulation.sample import generate_accounts  # noqa: E402

DAY = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)  # local midnight in New York
CHANNELS = ("sms", "voice", "email")


def best_config(config: Config) -> Config:
    """The same configuration with every step and trigger planned ``at: best``."""
    data: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)

    def best(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            step["at"] = "best"

    for stage in data["cadences"]["stages"]:
        best(stage["steps"])
    best(data["cadences"]["triggers"])
    for experiment in data["experiments"]["experiments"]:
        for arm in experiment["arms"]:
            best(arm.get("steps") or [])
    return Config.model_validate(data)


def history(debtors: list[str], seed: int = 5) -> HourBook:
    rng = random.Random(seed)
    book = HourBook()
    for debtor in debtors:
        for channel in CHANNELS:
            for _ in range(12):
                hour = rng.randint(8, 20)
                book.record(debtor, "standard", channel, hour, rng.random() < 0.15)
    return book


def _interleaved(
    fixed: Config, best: Config, rounds: int, run: Callable[[Config], tuple[float, int]]
) -> tuple[float, float, dict[str, int]]:
    """The median seconds of ``run`` under each configuration, taking turns (machines are
    noisy: both see the same noise), and the occurrences each planned."""
    times: dict[str, list[float]] = {"fixed": [], "best": []}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for name, config in (("fixed", fixed), ("best", best)):
            elapsed, counts[name] = run(config)
            times[name].append(elapsed)
    return statistics.median(times["fixed"]), statistics.median(times["best"]), counts


def _memory_pass(config: Config, accounts: list[Any], book: HourBook) -> tuple[float, int]:
    rules_of = RuleBook(config)
    t0 = time.perf_counter()
    planned = 0
    for account in accounts:
        rules = rules_of.for_account(account)
        state = AccountState(account, rules.zones, hours=book)
        planned += len(plan_day(state, rules, DAY.astimezone(rules.zones.primary).date()))
    return time.perf_counter() - t0, planned


def bench_memory(n: int, rounds: int) -> None:
    fixed = load_config(ROOT / "config", ROOT / "templates")
    best = best_config(fixed)
    accounts = list(generate_accounts(n, today=DAY.date()))
    book = history(sorted({a.debtor_id for a in accounts}))
    f, b, counts = _interleaved(fixed, best, rounds, lambda c: _memory_pass(c, accounts, book))
    print(
        f"plan_day in memory, {n:,} accounts ({counts['fixed']:,} occurrences): fixed "
        f"{f:.2f} s, at: best {b:.2f} s (medians of {rounds}); at: best / fixed = "
        f"{b / f:.2f} (target <= 1.20)"
    )


def _db_round(config: Config, n: int) -> tuple[float, int]:
    import sqlalchemy as sa

    from channels.simulated import SimulatedChannel
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.core.crypto import DataCipher
    from orchestrator.dispatch.runner import Runner
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.simulation.sample import write_csv
    from orchestrator.store import db
    from orchestrator.store.tables import ContactHour, table_of

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        accounts = list(generate_accounts(n, today=DAY.date()))
        csv_path = Path(tmp) / "accounts.csv"
        write_csv(accounts, csv_path)
        db.upgrade(url)
        engine = db.make_engine(url)
        cipher = DataCipher.ephemeral()
        import_accounts(engine, csv_path, cipher)
        book = history(sorted({a.debtor_id for a in accounts}))
        rows = [
            {
                "scope": s,
                "key": k,
                "channel": c,
                "sent": ",".join(map(str, counts.sent)),
                "answered": ",".join(map(str, counts.answered)),
            }
            for (s, k, c), counts in book.cells.items()
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(table_of(ContactHour)), rows)
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
        planned = runner.plan(DAY)
        elapsed = time.perf_counter() - t0
        engine.dispose()
    return elapsed, planned


def bench_db(n: int, rounds: int) -> None:
    fixed = load_config(ROOT / "config", ROOT / "templates")
    best = best_config(fixed)
    f, b, counts = _interleaved(fixed, best, rounds, lambda c: _db_round(c, n))
    print(
        f"planning round on SQLite, {n:,} accounts ({counts['fixed']:,} occurrences): fixed "
        f"{f:.2f} s, at: best {b:.2f} s (medians of {rounds}); at: best / fixed = "
        f"{b / f:.2f} (target <= 1.20)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--db-accounts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bench_memory(args.accounts, args.rounds)
    if args.db_accounts:
        bench_db(args.db_accounts, max(1, args.rounds // 2))


if __name__ == "__main__":
    main()
