"""``outreach status`` and ``GET /api/v1/status``: the workers from their heartbeats
(the daemon's jobs and ``run --once`` write them), sends due and late, ambiguous sends,
today's sends and decisions, and the pauses in force (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from test_pause import TOKEN, cli, make_runner, write_setup  # noqa: I001 - tests/test_pause.py

from orchestrator.clock import FrozenClock, SystemClock, VirtualClock
from orchestrator.config.settings import Settings
from orchestrator.dispatch.daemon import Daemon
from orchestrator.store import db
from orchestrator.store.pauses import start_pause
from orchestrator.store.status import beat, status
from orchestrator.store.tables import OccurrenceRow, WorkerHeartbeat, table_of
from orchestrator.web.app import Server, create_app


def _status(env: dict[str, str]) -> dict[str, Any]:
    out = cli(env, "status", "--json")
    return dict(json.loads(out.stdout))


def test_a_fresh_database_has_nothing_to_show(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 2, creditors=("acme",))
    found = _status(env)
    assert found["workers"] == [] and found["pauses"] == []
    assert found["occurrences"] == {"due": {}, "late": {}, "ambiguous": 0}
    assert found["today"]["sends"] == {} and found["today"]["decisions"] == {}
    text = cli(env, "status").stdout
    assert "workers: none has run yet" in text and "pauses: none" in text


def test_run_once_leaves_a_heartbeat_and_its_sends(db_url: str, tmp_path: Path) -> None:
    """Six accounts texted and emailed daily at any hour: one ``run --once`` plans and
    sends them now; status shows the worker, its planning round and today's sends."""
    env = write_setup(tmp_path, db_url, 6, creditors=("acme",))
    ran = cli(env, "run", "--once", "--worker-id", "w-test")
    summary = json.loads(ran.stdout)
    found = _status(env)
    (worker,) = found["workers"]
    assert worker["worker"] == "w-test" and worker["alive"] is True
    assert worker["last_planning"]["occurrences"] == summary["planned"] == 12
    sent = summary["decisions"].get("sent", 0)
    assert sum(found["today"]["sends"].values()) == sent
    assert sum(sum(d.values()) for d in found["today"]["decisions"].values()) == sum(
        summary["decisions"].values()
    )


def test_stale_workers_late_sends_and_pauses(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    now = SystemClock().now()
    engine = db.make_engine(db_url)
    occ = table_of(OccurrenceRow)
    with engine.begin() as conn:
        beat(conn, "w-old", "0.2.0", now - timedelta(hours=2), now - timedelta(minutes=30))
        beat(conn, "w-new", "0.2.0", now - timedelta(hours=1), now - timedelta(seconds=5))
        for step, due, state in (
            ("late", now - timedelta(hours=1), "pending"),
            ("due", now - timedelta(minutes=1), "deferred"),
            ("later", now + timedelta(hours=1), "pending"),
            ("amb", now - timedelta(days=1), "ambiguous"),
        ):
            conn.execute(
                occ.insert().values(
                    account_id="A00000",
                    step_id=step,
                    occurrence_key="k",
                    planned_at=due,
                    stage="M1",
                    channel="sms",
                    kind="collection",
                    state=state,
                    next_attempt_at=due,
                )
            )
        start_pause(conn, channel="sms", creditor=None, reason="bad template", actor="ops", now=now)
    engine.dispose()
    found = _status(env)
    alive = {w["worker"]: w["alive"] for w in found["workers"]}
    assert alive == {"w-new": True, "w-old": False}
    assert found["occurrences"] == {"due": {"sms": 2}, "late": {"sms": 1}, "ambiguous": 1}
    assert [(p["channel"], p["actor"]) for p in found["pauses"]] == [("sms", "ops")]
    text = cli(env, "status").stdout
    assert "worker w-old" in text and "NOT SEEN" in text
    assert "PAUSED #" in text and "channel sms, every creditor by ops" in text


def test_the_daemons_jobs_write_its_heartbeat(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 3, creditors=("acme",))
    engine = db.make_engine(db_url)
    clock = FrozenClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    daemon = Daemon(lambda stop: make_runner(engine, env, worker="w-daemon"), clock)
    daemon.dispatch()
    hb = table_of(WorkerHeartbeat)
    with engine.connect() as conn:
        row = conn.execute(sa.select(hb)).one()
    assert (row.worker, row.plan_at) == ("w-daemon", None)
    daemon.plan()
    with engine.connect() as conn:
        row = conn.execute(sa.select(hb)).one()
        assert row.plan_occurrences == 6 and row.plan_seconds >= 0
        found = status(conn, clock.now())
    assert found["workers"][0]["last_planning"]["occurrences"] == 6
    engine.dispose()


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    engine = db.make_engine(db_url)
    runner = make_runner(engine, env)
    server = Server(
        db=engine,
        config=runner.config,
        cipher=runner.cipher,
        settings=Settings.from_env({**env, "OUTREACH_API_TOKENS": TOKEN}),
        clock=VirtualClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC)),
        runner=runner,
    )
    with TestClient(create_app(server), raise_server_exceptions=False) as client:
        yield client
    engine.dispose()


