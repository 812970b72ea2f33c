"""`outreach demo` leaves a database the reports and `account show` can read."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet
from rich.console import Console
from support import ROOT  # noqa: I001 - tests/support.py

from orchestrator.simulation.demo import DEMO_START, run_demo
from orchestrator.simulation.sample import generate_accounts, generate_events


def test_demo_stores_what_it_decided(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    summary = run_demo(
        accounts=40,
        days=10,
        out_dir=out,
        config_dir=ROOT / "config",
        templates_dir=ROOT / "templates",
        console=Console(file=StringIO()),
    )
    log = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert sum(summary["decisions"].values()) == len(log) > 0
    # The report breaks the KPIs down by the sample's segments, in the HTML too.
    by_segment = summary["report"]["groups"]
    assert summary["report"]["by"] == "segment"
    assert {g["segment"] for g in by_segment} >= {"standard", "high-balance"}
    assert sum(g["accounts"] for g in by_segment) >= 40 - 4  # pre-due and unplanned aside
    assert "high-balance" in (out / "report.html").read_text()

    engine = sa.create_engine(f"sqlite:///{out / 'outreach.db'}")
    with engine.connect() as conn:

        def count(sql: str) -> int:
            return int(conn.execute(sa.text(sql)).scalar_one())

        assert count("select count(*) from account") == 40
        assert count("select count(*) from decision") == len(log)
        sent = [r for r in log if r["decision"] == "sent"]
        assert count("select count(*) from send") == len(sent) > 0
        stored = set(conn.execute(sa.text("select message_id from send")).scalars())
        assert stored == {r["message_id"] for r in sent}
        assert count("select count(*) from debtor where name_enc is null") == 0
        # Sample delivery receipts stand in for provider callbacks: every send has one.
        assert count("select count(*) from delivery_event") == len(sent)
        # The sample's payment plans, as the API would have recorded them.
        portfolio = list(generate_accounts(40, today=DEMO_START.date()))
        plans = [
            e for e in generate_events(portfolio, start=DEMO_START, days=10) if e.type == "plan"
        ]
        assert plans, "no plan in the sample: the check proves nothing"
        assert count("select count(*) from instalment_plan") == len(plans)
        assert count("select count(*) from instalment") == sum(
            len(e.data["instalments"]) for e in plans
        )
        # Each account's stage as the daemon's planning stores it (the sample has every
        # stage), with when it was entered and the balance then.
        stages: dict[str, int] = dict(
            conn.execute(
                sa.text(
                    "select stage, count(*) from account where stage is not null group by stage"
                )
            ).all()
        )
        assert len(stages) >= 3, stages
        assert (
            count(
                "select count(*) from account where stage is not null and "
                "(stage_entered_at is null or balance_at_stage_entry < balance)"
            )
            == 0
        )
    # The KPI report over the simulated days, printed and written as HTML.
    report = summary["report"]
    assert report["period"] == {"since": "2026-03-02", "until": "2026-03-11"}
    assert report["total"]["sends"] == len(sent)
    staged = [r for r in sent if r["stage"]]  # service texts (thanks, reminders) have none
    assert sum(s["decisions"].get("sent", 0) for s in report["stages"]) == len(staged)
    assert (out / "report.html").read_text(encoding="utf-8").count("<svg") == 6
    # Personal data is encrypted at rest, in the demo too.
    first = next(csv.DictReader((out / "portfolio.csv").open(encoding="utf-8")))
    stored_bytes = (out / "outreach.db").read_bytes()
    for field in ("name", "phone", "email", "address_line1"):
        assert first[field] and first[field].encode() not in stored_bytes, field
    engine.dispose()

    # demo.env opens the demo database for `account show` (owner-only: it holds a key).
    env_file = out / "demo.env"
    assert env_file.stat().st_mode & 0o077 == 0
    env = dict(os.environ, COLUMNS="160")
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    shown = [r for r in sent if r["channel"] == "sms"][0]
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "account", "show", shown["account"]],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert shown["step"] in done.stdout and shown["message_id"] in done.stdout
    engine = sa.create_engine(f"sqlite:///{out / 'outreach.db'}")
    with engine.connect() as conn:
        stage = conn.execute(
            sa.text("select stage from account where account_id = :a"), {"a": shown["account"]}
        ).scalar_one()
    engine.dispose()
    assert f" stage {stage} (since 2026-" in done.stdout if stage else " stage - " in done.stdout
    assert first["name"] not in done.stdout  # masked
    env["OUTREACH_DATA_KEYS"] = Fernet.generate_key().decode()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "account", "show", shown["account"]],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2 and "OUTREACH_DATA_KEYS" in done.stderr
    assert "Traceback" not in done.stderr

    # Running it again starts over rather than doubling the rows.
    run_demo(
        accounts=40,
        days=10,
        out_dir=out,
        config_dir=ROOT / "config",
        templates_dir=ROOT / "templates",
        console=Console(file=StringIO()),
    )
    engine = sa.create_engine(f"sqlite:///{out / 'outreach.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from account")).scalar_one() == 40
    engine.dispose()


def test_the_demo_never_reaches_a_provider(tmp_path: Path) -> None:
    """With Twilio and SMTP in channels.yaml, the demo still writes every message to its
    outbox: its debtors are made up, and a demo must not text or mail anyone."""
    config = tmp_path / "config"
    config.mkdir()
    for name in (
        "cadences.yaml",
        "policy.yaml",
        "creditors.yaml",
        "segments.yaml",
        "experiments.yaml",
    ):
        (config / name).write_text((ROOT / "config" / name).read_text())
    (config / "channels.yaml").write_text(
        'sms: {adapter: twilio_sms, from: "+15005550006", account_sid: AC0, auth_token: t}\n'
        'voice: {adapter: twilio_voice, from: "+15005550006", account_sid: AC0, '
        "auth_token: t}\n"
        'email: {adapter: smtp, host: smtp.invalid, port: 587, from: "a@example.com"}\n'
        "letter: {adapter: pdf_batch, out_dir: " + str(tmp_path / "letters") + "}\n"
    )
    out = tmp_path / "demo"
    summary = run_demo(
        accounts=30,
        days=5,
        out_dir=out,
        config_dir=config,
        templates_dir=ROOT / "templates",
        console=Console(file=StringIO()),
    )
    assert summary["reasons"].get("provider_error", 0) == 0
    written = {p.parent.name for p in (out / "outbox").glob("*/*.json")}
    assert {"sms", "email"} <= written
    assert not (tmp_path / "letters").exists()


def test_the_demo_deletes_only_its_own_output(tmp_path: Path) -> None:
    """``--out-dir`` is deleted first: only when it is empty or a previous demo's."""
    keep = tmp_path / "work"
    keep.mkdir()
    (keep / "accounts.csv").write_text("precious\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "demo",
            "--accounts",
            "5",
            "--days",
            "1",
            "--out-dir",
            str(keep),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "not a demo's output" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (keep / "accounts.csv").read_text() == "precious\n"
