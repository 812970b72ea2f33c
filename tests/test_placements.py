"""Agency placement (委外): place and recall through the CLI and the API, the placement
file (only the agreed fields), our own collection suppressed (``placed``) while placed,
and the agencies' reported calls counted by the China cap (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import test_runner
from fastapi.testclient import TestClient
from support import ROOT, sample_runner  # noqa: I001 - tests/support.py
from test_pause import TOKEN, cli, make_runner, write_setup
from test_runner import _assert_ticks_decide, _key

from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.settings import Settings
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.simulation.sample import generate_accounts
from orchestrator.simulation.simulate import Scenario, Simulation
from orchestrator.store import db, placements
from orchestrator.store.tables import AuditLog, Decision, Send, table_of
from orchestrator.testing import event
from orchestrator.web.app import Server, create_app

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York
CADENCES = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00", expires: 3d}
      - {id: daily-email, channel: email, template: overdue, every: 1d, at: "10:00", expires: 3d}
"""


def _setup(tmp_path: Path, db_url: str, n: int) -> dict[str, str]:
    """``test_pause``'s setup, with the agency ``east`` (account id, reference, balance,
    name and phone) writing its files under ``tmp_path/placements``."""
    env = write_setup(tmp_path, db_url, n, creditors=("acme",))
    creditors = Path(env["OUTREACH_CONFIG"]) / "creditors.yaml"
    creditors.write_text(
        creditors.read_text()
        + "agencies:\n"
        + "  east:\n"
        + "    name: East Recovery\n"
        + "    fields: [account_id, reference, balance, name, phone]\n"
        + f"    dir: '{tmp_path / 'placements'}'\n"
    )
    return env


def _audit(engine: sa.Engine) -> list[Any]:
    audit = table_of(AuditLog)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit).order_by(audit.c.id)).all()
    return [r for r in rows if r.object_type == "placement"]


