"""`outreach demo` leaves a database the reports and `account show` can read."""

from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console

from orchestrator.demo import run_demo

ROOT = Path(__file__).resolve().parent.parent


def test_demo_stores_what_it_decided(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    summary = run_demo(accounts=40, days=10, out_dir=out, config_dir=ROOT / "config",
                       templates_dir=ROOT / "templates", console=Console(file=StringIO()))
    log = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert sum(summary["decisions"].values()) == len(log) > 0

    engine = sa.create_engine(f"sqlite:///{out / 'outreach.db'}")
    with engine.connect() as conn:
        def count(sql: str) -> int:
            return conn.execute(sa.text(sql)).scalar_one()

        assert count("select count(*) from account") == 40
        assert count("select count(*) from decision") == len(log)
        sent = [r for r in log if r["decision"] == "sent"]
        assert count("select count(*) from send") == len(sent) > 0
        stored = set(conn.execute(sa.text("select message_id from send")).scalars())
        assert stored == {r["message_id"] for r in sent}
        assert count("select count(*) from debtor where name_enc is null") == 0
    # Personal data is encrypted at rest, in the demo too.
    first = next(csv.DictReader((out / "portfolio.csv").open(encoding="utf-8")))
    stored_bytes = (out / "outreach.db").read_bytes()
    for field in ("name", "phone", "email", "address_line1"):
        assert first[field] and first[field].encode() not in stored_bytes, field
    engine.dispose()

    # Running it again starts over rather than doubling the rows.
    run_demo(accounts=40, days=10, out_dir=out, config_dir=ROOT / "config",
             templates_dir=ROOT / "templates", console=Console(file=StringIO()))
    engine = sa.create_engine(f"sqlite:///{out / 'outreach.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from account")).scalar_one() == 40
    engine.dispose()
