"""Cases (complaints and disputes) and the audit trail: the API, the CLI, the events API
opening cases, suppression kept and lifted, due times from the policy's SLA, and
``outreach audit --account`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import getpass
import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from support import ROOT, config_check  # noqa: I001 - tests/support.py
from test_pause import TOKEN, cli, make_runner, write_setup

from orchestrator.clock import VirtualClock
from orchestrator.config.models import CaseSla, Duration
from orchestrator.config.settings import Settings
from orchestrator.core.cases import due_times
from orchestrator.store import db
from orchestrator.store.tables import AccountEvent, AuditLog, CaseFile, Decision, table_of
from orchestrator.web.app import Server, create_app

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLICY = """
timezone: {default: America/New_York, sources: [explicit, address, phone]}
hours: {default: any}
limits: []
pauses:
  - {id: complaint-review, after: complaint, channels: [sms, email], days: 3}
cases:
  categories: [harassment, amount_disputed, other]
  sla: {acknowledge: 1d, resolve: 15d}
"""

Api = tuple[TestClient, sa.Engine, VirtualClock, Any, dict[str, str]]


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    env = write_setup(tmp_path, db_url, 2, creditors=("acme", "beta"))
    (Path(env["OUTREACH_CONFIG"]) / "policy.yaml").write_text(POLICY)
    engine = db.make_engine(db_url)
    clock = VirtualClock(T - timedelta(hours=2))
    runner = make_runner(engine, env)
    server = Server(
        db=engine,
        config=runner.config,
        cipher=runner.cipher,
        settings=Settings.from_env({**env, "OUTREACH_API_TOKENS": TOKEN}),
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


def sent(engine: sa.Engine, account: str) -> list[Any]:
    return [d for d in rows(engine, Decision) if d.account_id == account and d.decision == "sent"]


def test_a_dispute_case_suppresses_until_resolved_with_verification(api: Api) -> None:
    client, engine, clock, runner, _ = api
    made = client.post(
        "/api/v1/cases",
        json={"account_id": "A00000", "kind": "dispute", "category": "amount_disputed"},
        headers=AUTH,
    )
    assert made.status_code == 201, made.text
    case = made.json()
    assert case["status"] == "open" and case["opened_by"] == "api" and not case["overdue"]
    assert [e.type for e in rows(engine, AccountEvent)] == ["dispute"]

    runner.tick(T)
    assert sent(engine, "A00000") == []  # suppressed
    assert len(sent(engine, "A00001")) == 2  # the other account goes

    clock.set(T + timedelta(hours=1))
    # resolved without verification: the case closes, collection stays suppressed
    unverified = client.patch(
        f"/api/v1/cases/{case['id']}",
        json={"action": "resolve", "resolution": "no documents yet"},
        headers=AUTH,
    )
    assert unverified.status_code == 200, unverified.text
    assert unverified.json()["status"] == "resolved" and unverified.json()["verified"] is False
    runner.tick(T + timedelta(days=1))
    assert sent(engine, "A00000") == []

    again = client.post(
        "/api/v1/cases", json={"account_id": "A00000", "kind": "dispute"}, headers=AUTH
    )
    assert again.json()["category"] == "other"  # the policy's default category
    verified = client.patch(
        f"/api/v1/cases/{again.json()['id']}",
        json={"action": "resolve", "resolution": "statement sent", "verified": True},
        headers=AUTH,
    )
    assert verified.status_code == 200 and verified.json()["verified"] is True
    assert [e.type for e in rows(engine, AccountEvent)][-1] == "dispute_resolved"
    runner.tick(T + timedelta(days=2))
    assert len(sent(engine, "A00000")) == 2  # collection resumed


def test_one_dispute_verified_does_not_lift_another_still_open(api: Api) -> None:
    """Two disputes of one account: the first resolved with verification leaves
    collection suppressed while the second is open; resolving it lifts it."""
    client, engine, clock, runner, _ = api
    ids = []
    for category in ("amount_disputed", "other"):
        made = client.post(
            "/api/v1/cases",
            json={"account_id": "A00000", "kind": "dispute", "category": category},
            headers=AUTH,
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    clock.set(T - timedelta(hours=1))
    resolve = {"action": "resolve", "resolution": "statement sent", "verified": True}
    first = client.patch(f"/api/v1/cases/{ids[0]}", json=resolve, headers=AUTH)
    assert first.status_code == 200 and first.json()["verified"] is True
    assert "dispute_resolved" not in [e.type for e in rows(engine, AccountEvent)]
    runner.tick(T)
    assert sent(engine, "A00000") == []  # the second dispute still holds
    assert len(sent(engine, "A00001")) == 2
    held = [d for d in rows(engine, Decision) if d.account_id == "A00000"]
    assert held and {(d.decision, d.reason) for d in held} == {("suppressed", "disputed")}

    clock.set(T + timedelta(hours=1))
    second = client.patch(f"/api/v1/cases/{ids[1]}", json=resolve, headers=AUTH)
    assert second.status_code == 200, second.text
    assert [e.type for e in rows(engine, AccountEvent)][-1] == "dispute_resolved"
    runner.tick(T + timedelta(days=2))
    assert len(sent(engine, "A00000")) == 2  # collection resumed
    trail = [r for r in rows(engine, AuditLog) if r.action == "case.resolved"]
    assert [r.detail["collection_resumes"] for r in trail] == [False, True]


def test_the_cli_says_which_dispute_still_holds(api: Api) -> None:
    client, _, _, _, env = api
    for _ in range(3):
        answer = client.post(
            "/api/v1/cases", json={"account_id": "A00000", "kind": "dispute"}, headers=AUTH
        )
        assert answer.status_code == 201
    done = cli(env, "cases", "resolve", "1", "--resolution", "statement sent", "--verified")
    assert done.output == (
        "resolved #1 dispute of account A00000 "
        "(collection stays suppressed: disputes #2, #3 are still open)\n"
    )
    done = cli(env, "cases", "resolve", "2", "--resolution", "statement sent", "--verified")
    assert done.output.endswith("(collection stays suppressed: dispute #3 is still open)\n")
    done = cli(env, "cases", "resolve", "3", "--resolution", "statement sent", "--verified")
    assert done.output.endswith("(collection resumes)\n")


def test_events_api_opens_cases_and_keeps_suppression(api: Api) -> None:
    client, engine, clock, runner, _ = api
    url = "/api/v1/accounts/A00000/events"
    assert (
        client.post(url, json={"type": "complaint", "channel": "sms"}, headers=AUTH).status_code
        == 201
    )
    assert client.post(url, json={"type": "dispute"}, headers=AUTH).status_code == 201
    listed = client.get("/api/v1/cases", headers=AUTH).json()["cases"]
    assert [(c["kind"], c["category"], c["channel"]) for c in listed] == [
        ("complaint", "other", "sms"),
        ("dispute", "other", None),
    ]
    # the event is written once: the case does not add a second one
    assert [e.type for e in rows(engine, AccountEvent)] == ["complaint", "dispute"]
    runner.tick(T)
    assert sent(engine, "A00000") == []

    # dispute_resolved through the events API resolves the open dispute case
    clock.set(T + timedelta(hours=1))
    assert client.post(url, json={"type": "dispute_resolved"}, headers=AUTH).status_code == 201
    dispute = client.get(f"/api/v1/cases/{listed[1]['id']}", headers=AUTH).json()
    assert dispute["status"] == "resolved" and dispute["verified"] is True
    complaint = client.get(f"/api/v1/cases/{listed[0]['id']}", headers=AUTH).json()
    assert complaint["status"] == "open"  # a complaint stays open until resolved
    runner.tick(T + timedelta(days=1))
    assert sent(engine, "A00000") == []  # the complaint pause (3 days) still holds
    runner.tick(T + timedelta(days=4))
    assert sent(engine, "A00000") != []


def test_acknowledge_categorise_filters_and_overdue(api: Api) -> None:
    client, _, clock, _, _ = api
    ids = [
        client.post(
            "/api/v1/cases", json={"account_id": a, "kind": "complaint"}, headers=AUTH
        ).json()["id"]
        for a in ("A00000", "A00001")
    ]
    first = client.get(f"/api/v1/cases/{ids[0]}", headers=AUTH).json()
    # opened Tuesday 08:00 New York: acknowledge by the end of Wednesday, resolve in 15
    # working days (three weeks, Tuesday 31 March, no holiday between)
    assert first["acknowledge_due_at"] == "2026-03-12T04:00:00Z"
    assert first["resolve_due_at"] == "2026-04-01T04:00:00Z"

    ack = client.patch(f"/api/v1/cases/{ids[0]}", json={"action": "acknowledge"}, headers=AUTH)
    assert ack.json()["status"] == "acknowledged" and ack.json()["acknowledged_by"] == "api"
    moved = client.patch(
        f"/api/v1/cases/{ids[0]}",
        json={"action": "categorise", "category": "harassment"},
        headers=AUTH,
    )
    assert moved.json()["category"] == "harassment"

    clock.set(datetime(2026, 3, 12, 5, 0, tzinfo=UTC))  # past the acknowledgement due time

    def listed(query: str) -> list[int]:
        answer = client.get(f"/api/v1/cases{query}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        return [c["id"] for c in answer.json()["cases"]]

    assert listed("") == ids
    assert listed("?status=open") == [ids[1]]
    assert listed("?status=acknowledged") == [ids[0]]
    assert listed("?status=resolved") == []
    assert listed("?overdue=true") == [ids[1]]  # the acknowledged one is not late yet
    assert listed("?status=open&overdue=true") == [ids[1]]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/api/v1/cases", {"account_id": "NOPE", "kind": "dispute"}, 404, "unknown"),
        ("POST", "/api/v1/cases", {"account_id": "A00000", "kind": "x"}, 422, "kind"),
        (
            "POST",
            "/api/v1/cases",
            {"account_id": "A00000", "kind": "dispute", "category": "wrong_person"},
            422,
            "category",
        ),
        ("GET", "/api/v1/cases/99", None, 404, "no case 99"),
        ("GET", "/api/v1/cases?status=closed", None, 422, "status"),
        ("PATCH", "/api/v1/cases/99", {"action": "acknowledge"}, 404, "no case 99"),
        ("PATCH", "/api/v1/cases/1", {"action": "resolve"}, 422, "resolution"),
        ("PATCH", "/api/v1/cases/1", {"action": "categorise", "category": "zz"}, 422, "zz"),
        ("PATCH", "/api/v1/cases/1", {"action": "close"}, 422, "action"),
        (
            "PATCH",
            "/api/v1/cases/1",
            {"action": "resolve", "resolution": "ok", "verified": True},
            422,
            "only a dispute",
        ),
    ],
)
def test_bad_requests_say_why_and_change_nothing(
    api: Api, method: str, path: str, body: Any, status: int, says: str
) -> None:
    client, engine, _, _, _ = api
    made = client.post(
        "/api/v1/cases", json={"account_id": "A00000", "kind": "complaint"}, headers=AUTH
    )
    assert made.json()["id"] == 1
    before = (rows(engine, CaseFile), rows(engine, AuditLog), rows(engine, AccountEvent))
    answer = client.request(method, path, json=body, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert (rows(engine, CaseFile), rows(engine, AuditLog), rows(engine, AccountEvent)) == before
    assert client.get("/api/v1/cases").status_code == 401


def test_a_resolved_case_cannot_change_again(api: Api) -> None:
    client, _, _, _, _ = api
    case = client.post(
        "/api/v1/cases", json={"account_id": "A00000", "kind": "complaint"}, headers=AUTH
    ).json()
    done = {"action": "resolve", "resolution": "apologised"}
    assert client.patch(f"/api/v1/cases/{case['id']}", json=done, headers=AUTH).status_code == 200
    for body in (done, {"action": "acknowledge"}):
        again = client.patch(f"/api/v1/cases/{case['id']}", json=body, headers=AUTH)
        assert again.status_code == 422 and "resolved already" in again.text


def test_openapi_documents_the_case_routes(api: Api) -> None:
    client, _, _, _, _ = api
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/api/v1/cases"]) == {"get", "post"}
    assert set(paths["/api/v1/cases/{case_id}"]) == {"get", "patch"}
    answer = paths["/api/v1/cases/{case_id}"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CaseOut"
    }
    assert "resolve_due_at" in doc["components"]["schemas"]["CaseOut"]["properties"]


def test_cli_lists_shows_resolves_and_audits(api: Api) -> None:
    client, engine, _, _, env = api
    for account, kind in (("A00000", "dispute"), ("A00001", "complaint")):
        answer = client.post(
            "/api/v1/cases", json={"account_id": account, "kind": kind}, headers=AUTH
        )
        assert answer.status_code == 201

    listed = cli(env, "cases", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].startswith("#1 dispute other account A00000: open")
    assert lines[1].startswith("#2 complaint other account A00001: open")
    # opened two hours before T in virtual time, weeks before the machine's clock: late
    as_json = json.loads(cli(env, "cases", "list", "--overdue", "--json").output)
    assert [c["id"] for c in as_json["cases"]] == [1, 2]
    assert cli(env, "cases", "list", "--status", "resolved").output == "no case\n"

    shown = cli(env, "cases", "show", "1")
    assert shown.exit_code == 0 and "kind: dispute" in shown.output

    done = cli(env, "cases", "resolve", "1", "--resolution", "verified with creditor", "--verified")
    assert done.exit_code == 0, done.output
    assert done.output == "resolved #1 dispute of account A00000 (collection resumes)\n"
    resolved = json.loads(cli(env, "cases", "show", "1", "--json").output)
    assert resolved["resolved_by"] == getpass.getuser() and resolved["verified"] is True
    assert [e.type for e in rows(engine, AccountEvent)][-1] == "dispute_resolved"

    for args, said in [
        (("cases", "resolve", "1", "--resolution", "x"), "error: case 1 is resolved already\n"),
        (("cases", "resolve", "9", "--resolution", "x"), "error: no case 9\n"),
        (("cases", "show", "9"), "error: no case 9\n"),
        (
            ("cases", "resolve", "2", "--resolution", "x", "--verified"),
            "verified: error: only a dispute is resolved with verification\n",
        ),
        (
            ("cases", "resolve", "2", "--resolution", "  "),
            "resolution: error: a resolution is required\n",
        ),
    ]:
        refused = cli(env, *args)
        assert refused.exit_code == 2 and refused.output.endswith(said), refused.output
    bad = cli(env, "cases", "list", "--status", "closed")
    assert bad.exit_code == 2

    trail = cli(env, "audit", "--account", "A00000", "--json")
    assert trail.exit_code == 0, trail.output
    entries = json.loads(trail.output)["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("api", "case.opened"),
        (getpass.getuser(), "case.resolved"),
    ]
    assert "verified with creditor" not in trail.output  # free text stays out of the log
    text = cli(env, "audit", "--account", "A00000").output.splitlines()
    assert len(text) == 2 and "case.opened" in text[0] and "case.resolved" in text[1]
    unknown = cli(env, "audit", "--account", "NOPE")
    assert unknown.exit_code == 2 and "unknown account 'NOPE'" in unknown.output


def test_audit_covers_events_opt_outs_and_imports(api: Api, tmp_path: Path) -> None:
    client, _, _, _, env = api
    url = "/api/v1/accounts/A00000/events"
    assert (
        client.post(url, json={"type": "opt_out", "channel": "sms"}, headers=AUTH).status_code
        == 201
    )
    promise = {"type": "promise", "amount": "50.00", "due": "2026-03-20"}
    answer = client.post(url, json=promise, headers={**AUTH, "Idempotency-Key": "k1"})
    assert answer.status_code == 201, answer.text
    csv = tmp_path / "a.csv"
    csv.write_text(csv.read_text().replace("A00000,D00000,Pat Doe,", "A00000,D00000,Pat Roe,"))
    imported = cli(env, "import", "accounts", str(csv))
    assert imported.exit_code == 0, imported.output
    entries = json.loads(cli(env, "audit", "--account", "A00000", "--json").output)["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("api", "opt_out.added"),
        ("api", "event.opt_out"),
        ("api", "event.promise"),
        (getpass.getuser(), "account.updated"),
    ]
    assert entries[3]["detail"]["fields"] == ["personal_data"]
    text = json.dumps(entries)
    assert "Pat" not in text and "+1212" not in text and "example.com" not in text


def test_working_days_skip_weekends_and_holidays() -> None:
    zone = ZoneInfo("America/New_York")
    friday = datetime(2026, 7, 2, 20, 0, tzinfo=UTC)  # Thursday 16:00 local; Fri 3 July is
    sla = CaseSla(acknowledge=Duration(1, "d"), resolve=Duration(2, "d"))  # the observed 4th
    due = due_times(friday, sla, zone, "US", None)
    assert due.acknowledge == datetime(2026, 7, 7, 4, 0, tzinfo=UTC)  # end of Monday 6th
    assert due.resolve == datetime(2026, 7, 8, 4, 0, tzinfo=UTC)
    without = due_times(friday, sla, zone, None, None)
    assert without.acknowledge == datetime(2026, 7, 4, 4, 0, tzinfo=UTC)  # end of Friday
    calendar = CaseSla(acknowledge=Duration(1, "d"), working_days=False)
    assert due_times(friday, calendar, zone, "US", None).acknowledge == friday + timedelta(days=1)
    hours = CaseSla(acknowledge=Duration(36, "h"))
    assert due_times(friday, hours, zone, "US", None).acknowledge == friday + timedelta(hours=36)


@pytest.mark.parametrize(
    ("cases", "says"),
    [
        ("{default_category: nope}", "cases.default_category 'nope' is not one of"),
        ("{categories: [other, other]}", "a category is listed twice"),
        ("{categories: [Other]}", "categories"),
        ("{categories: []}", "categories"),
        ("{sla: {acknowledge: 0d}}", "a deadline must be after the opening"),
        ("{sla: {resolve: soon}}", "invalid duration"),
        ("{severity: high}", "severity"),
    ],
)
def test_config_check_refuses_bad_cases_keys(tmp_path: Path, cases: str, says: str) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    policy = config / "policy.yaml"
    shipped = policy.read_text(encoding="utf-8")
    block = re.search(r"^cases:.*?\n\n", shipped, flags=re.M | re.S)
    assert block is not None
    policy.write_text(shipped.replace(block.group(), f"cases: {cases}\n\n"), encoding="utf-8")
    code, output = config_check(config)
    assert code == 2, output
    assert "policy.yaml:" in output and says in output, output


def test_a_case_read_by_two_requests_is_resolved_once(api: Api) -> None:
    """Two resolutions that both read the case unresolved: the second finds it resolved
    when it writes, and rolls back (no second audit entry, no second event)."""
    from orchestrator.errors import Invalid
    from orchestrator.store.cases import acknowledge_case, find_case, resolve_case

    client, engine, clock, _, _ = api
    made = client.post(
        "/api/v1/cases", json={"account_id": "A00000", "kind": "dispute"}, headers=AUTH
    )
    case_id = made.json()["id"]
    with engine.connect() as conn:
        stale = find_case(conn, case_id)
    assert stale is not None
    now = clock.now()
    with engine.begin() as conn:
        resolve_case(conn, stale, resolution="first", verified=True, actor="one", now=now)
    with pytest.raises(Invalid, match="resolved already"), engine.begin() as conn:
        resolve_case(conn, stale, resolution="second", verified=True, actor="two", now=now)
    with engine.begin() as conn:
        assert acknowledge_case(conn, stale, actor="three", now=now).resolution == "first"
    assert [e.type for e in rows(engine, AccountEvent)] == ["dispute", "dispute_resolved"]
    assert [(a.actor, a.action) for a in rows(engine, AuditLog) if a.object_type == "case"] == [
        ("api", "case.opened"),
        ("one", "case.resolved"),
    ]