def test_place_list_and_recall_on_the_command_line(db_url: str, tmp_path: Path) -> None:
    env = _setup(tmp_path, db_url, 3)
    placed = cli(env, "placements", "place", "--agency", "east", "--account", "A00000",
                 "--account", "A00001")  # fmt: skip
    assert placed.exit_code == 0, placed.output
    assert "placed 2 account(s) with east" in placed.stdout
    files = sorted((tmp_path / "placements" / "east").iterdir())
    assert [f.suffix for f in files] == [".csv", ".json"]
    assert "holds personal data in clear" in placed.stdout
    with files[0].open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["account_id", "reference", "balance", "name", "phone"]
    assert rows[1] == ["A00000", "R0", "100.00", "Pat Doe", "+12122000000"]
    assert rows[2][0] == "A00001" and len(rows) == 3
    document = json.loads(files[1].read_text(encoding="utf-8"))
    assert document["agency"] == "east" and document["fields"] == rows[0]
    assert document["accounts"][0] == dict(zip(rows[0], rows[1], strict=True))
    assert "pat0@example.com" not in files[0].read_text() + files[1].read_text()
    assert not [p for p in files[0].parent.iterdir() if p.name.startswith(".")]
    assert {f.stat().st_mode & 0o777 for f in files} == {0o600}  # they hold PII in clear

    again = cli(env, "placements", "place", "--agency", "east", "--account", "A00000")
    assert again.exit_code == 0 and "placed 0 account(s)" in again.stdout
    assert "already placed, left as they are: A00000" in again.stdout
    listed = cli(env, "placements", "list", "--json")
    found = json.loads(listed.stdout)["placements"]
    assert [(p["account_id"], p["agency"], p["in_force"]) for p in found] == [
        ("A00000", "east", True),
        ("A00001", "east", True),
    ]
    recalled = cli(env, "placements", "recall", "--account", "A00000")
    assert recalled.exit_code == 0 and "recalled 1 placement(s)" in recalled.stdout
    in_force = cli(env, "placements", "list", "--in-force")
    assert "A00001" in in_force.stdout and "A00000" not in in_force.stdout

    engine = db.make_engine(db_url)
    trail = [(r.action, r.account_id, r.actor) for r in _audit(engine)]
    engine.dispose()
    me = getpass.getuser()
    assert trail == [
        ("placement.place", "A00000", me),
        ("placement.place", "A00001", me),
        ("placement.recall", "A00000", me),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agency", "west", "--account", "A00000"], "agency: error: unknown agency 'west'"),
        (["--agency", "east", "--account", "NOPE"], "error: unknown account 'NOPE'"),
        (["--agency", "east", "--rule", "stage"], "rule: error: 'stage': expected KEY=VALUE"),
        (["--agency", "east", "--rule", "no_contact_days=x"], "rule: error: no_contact_days"),
        (["--agency", "east"], "error: give --account ID (one or more) or --rule"),
    ],
)
def test_a_bad_placement_is_exit_2_and_places_nothing(
    db_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    env = _setup(tmp_path, db_url, 1)
    result = cli(env, "placements", "place", *args)
    assert result.exit_code == 2
    assert message in result.stderr, result.stderr
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        assert placements.list_placements(conn) == []
    engine.dispose()
    assert not (tmp_path / "placements").exists()


def test_a_placed_account_gets_none_of_our_collection_until_recalled(
    db_url: str, tmp_path: Path
) -> None:
    env = _setup(tmp_path, db_url, 2)
    engine = db.make_engine(db_url)
    runner = make_runner(engine, env)
    with engine.begin() as conn:
        placements.place(
            conn, runner.config, runner.cipher, agency="east", account_ids=["A00000"],
            actor="test", now=T - timedelta(hours=1),
        )  # fmt: skip
    runner.tick(T)
    d = table_of(Decision)
    with engine.connect() as conn:
        first = {(r.account_id, r.step, r.decision, r.reason) for r in conn.execute(sa.select(d))}
    assert first == {
        ("A00000", "daily-sms", "suppressed", "placed"),
        ("A00000", "daily-email", "suppressed", "placed"),
        ("A00001", "daily-sms", "sent", None),
        ("A00001", "daily-email", "sent", None),
    }
    with engine.begin() as conn:
        placements.recall(conn, account_ids=["A00000"], actor="test", now=T + timedelta(hours=1))
    runner.tick(T + timedelta(days=1))
    with engine.connect() as conn:
        later = conn.execute(
            sa.select(d.c.account_id, d.c.decision).where(d.c.time == T + timedelta(days=1))
        ).all()
    engine.dispose()
    assert sorted(later) == [("A00000", "sent")] * 2 + [("A00001", "sent")] * 2


def test_place_by_rule_stage_and_no_contact(db_url: str, tmp_path: Path) -> None:
    env = _setup(tmp_path, db_url, 3)
    engine = db.make_engine(db_url)
    make_runner(engine, env).tick(T)  # planning writes each account's stage (M1)
    send = table_of(Send)
    with engine.begin() as conn:  # A00001's text reached the person: it was contacted
        conn.execute(
            send.update().where(send.c.account_id == "A00001", send.c.channel == "sms")
            .values(status="delivered")
        )  # fmt: skip
    engine.dispose()
    none = cli(env, "placements", "place", "--agency", "east", "--rule", "stage=M2")
    assert none.exit_code == 0 and "placed 0 account(s)" in none.stdout
    assert not (tmp_path / "placements").exists()  # no file for no account
    # the command's clock is the real one: the window reaches back to T
    days = (datetime.now(UTC) - T).days + 2
    rule = f"stage=M1,no_contact_days={days}"
    chosen = cli(env, "placements", "place", "--agency", "east", "--rule", rule)
    assert chosen.exit_code == 0, chosen.output
    listed = json.loads(cli(env, "placements", "list", "--json").stdout)["placements"]
    assert [p["account_id"] for p in listed] == ["A00000", "A00002"]


# --- the API -------------------------------------------------------------------------------


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, sa.Engine, Path]]:
    env = _setup(tmp_path, db_url, 3)
    engine = db.make_engine(db_url)
    settings = Settings.from_env({**env, "OUTREACH_API_TOKENS": TOKEN})
    runner = make_runner(engine, env)
    server = Server(
        db=engine,
        config=runner.config,
        cipher=runner.cipher,
        settings=settings,
        clock=VirtualClock(T),
        runner=runner,
    )
    with TestClient(create_app(server), raise_server_exceptions=False) as client:
        yield client, engine, tmp_path
    engine.dispose()


