"""``outreach demo``: the sample portfolio through the real engine, on the embedded default.

Generates about 500 US and Chinese accounts in every stage with promises, payments,
STOPs, disputes and plans, simulates ``days`` days on a virtual clock with the shipped
config and templates, writes every send through the outbox adapter and every decision to
``var/demo/decisions.jsonl``, and prints a summary.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from channels.registry import create_adapter
from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.models import ChannelConfig, Config
from orchestrator.core.records import DecisionRecord
from orchestrator.errors import OutreachError
from orchestrator.reporting.tables import print_report
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.simulation.sample import (
    SampleEvent,
    generate_accounts,
    generate_events,
    sample_receipts,
    write_csv,
)
from orchestrator.simulation.simulate import Scenario, Simulation

DEMO_START = datetime(2026, 3, 2, tzinfo=UTC)
RECEIPT_DELAY = timedelta(minutes=2)  # a sample delivery receipt's lag behind its send


def run_demo(
    *,
    accounts: int = 500,
    days: int = 30,
    out_dir: Path = Path("var/demo"),
    config_dir: Path = Path("config"),
    templates_dir: Path = Path("templates"),
    console: Console | None = None,
) -> dict[str, Any]:
    console = console or Console()
    _clear(out_dir)
    config = load_config(config_dir, templates_dir)
    portfolio = list(generate_accounts(accounts, today=DEMO_START.date()))
    write_csv(portfolio, out_dir / "portfolio.csv")
    sample_events = generate_events(portfolio, start=DEMO_START, days=days)
    events = [ScenarioEvent(e.at, e.account, e.type, e.data) for e in sample_events]
    scenario = Scenario(DEMO_START, days, config, templates_dir, portfolio, events, "demo")
    adapters = _adapters(config, out_dir, VirtualClock(DEMO_START))

    console.print(
        f"[bold]outreach demo[/bold]: {len(portfolio)} accounts, {len(events)} events, "
        f"{days} simulated days from {DEMO_START:%Y-%m-%d}"
    )
    tally = _Tally()
    sim = _simulate(scenario, adapters, out_dir / "decisions.jsonl", tally, console)
    for adapter in adapters.values():
        close = getattr(adapter, "close", None)
        if close:
            close()
    db_url = f"sqlite:///{(out_dir / 'outreach.db').resolve()}"
    persist(
        db_url, out_dir / "portfolio.csv", tally.records, sample_events, sim, out_dir / "demo.env"
    )

    end = DEMO_START + timedelta(days=days)
    report = write_report(
        db_url, config, DEMO_START.date(), (end - timedelta(days=1)).date(), out_dir / "report.html"
    )
    print_report(report, console)
    _print_summary(console, tally, out_dir)
    return {
        "decisions": tally.by_decision,
        "reasons": tally.by_reason,
        "sends": tally.sends,
        "report": report,
    }


@dataclass
class _Tally:
    """Every decision of the run, and its counts."""

    records: list[DecisionRecord] = field(default_factory=list)
    by_decision: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    sends: Counter[str] = field(default_factory=Counter)

    def add(self, record: DecisionRecord) -> None:
        self.records.append(record)
        self.by_decision[str(record.decision)] += 1
        if record.reason:
            self.by_reason[f"{record.decision}:{record.reason}"] += 1
        if record.decision == "sent":
            self.sends[f"{record.channel} {record.stage or '-'}"] += 1


def _clear(out_dir: Path) -> None:
    """An empty ``out_dir``: a previous demo's files are deleted, but a folder holding
    anything else is refused (``--out-dir .`` would have deleted the working directory)."""
    if out_dir.exists():
        if any(out_dir.iterdir()) and not (out_dir / "demo.env").exists():
            raise OutreachError(
                f"{out_dir}: error: not empty and not a demo's output "
                "folder: give --out-dir a new or empty folder"
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)


def _adapters(config: Config, out_dir: Path, clock: VirtualClock) -> dict[str, Any]:
    """An outbox under ``out_dir`` for every channel, whatever adapter ``channels.yaml``
    names: the demo's debtors are made up, and a demo must never reach a provider (with
    Twilio configured it would have texted the sample numbers). The sender and the cost
    are kept, for the messages and the report."""
    adapters = {}
    for name, channel_cfg in config.channels.items():
        sender = channel_cfg.options.get("from")
        outbox = ChannelConfig.model_validate(
            {
                "adapter": "outbox",
                "cost": channel_cfg.cost,
                "dir": str(out_dir / "outbox"),
                **({"from": sender} if sender else {}),
            }
        )
        adapters[name] = create_adapter(name, outbox, base_dir=Path.cwd(), clock=clock)
    return adapters


def _simulate(
    scenario: Scenario, adapters: dict[str, Any], log_path: Path, tally: _Tally, console: Console
) -> Simulation:
    """Run the simulation with a progress bar, each decision logged to ``log_path`` (JSON
    Lines) and counted in ``tally``."""
    total = timedelta(days=scenario.days).total_seconds()
    with (
        Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
            transient=not console.is_terminal,
        ) as progress,
        log_path.open("w", encoding="utf-8") as log,
    ):
        task = progress.add_task("sim", total=total)

        def on_progress(instant: datetime) -> None:
            progress.update(task, completed=min((instant - DEMO_START).total_seconds(), total))

        sim = Simulation(scenario, on_progress=on_progress, adapters=adapters)
        for record in sim.run():
            tally.add(record)
            log.write(record.to_json() + "\n")
        progress.update(task, completed=total)
    return sim


def _print_summary(console: Console, tally: _Tally, out_dir: Path) -> None:
    """The decisions by kind, the files written, and how to explore them."""
    records = tally.records
    console.print(
        "decisions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_decision.items()))
        + f"\nwritten: {out_dir / 'decisions.jsonl'}, {out_dir / 'outbox'}/, "
        f"{out_dir / 'portfolio.csv'}, {out_dir / 'outreach.db'} (SQLite), "
        f"{out_dir / 'report.html'}, {out_dir / 'demo.env'}\n"
        f"explore: set -a; . {out_dir / 'demo.env'}; set +a; "
        f"outreach account show {records[0].account if records else 'ID'}"
    )


def write_report(
    db_url: str, config: Config, since: date, until: date, html: Path
) -> dict[str, Any]:
    """The KPI report over the simulated days, with its breakdown by segment, also
    written as HTML."""
    from orchestrator.reporting.html import render_html
    from orchestrator.reporting.kpis import build_report
    from orchestrator.store import db

    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            report = build_report(conn, config, since, until, by="segment")
    finally:
        engine.dispose()
    html.write_text(
        render_html(report, title="outreach demo: collections report"), encoding="utf-8"
    )
    return report


def write_env(path: Path, values: dict[str, str]) -> None:
    """The demo database's URL and its (sample data's) key, readable by its owner only,
    so `outreach report` and `outreach account show` can open the demo afterwards."""
    path.touch(mode=0o600)
    path.write_text(
        "# The demo's database and the key of its sample personal data. To explore it:\n"
        f"#   set -a; . {path}; set +a\n"
        "#   outreach report; outreach account show C-000002\n"
        + "".join(f"{k}={v}\n" for k, v in values.items()),
        encoding="utf-8",
    )


def persist(
    db_url: str,
    portfolio_csv: Path,
    records: list[DecisionRecord],
    events: list[SampleEvent],
    sim: Simulation,
    env_file: Path,
) -> None:
    """Store the demo as the daemon would have: the portfolio (imported, personal data
    encrypted with an ephemeral key), every decision, every send, and the facts (promises
    and plans with their final state, payments, events, opt-outs), so reports run on it."""
    from orchestrator.core.crypto import DataCipher, ephemeral_keys
    from orchestrator.ingest.importer import import_accounts
    from orchestrator.store import db
    from orchestrator.store.accounts import decision_values
    from orchestrator.store.tables import Decision, table_of

    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    keys = ephemeral_keys()
    write_env(env_file, {"OUTREACH_DATABASE_URL": db_url, "OUTREACH_DATA_KEYS": keys[0]})
    import_accounts(engine, portfolio_csv, DataCipher(keys))
    with engine.begin() as conn:
        conn.execute(table_of(Decision).insert(), [decision_values(r) for r in records])
        _store_sends(conn, records)
        _store_facts(conn, events)
        _store_states(conn, sim)
        _write_stages(conn, sim)
    engine.dispose()


def _store_sends(conn: Any, records: list[DecisionRecord]) -> None:
    """A send row for each ``sent`` record, with a sample delivery receipt standing in for
    the provider's callback (and a click where the receipt says so)."""
    from orchestrator.store.tables import AccountEvent, DeliveryEvent, Send, table_of

    sent = [r for r in records if r.decision == "sent" and r.message_id]
    receipts = sample_receipts([(str(r.message_id), r.channel or "") for r in sent])
    sends = [
        {
            "message_id": r.message_id,
            "account_id": r.account,
            "debtor_id": r.debtor,
            "channel": r.channel,
            "status": receipts[str(r.message_id)],
            "sent_at": r.time,
            "status_at": r.time + RECEIPT_DELAY,
        }
        for r in sent
    ]
    if not sends:
        return
    conn.execute(table_of(Send).insert(), sends)
    conn.execute(
        table_of(DeliveryEvent).insert(),
        [
            {
                "provider_event_key": f"demo:{s['message_id']}",
                "message_id": s["message_id"],
                "status": s["status"],
                "time": s["status_at"],
            }
            for s in sends
        ],
    )
    conn.execute(
        table_of(AccountEvent).insert(),
        [
            {
                "account_id": s["account_id"],
                "type": "click",
                "channel": s["channel"],
                "time": s["status_at"],
                "detail": {"message_id": s["message_id"]},
            }
            for s in sends
            if s["status"] == "clicked"
        ],
    )