def test_status_through_the_api(api: TestClient) -> None:
    assert api.get("/api/v1/status").status_code == 401
    answer = api.get("/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert set(answer.json()) == {
        "time",
        "workers",
        "occurrences",
        "today",
        "pauses",
        "cases",
        "webhooks",
        "work",
    }
    assert answer.json()["work"] == {
        "tasks": {"open": 0, "overdue": 0},
        "cases": {"open": 0, "overdue": 0},
    }
    assert answer.json()["time"] == "2026-03-10T15:00:00Z"


def test_logs_after_an_in_process_command_reach_the_current_stderr(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run`` sets up JSON logging on stderr. Run in process (as here, through Typer's
    runner, which swaps stderr and closes its copy), a handler bound to that copy made
    every later log line a "Logging error" on a closed file."""
    import logging

    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    cli(env, "run", "--once")
    logging.getLogger("outreach.test").warning("after the command")
    err = capsys.readouterr().err
    assert "after the command" in err and "Logging error" not in err


def test_status_shows_cases_open_and_overdue(db_url: str, tmp_path: Path) -> None:
    """Cases from ``cases list``'s point of view: unresolved ones by kind, and those past
    their acknowledgement or resolution due time."""
    from orchestrator.core.cases import CaseKind, DueTimes
    from orchestrator.store.cases import acknowledge_case, open_case, resolve_case

    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    assert _status(env)["cases"] == {"open": {}, "overdue": {}}
    assert "cases: 0 open, none overdue" in cli(env, "status").stdout
    now = SystemClock().now()
    engine = db.make_engine(db_url)
    day = timedelta(days=1)

    def case(kind: CaseKind, ack: timedelta, resolve: timedelta) -> Any:
        return open_case(
            conn,
            account_id="A00000",
            kind=kind,
            category="other" if kind == CaseKind.complaint else "amount",
            channel=None,
            due=DueTimes(now + ack, now + resolve),
            actor="ops",
            now=now - 10 * day,
            write_event=False,
        )

    with engine.begin() as conn:
        case(CaseKind.complaint, day, 5 * day)  # open, in time
        case(CaseKind.complaint, -day, 5 * day)  # not acknowledged in time
        case(CaseKind.dispute, -2 * day, -day)  # past both
        acknowledged = case(CaseKind.complaint, -day, 5 * day)
        acknowledge_case(conn, acknowledged, actor="ops", now=now - 2 * day)  # late, but done
        done = case(CaseKind.dispute, -2 * day, -day)
        resolve_case(conn, done, actor="ops", now=now, resolution="fixed", verified=False)
    engine.dispose()
    found = _status(env)["cases"]
    assert found == {
        "open": {"complaint": 3, "dispute": 1},
        "overdue": {"complaint": 1, "dispute": 1},
    }
    text = cli(env, "status").stdout
    assert (
        "cases: 4 open (complaint 3, dispute 1), OVERDUE 2 (complaint 1, dispute 1): "
        "outreach cases list --overdue"
    ) in text
