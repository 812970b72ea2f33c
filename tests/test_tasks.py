"""The work queue: rules in ``policy.yaml`` make tasks (an inbound text, a hardship
phrase, a case, promises and a plan broken, an account nobody reached), one open task per
account and type; the API and the CLI list, claim and complete them, a completion records
the same events as the events API; every change is audited; ``outreach status`` counts
them (SQLite and PostgreSQL)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import ValidationError
from support import config_check  # noqa: I001 - tests/support.py
from test_pause import cli, make_runner, write_setup

from orchestrator.clock import VirtualClock
from orchestrator.config.models import AgentHours
from orchestrator.config.settings import Settings
from orchestrator.core.tasks import TaskOutcome, agents_answer
from orchestrator.store import db
from orchestrator.store import tasks as task_store
from orchestrator.store.tables import (
    AccountEvent,
    AccountRow,
    AuditLog,
    Decision,
    DeliveryEvent,
    InstalmentPlan,
    OccurrenceRow,
    Promise,
    Send,
    Task,
    table_of,
)
from orchestrator.web.app import Server, create_app
from orchestrator.web.inbound import handle_inbound

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
POLICY = """
timezone: {default: America/New_York, sources: [explicit, address, phone]}
hours: {default: any}
limits: []
pauses:
  - {id: after-talk, after: conversation, channels: [sms, email], days: 2}