def _store_facts(conn: Any, events: list[SampleEvent]) -> None:
    """The sample's promises, payments, plans and account events, as the API records them
    (payment ids numbered as ``simulate`` numbers them: pay1, pay2, ...)."""
    from orchestrator.store import facts

    payments = 0
    for event in events:
        data = event.data
        if event.type == "promise":
            facts.record_promise(
                conn,
                account_id=event.account,
                amount=data["amount"],
                due=data["due"],
                made_at=event.at,
            )
        elif event.type == "payment":
            payments += 1
            facts.record_payment(
                conn,
                account_id=event.account,
                payment_id=f"pay{payments}",
                amount=data["amount"],
                currency=None,
                paid_at=event.at,
                source="demo",
                now=event.at,
            )
        elif event.type == "plan":
            facts.record_plan(
                conn,
                account_id=event.account,
                created_at=event.at,
                instalments=[(i["due"], i["amount"]) for i in data["instalments"]],
            )
        elif event.type in facts.EVENT_TYPES:
            facts.record_event(
                conn,
                account_id=event.account,
                type_=event.type,
                at=event.at,
                channel=data.get("channel"),
            )


def _store_states(conn: Any, sim: Simulation) -> None:
    """What the run ended with: opt-outs, and the promise and plan states the daemon would
    have written back."""
    from orchestrator.store.derived import write_plan_states, write_promise_states
    from orchestrator.store.tables import OptOut, table_of

    now = sim.clock.now()
    for account_id, state in sim.states.items():
        for channel in sorted(state.opted_out):
            conn.execute(
                table_of(OptOut)
                .insert()
                .values(
                    debtor_id=state.account.debtor_id,
                    account_id=account_id,
                    channel=channel,
                    source="demo",
                    created_at=now,
                )
            )
    for account_id, state in sim.states.items():
        if state.promises:
            write_promise_states(conn, account_id, state, now)
        if state.plans:
            write_plan_states(conn, account_id, state, now)


def _write_stages(conn: Any, sim: Simulation) -> None:
    """Each account's stage at the end of the run, as the daemon's planning stores it
    (``planner.stage_mark``), so ``account show`` on the demo tells it."""
    from orchestrator.core.planner import stage_mark
    from orchestrator.store.tables import AccountRow, table_of

    account_t = table_of(AccountRow)
    marks = [
        (account_id, stage_mark(state, sim.rules[account_id], sim.clock.now()))
        for account_id, state in sim.states.items()
    ]
    rows = [
        {
            "b_id": account_id,
            "stage": m.stage,
            "stage_entered_at": m.entered_at,
            "balance_at_stage_entry": m.balance_at_entry,
        }
        for account_id, m in marks
        if m is not None
    ]
    if rows:
        conn.execute(account_t.update().where(account_t.c.account_id == sa.bindparam("b_id")), rows)
