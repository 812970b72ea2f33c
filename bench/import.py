"""Import benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/import.py [--rows 100000,1000000] [--pg URL] [--no-pg]

For each size, generates a sample CSV (orchestrator.simulation.sample), then imports it into a
fresh SQLite database and a fresh PostgreSQL database, each in its own child process
so peak RSS (VmHWM) is per run. Beside it, the floor: plain sqlite3 reading the same
CSV with the csv module and executemany-ing the rows into a table of the same columns,
in the same run. Prints wall time, rows/s, the process's CPU time (a busy machine
shows as wall >> CPU), peak RSS (VmHWM of the one process doing the work) and the
ratio to the floor (target >= 1/5). The import is single-process. After the SQLite
import, the rows it wrote are inserted again, finished, into a fresh database of the real
schema: the schema's own cost (its indexes, its encrypted columns), beside the floor's.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    return time.process_time()


def _floor(csv_path: str, db_path: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    c0 = _cpu()
    t0 = time.perf_counter()
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        conn = sqlite3.connect(db_path)
        conn.execute(f"CREATE TABLE account ({', '.join(f'{c} TEXT' for c in header)})")
        conn.executemany(f"INSERT INTO account VALUES ({', '.join('?' * len(header))})", reader)
        conn.commit()
        conn.close()
    out.put((time.perf_counter() - t0, _cpu() - c0, _peak_rss_mb()))


def _import(csv_path: str, url: str, keys: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from orchestrator.core.crypto import DataCipher
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.store import db

    db.upgrade(url)
    engine = db.make_engine(url)
    c0 = _cpu()
    t0 = time.perf_counter()
    result = import_accounts(engine, csv_path, DataCipher([keys]))
    elapsed = time.perf_counter() - t0
    cpu = _cpu() - c0
    engine.dispose()
    out.put((elapsed, cpu, _peak_rss_mb(), result.inserted))


def _schema_floor(db_path: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """The rows the import wrote (``db_path``, encrypted, indexed), written again with
    plain sqlite3 executemany into a fresh database of the same schema: what the schema
    alone costs, with no parsing, validation or encryption."""
    from orchestrator.store import db

    src = sqlite3.connect(db_path)
    tables = ("debtor", "account")
    rows = {t: src.execute(f"SELECT * FROM {t}").fetchall() for t in tables}
    cols = {t: [c[1] for c in src.execute(f"PRAGMA table_info({t})")] for t in tables}
    src.close()
    copy = db_path + ".copy"
    db.upgrade(f"sqlite:///{copy}")
    dst = sqlite3.connect(copy)
    t0 = time.perf_counter()
    for t in tables:
        dst.executemany(
            f"INSERT INTO {t} ({', '.join(cols[t])}) VALUES ({', '.join('?' * len(cols[t]))})",
            rows[t],
        )
    dst.commit()
    dst.close()
    out.put(time.perf_counter() - t0)


def _child(target: Callable[..., None], *args: str) -> Any:
    """What ``target(*args, queue)`` puts on the queue, run in a child process."""
    queue: mp.Queue[Any] = mp.Queue()
    proc = mp.Process(target=target, args=(*args, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL admin URL")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()

    from cryptography.fernet import Fernet

    from orchestrator.simulation.sample import generate_accounts, write_csv

    keys = Fernet.generate_key().decode()
    for n in (int(x) for x in args.rows.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "accounts.csv"
            write_csv(generate_accounts(n, today=date(2026, 3, 2)), csv_path)
            size = csv_path.stat().st_size / 1e6
            print(f"--- {n:,} rows ({size:.0f} MB CSV)")
            f_elapsed, f_cpu, f_rss = _child(_floor, str(csv_path), str(Path(tmp) / "floor.db"))
            floor_rate = n / f_elapsed
            print(
                f"floor  sqlite3 executemany: {f_elapsed:7.2f} s (cpu {f_cpu:6.2f} s)  "
                f"{floor_rate:10,.0f} rows/s  peak RSS {f_rss:6.0f} MB"
            )
            runs = [("sqlite", f"sqlite:///{tmp}/outreach.db")]
            if not args.no_pg:
                runs.append(("postgresql", _create_pg(args.pg)))
            for label, url in runs:
                try:
                    elapsed, cpu, rss, inserted = _child(_import, str(csv_path), url, keys)
                finally:
                    if label == "postgresql":
                        _drop_pg(args.pg, url)
                rate = n / elapsed
                print(
                    f"import {label:<18}: {elapsed:7.2f} s (cpu {cpu:6.2f} s)  {rate:10,.0f} rows/s  "
                    f"peak RSS {rss:6.0f} MB  ratio to floor 1/{floor_rate / rate:.1f} "
                    f"({inserted:,} inserted)"
                )
                if label == "sqlite":
                    schema = _child(_schema_floor, f"{tmp}/outreach.db")
                    print(
                        f"  the same rows, finished, re-inserted with sqlite3 executemany into "
                        f"the real schema: {n / schema:10,.0f} rows/s = 1/"
                        f"{floor_rate * schema / n:.1f} of the floor (the schema's own cost, "
                        f"no parsing, validation or encryption)"
                    )


def _create_pg(admin: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"outreach_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg(admin: str, url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    engine.dispose()


if __name__ == "__main__":
    main()