tasks:
  rules:
    inbound_reply: {type: reply, priority: 2, due: 4h}
    hardship: {type: hardship, priority: 1, due: 2h}
    case_opened: {type: case, priority: 1, due: 1d}
    promises_broken: {type: broken_promises, priority: 2, due: 1d}
    plan_broken: {type: plan_broken, priority: 2, due: 1d}
    unreached: {type: unreached, priority: 3, due: 3d, stages: [M3], days: 14}
  hardship_phrases:
    en: [lost my job, can't pay]
    es: [perdí mi trabajo]
"""

CADENCES = """
stages:
  - id: M1
    dpd: [1, 60]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00", expires: 3d}
      - {id: daily-email, channel: email, template: overdue, every: 1d, at: "10:00", expires: 3d}
  - id: M3
    dpd: [61, 400]
    steps:
      - {id: weekly-sms, channel: sms, template: reminder, every: 7d, at: "10:00", expires: 3d}
"""

Api = tuple[TestClient, sa.Engine, VirtualClock, Any, dict[str, str]]


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    env = write_setup(tmp_path, db_url, 4, creditors=("acme", "beta"))
    (Path(env["OUTREACH_CONFIG"]) / "policy.yaml").write_text(POLICY)
    (Path(env["OUTREACH_CONFIG"]) / "cadences.yaml").write_text(CADENCES)
    engine = db.make_engine(db_url)
    clock = VirtualClock(T)
    runner = make_runner(engine, env)
    server = Server(
        db=engine,
        config=runner.config,
        cipher=runner.cipher,
        settings=Settings.from_env({**env, "OUTREACH_API_TOKENS": "alice:tok-alice,bob:tok-bob"}),
        clock=clock,
        runner=runner,
    )
    with TestClient(create_app(server), raise_server_exceptions=False) as client:
        yield client, engine, clock, runner, env
    engine.dispose()


def rows(engine: sa.Engine, model: Any) -> list[Any]:
    t = table_of(model)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t).order_by(t.c.id)).all())


def text_in(
    engine: sa.Engine, runner: Any, account: int, body: str, sid: str, at: datetime
) -> None:
    """A text from account ``account``'s phone, as ``serve`` takes it from Twilio."""
    phone = f"+1212{2000000 + account * 37:07d}"
    with engine.begin() as conn:
        handle_inbound(conn, runner.decider, runner.cipher, phone, body, at, message_sid=sid)


def test_texts_and_cases_make_tasks_and_the_api_works_them(api: Api) -> None:
    client, engine, clock, runner, env = api
    text_in(engine, runner, 0, "I LOST  my job, can we talk?", "SM0", T)
    text_in(engine, runner, 1, "what is this about", "SM1", T)
    text_in(engine, runner, 1, "hello?", "SM2", T)  # its reply task is open: no second
    text_in(engine, runner, 2, "STOP", "SM3", T)  # a keyword: no task
    opened = client.post(
        "/api/v1/cases", json={"account_id": "A00003", "kind": "complaint"}, headers=BOB
    )
    assert opened.status_code == 201, opened.text

    listed = client.get("/api/v1/tasks", headers=ALICE).json()["tasks"]
    assert [(t["type"], t["account_id"], t["priority"]) for t in listed] == [
        ("hardship", "A00000", 1),  # priority 1, due in 2h
        ("case", "A00003", 1),  # priority 1, due in 1d
        ("reply", "A00001", 2),
    ]
    hardship, case, reply = (t["id"] for t in listed)
    assert listed[0]["message_id"] == "SM0" and listed[0]["due_at"] == "2026-03-10T17:00:00Z"
    assert listed[1]["case_id"] == opened.json()["id"] and listed[1]["created_by"] == "rules"
    assert listed[2]["message_id"] == "SM1" and listed[2]["state"] == "open"

    # claim: mine again is a no-op, someone else's is 409
    claimed = client.post(f"/api/v1/tasks/{hardship}/claim", headers=ALICE)
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "alice"
    assert client.post(f"/api/v1/tasks/{hardship}/claim", headers=ALICE).status_code == 200
    taken = client.post(f"/api/v1/tasks/{hardship}/claim", headers=BOB)
    assert taken.status_code == 409 and "claimed by alice" in taken.text
    stolen = client.post(
        f"/api/v1/tasks/{hardship}/complete", json={"outcome": "no_answer"}, headers=BOB
    )
    assert stolen.status_code == 409
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("claim", "complete"):  # the refusals are in the API's description
        assert {"404", "409"} <= set(
            paths[f"/api/v1/tasks/{{task_id}}/{route}"]["post"]["responses"]
        )

    # filters
    def ids(query: str) -> list[int]:
        got = client.get(f"/api/v1/tasks?{query}", headers=ALICE)
        assert got.status_code == 200, got.text
        return [t["id"] for t in got.json()["tasks"]]

    assert ids("state=claimed") == [hardship] and ids("assignee=alice") == [hardship]
    assert ids("type=reply") == [reply] and ids("state=open") == [case, reply]
    assert ids("overdue=true") == []
    clock.set(T + timedelta(hours=3))
    assert ids("overdue=true") == [hardship]
    for bad in ("state=closed", "type=Bad Type", "assignee=a%20b", "overdue=maybe"):
        assert client.get(f"/api/v1/tasks?{bad}", headers=ALICE).status_code == 422, bad

    # a promise out of the policy's bounds: 422, nothing recorded, the task stays claimed
    far = {"outcome": "promise", "amount": "50.00", "due": "2027-01-01"}
    refused = client.post(f"/api/v1/tasks/{hardship}/complete", json=far, headers=ALICE)
    assert refused.status_code == 422 and "max_days_ahead" in refused.text
    assert client.get(f"/api/v1/tasks/{hardship}", headers=ALICE).json()["state"] == "claimed"
    assert rows(engine, Promise) == []
    promise = {"outcome": "promise", "amount": "50.00", "due": "2026-03-20"}
    done = client.post(f"/api/v1/tasks/{hardship}/complete", json=promise, headers=ALICE)
    assert done.status_code == 200, done.text
    assert done.json()["task"]["state"] == "done" and done.json()["task"]["outcome"] == "promise"
    assert done.json()["event"]["type"] == "promise"
    [made] = rows(engine, Promise)
    assert made.account_id == "A00000" and made.amount == Decimal("50.00")
    again = client.post(f"/api/v1/tasks/{hardship}/complete", json=promise, headers=ALICE)
    assert again.status_code == 409 and len(rows(engine, Promise)) == 1

    # an open task completed straight away: the completer is its assignee
    talk = client.post(
        f"/api/v1/tasks/{reply}/complete", json={"outcome": "conversation"}, headers=BOB
    )
    assert talk.status_code == 200, talk.text
    assert talk.json()["task"]["assignee"] == "bob" and talk.json()["task"]["claimed_at"]
    assert [e.type for e in rows(engine, AccountEvent) if e.account_id == "A00001"][-1] == (
        "conversation"
    )
    with_amount = client.post(
        f"/api/v1/tasks/{case}/complete",
        json={"outcome": "no_answer", "amount": "5.00"},
        headers=BOB,
    )
    assert with_amount.status_code == 422 and "no_answer records nothing" in with_amount.text
    for path, status in (("/api/v1/tasks/99", 404), ("/api/v1/tasks/99/claim", 404)):
        call = client.get if path.endswith("99") else client.post
        assert call(path, headers=ALICE).status_code == status
    assert client.get("/api/v1/tasks", headers={"Authorization": "Bearer x"}).status_code == 401

    # the reply task is done: a new text makes a new one
    text_in(engine, runner, 1, "call me", "SM4", T + timedelta(hours=4))
    assert len([t for t in rows(engine, Task) if t.account_id == "A00001"]) == 2

    entries = json.loads(cli(env, "audit", "--account", "A00000", "--json").output)["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("rules", "task.created"),
        ("alice", "task.claimed"),
        ("alice", "event.promise"),
        ("alice", "task.done"),
    ]
    # the conversation pause holds the account's texts, as an API conversation does
    runner.tick(T + timedelta(hours=5))
    held = [d for d in rows(engine, Decision) if d.account_id == "A00001"]
    assert held and all(d.decision != "sent" for d in held), held


def test_the_sweep_makes_tasks_from_facts_once(api: Api) -> None:
    _, engine, _, runner, _ = api
    promise_t, plan_t = table_of(Promise), table_of(InstalmentPlan)
    account_t, send_t = table_of(AccountRow), table_of(Send)
    with engine.begin() as conn:
        for n, account in enumerate(("A00000", "A00000", "A00001")):
            conn.execute(
                promise_t.insert().values(
                    account_id=account,
                    amount=Decimal("10.00"),
                    due=date(2026, 3, 1 + n),
                    made_at=T - timedelta(days=20),
                    state="broken",
                    broken_at=T - timedelta(days=9 - n),
                )
            )
        conn.execute(
            plan_t.insert().values(
                account_id="A00002",
                created_at=T - timedelta(days=30),
                state="broken",
                ended_at=T - timedelta(days=1),
            )
        )
        old = T - timedelta(days=30)
        conn.execute(
            account_t.update()
            .where(account_t.c.account_id.in_(["A00000", "A00001", "A00002", "A00003"]))
            .values(stage="M3", stage_entered_at=old)
        )
        # A00001 and A00003 have been worked for 20 days; A00000 only since yesterday (a
        # portfolio just imported): nobody has failed to reach it yet.
        for account, days in (("A00001", 20), ("A00002", 20), ("A00003", 20), ("A00000", 1)):
            conn.execute(
                table_of(OccurrenceRow)
                .insert()
                .values(
                    account_id=account,
                    step_id="weekly-sms",
                    occurrence_key=f"k{days}",
                    planned_at=T - timedelta(days=days),
                    channel="sms",
                    kind="collection",
                    state="skipped",
                )
            )
        # A00002 settled (a settlement paid by its deadline): nobody needs to reach it,
        # though it has been worked for 20 days.
        conn.execute(
            promise_t.insert().values(
                account_id="A00002",
                amount=Decimal("80.00"),
                waived=Decimal("20.00"),
                due=date(2026, 3, 1),
                made_at=T - timedelta(days=25),
                state="kept",
                kept_at=T - timedelta(days=24),
            )
        )
        send_id = conn.execute(
            send_t.insert()
            .values(
                message_id="m-1",
                account_id="A00003",
                debtor_id="D00003",
                channel="sms",
                sent_at=T - timedelta(days=2),
            )
            .returning(send_t.c.id)
        ).scalar_one()
        conn.execute(
            table_of(DeliveryEvent)
            .insert()
            .values(
                provider_event_key="e-1",
                send_id=send_id,
                message_id="m-1",
                status="delivered",
                time=T - timedelta(days=2),
            )
        )

    assert runner.sweep_tasks(T) == 3
    made = {(t.type, t.account_id) for t in rows(engine, Task)}
    assert made == {
        ("broken_promises", "A00000"),  # two broken; A00001 broke one
        ("plan_broken", "A00002"),
        ("unreached", "A00001"),  # M3, nothing delivered; A00003 got a text two days ago,
        # A00002 is settled, and A00000 (M3, nothing delivered) was worked for a day only
    }
    assert runner.sweep_tasks(T + timedelta(minutes=1)) == 0  # open already
    with engine.begin() as conn:
        for task in rows(engine, Task):
            task_store.finish_task(conn, task.id, outcome=TaskOutcome.other, actor="ops", now=T)
    # done: nothing new happened, so nothing again (the unreached one waits 14 days)
    assert runner.sweep_tasks(T + timedelta(days=1)) == 0
    assert {(t.type, t.account_id) for t in rows(engine, Task) if t.state != "done"} == set()
    # 14 days on: A00001 still unreached, A00003's last delivery is 17 days old, A00000
    # has been worked for 16 days; A00002 is still settled
    assert runner.sweep_tasks(T + timedelta(days=15)) == 3
    assert {(t.type, t.account_id) for t in rows(engine, Task) if t.state == "open"} == {
        ("unreached", "A00000"),
        ("unreached", "A00001"),
        ("unreached", "A00003"),
    }
    audited = [r for r in rows(engine, AuditLog) if r.action == "task.created"]
    assert len(audited) == len(rows(engine, Task)) == 6
    assert {(r.actor, r.object_type) for r in audited} == {("rules", "task")}


def test_the_cli_lists_claims_and_finishes(api: Api) -> None:
    client, engine, _, runner, env = api
    now = datetime.now(UTC)  # the CLI runs on the system clock
    text_in(engine, runner, 0, "perdí mi trabajo", "SM0", now)
    text_in(engine, runner, 1, "who is this", "SM1", now)
    me = getpass.getuser()
    soon, far = (str(now.date() + timedelta(days=n)) for n in (5, 300))

    listed = cli(env, "tasks", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].startswith("#1 p1 hardship account A00000: open (due ")
    assert lines[1].startswith("#2 p2 reply account A00001: open")
    claimed = cli(env, "tasks", "claim", "1")
    assert claimed.exit_code == 0 and f"claimed by {me}" in claimed.output, claimed.output
    mine = json.loads(cli(env, "tasks", "list", "--mine", "--json").output)["tasks"]
    assert [t["id"] for t in mine] == [1] and mine[0]["assignee"] == me
    assert client.post("/api/v1/tasks/1/claim", headers=ALICE).status_code == 409

    assert client.post("/api/v1/tasks/2/claim", headers=BOB).status_code == 200
    for args, said in [
        (("tasks", "claim", "2"), "error: task 2 is claimed by bob\n"),
        (("tasks", "claim", "9"), "error: no task 9\n"),
        (("tasks", "done", "1", "--outcome", "other", "--amount", "5"), "amount: error"),
        (("tasks", "done", "1", "--outcome", "promise", "--due", "soon"), "due: error"),
        (
            (
                "tasks",
                "done",
                "1",
                "--outcome",
                "promise",
                "--amount",
                "5.00",
                "--due",
                far,
            ),
            "max_days_ahead",
        ),
    ]:
        refused = cli(env, *args)
        assert refused.exit_code == 2 and said in refused.output, (args, refused.output)
    assert rows(engine, Promise) == []
    finished = cli(
        env,
        "tasks",
        "done",
        "1",
        "--outcome",
        "promise",
        "--amount",
        "40.00",
        "--due",
        soon,
    )
    assert finished.exit_code == 0, finished.output
    assert "done by" in finished.output and "recorded promise" in finished.output
    [promise] = rows(engine, Promise)
    assert promise.account_id == "A00000" and str(promise.due) == soon
    audit = [(a.actor, a.action) for a in rows(engine, AuditLog) if a.account_id == "A00000"]
    assert audit[-3:] == [(me, "task.claimed"), (me, "event.promise"), (me, "task.done")]

    status = cli(env, "status")
    assert status.exit_code == 0, status.output
    assert "tasks: open 1, overdue 0" in status.output
    assert "cases: 0 open, none overdue" in status.output  # cases once, by kind
    data = json.loads(cli(env, "status", "--json").output)
    assert data["work"]["tasks"] == {"open": 1, "overdue": 0}


def test_agent_hours_are_read_in_their_zone() -> None:
    hours = AgentHours.model_validate({"start": "09:00", "end": "17:00"})
    ny = "America/New_York"
    assert agents_answer(None, ny, T)  # no hours: the line always answers
    assert agents_answer(hours, ny, T)  # Tuesday 11:00 in New York (summer time)
    assert not agents_answer(hours, ny, T + timedelta(hours=6))  # 17:00: closed
    assert agents_answer(hours, ny, T + timedelta(hours=5, minutes=59))
    assert not agents_answer(hours, ny, T + timedelta(days=4))  # Saturday
    shanghai = hours.model_copy(update={"timezone": "Asia/Shanghai"})
    assert not agents_answer(shanghai, ny, T)  # 23:00 in Shanghai
    assert agents_answer(shanghai, ny, T - timedelta(hours=10))  # 13:00 in Shanghai
    for bad, said in [
        ({"start": "17:00", "end": "09:00"}, "end must be after start"),
        ({"start": "09:00", "end": "17:00", "timezone": "Mars/Base"}, "unknown time zone"),
        ({"start": "09:00", "end": "17:00", "days": ["monday"]}, "days"),
    ]:
        with pytest.raises(ValidationError, match=said):
            AgentHours.model_validate(bad)


def test_an_unknown_stage_of_the_unreached_rule_is_a_warning(tmp_path: Path) -> None:
    """A rule that never fires in a stage harms no one (and a scenario with cadences of
    its own keeps the shipped policy's rule): a warning at its line, exit 0."""
    env = write_setup(tmp_path, f"sqlite:///{tmp_path}/db.sqlite", 0, creditors=("acme",))
    policy = Path(env["OUTREACH_CONFIG"]) / "policy.yaml"
    rule = "tasks: {rules: {unreached: {type: unreached, stages: [M9], days: 14}}}"
    policy.write_text(policy.read_text() + rule + "\n")
    code, output = config_check(Path(env["OUTREACH_CONFIG"]))
    assert code == 0, output
    assert "warning" in output and "tasks.rules.unreached: unknown stage 'M9'" in output
    assert "policy.yaml:4" in output


@pytest.mark.parametrize(
    ("tasks", "said"),
    [
        ("tasks: {rules: {hardship: {type: Hardship}}}", "tasks.rules.hardship.type"),
        ("tasks: {rules: {reply: {type: reply}}}", "tasks.rules.reply"),
        ("tasks: {rules: {case_opened: {type: case, due: 0h}}}", "a task is due after"),
        ("tasks: {rules: {case_opened: {type: case, priority: 0}}}", "priority"),
    ],
)
def test_config_check_names_a_bad_task_rule(tmp_path: Path, tasks: str, said: str) -> None:
    env = write_setup(tmp_path, f"sqlite:///{tmp_path}/db.sqlite", 0, creditors=("acme",))
    policy = Path(env["OUTREACH_CONFIG"]) / "policy.yaml"
    policy.write_text(policy.read_text() + tasks + "\n")
    code, output = config_check(Path(env["OUTREACH_CONFIG"]))
    assert code == 2 and said in output and "policy.yaml:4" in output, output