def test_placements_through_the_api(api: tuple[TestClient, sa.Engine, Path]) -> None:
    client, engine, tmp_path = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/v1/placements").status_code == 401
    body = {"agency": "east", "account_ids": ["A00000", "A00002"]}
    assert client.post("/api/v1/placements", json=body).status_code == 401
    made = client.post("/api/v1/placements", json=body, headers=auth)
    assert made.status_code == 201, made.text
    answer = made.json()
    assert [p["account_id"] for p in answer["placements"]] == ["A00000", "A00002"]
    assert answer["placements"][0]["actor"] == "api"
    assert answer["placements"][0]["placed_at"] == "2026-03-10T15:00:00Z"
    assert answer["already_placed"] == [] and len(answer["files"]) == 2
    assert all(Path(f).is_file() for f in answer["files"])

    listed = client.get("/api/v1/placements", params={"in_force": True}, headers=auth).json()
    assert [p["id"] for p in listed["placements"]] == [1, 2]
    for name in ("agency", "account_id"):  # a NUL was a 500 on PostgreSQL (found by fuzzing)
        refused = client.get("/api/v1/placements", params={name: "east\x00"}, headers=auth)
        assert refused.status_code == 422, refused.text
        assert "control character U+0000" in refused.text
    one = client.delete("/api/v1/placements/1", headers=auth)
    assert one.status_code == 200 and one.json()["recalled_by"] == "api"
    assert client.delete("/api/v1/placements/1", headers=auth).status_code == 422
    assert client.delete("/api/v1/placements/99", headers=auth).status_code == 404
    rest = client.post("/api/v1/placements/recall", json={"agency": "east"}, headers=auth)
    assert rest.status_code == 200 and [p["id"] for p in rest.json()["placements"]] == [2]
    assert [r.action for r in _audit(engine)] == [
        "placement.place",
        "placement.place",
        "placement.recall",
        "placement.recall",
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"agency": "west", "account_ids": ["A00000"]}, 422, "agency"),
        ({"agency": "east", "account_ids": ["NOPE"]}, 404, None),
        ({"agency": "east"}, 422, "account_ids"),
        ({"agency": "east", "account_ids": ["A00000"], "rule": {"stage": "M1"}}, 422, None),
        ({"agency": "east", "rule": {}}, 422, "rule"),
        ({"agency": "east", "rule": {"no_contact_days": 0}}, 422, None),
        ({"agency": "east", "account_ids": ["A00000"], "extra": 1}, 422, None),
    ],
)
def test_a_bad_placement_request_is_refused_with_its_field(
    api: tuple[TestClient, sa.Engine, Path], body: dict[str, Any], status: int, field: str | None
) -> None:
    client, engine, tmp_path = api
    answer = client.post(
        "/api/v1/placements", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == status, answer.text
    if field is not None:
        assert field in answer.text
    with engine.connect() as conn:
        assert placements.list_placements(conn) == []
    assert not (tmp_path / "placements").exists()


# --- simulate and the daemon decide the same ------------------------------------------------

START = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)


def _apply(runner: Any, ev: ScenarioEvent, n: int) -> None:
    """``test_runner._apply``, and placements as the CLI and API record them."""
    if ev.type not in ("placed", "recalled"):
        original_apply(runner, ev, n)
        return
    with runner.db.begin() as conn:
        if ev.type == "placed":
            placements.place(
                conn, runner.config, runner.cipher, agency=ev.data["agency"],
                account_ids=[ev.account], actor="test", now=ev.at,
            )  # fmt: skip
        else:
            placements.recall(conn, account_ids=[ev.account], actor="test", now=ev.at)


original_apply = test_runner._apply


def test_ticks_decide_what_simulate_decides_with_placements_and_agency_calls(
    db_url: str, data_keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A US account placed then recalled (its collection ``placed`` in between), and a
    Chinese debtor whose agency reported three connected calls on a day: the China cap
    (institution and agencies, 3 a day) holds our call of that day."""
    config = load_config(ROOT / "config", ROOT / "templates")
    terms = config.creditors.agencies["eastern-recovery"]
    agencies = {"eastern-recovery": terms.model_copy(update={"dir": str(tmp_path / "files")})}
    config = config.model_copy(
        update={"creditors": config.creditors.model_copy(update={"agencies": agencies})}
    )
    accounts = list(generate_accounts(24, today=START.date(), seed=3))
    plain = list(Simulation(Scenario(START, 4, config, ROOT / "templates", accounts)).run())
    us_sent = next(
        r for r in plain if r.kind == "collection" and r.decision == "sent" and r.account[0] == "U"
        and r.time > START + timedelta(days=1)
    )  # fmt: skip
    call = next(
        r for r in plain if r.channel == "voice" and r.decision == "sent" and r.account[0] == "C"
    )
    day_start = call.time - timedelta(hours=2)
    events = [
        event((us_sent.time - timedelta(hours=3)).isoformat(), us_sent.account, "placed",
              agency="eastern-recovery"),
        event((us_sent.time + timedelta(days=1)).isoformat(), us_sent.account, "recalled"),
        *[
            event((day_start + timedelta(minutes=m)).isoformat(), call.account, "agency_contact",
                  channel="voice")
            for m in (0, 20, 40)
        ],
    ]  # fmt: skip
    events.sort(key=lambda e: e.at)
    records = list(
        Simulation(Scenario(START, 4, config, ROOT / "templates", accounts, events)).run()
    )
    mine = [r for r in records if r.account == us_sent.account and r.time == us_sent.time]
    assert {(str(r.decision), r.reason) for r in mine} == {("suppressed", "placed")}
    held = [r for r in records if r.account == call.account and r.time == call.time]
    assert [(str(r.decision), r.reason) for r in held if r.channel == "voice"] == [
        ("deferred", "limit:cn-daily-calls")
    ]
    _, runner = sample_runner(db_url, data_keys, tmp_path, config, accounts, start=START, batch=37)
    monkeypatch.setattr(test_runner, "_apply", _apply)
    _assert_ticks_decide(runner, [_key(r) for r in records], events)
