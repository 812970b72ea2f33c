"""Named API tokens: ``OUTREACH_API_TOKENS`` entries ``name:token`` (a bare token is
named ``api``), the name is the actor of what the API writes, and bad entries stop the
server with the variable named and no token shown (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from test_pause import cli, make_runner, write_setup  # noqa: I001 - tests/

from orchestrator.clock import VirtualClock
from orchestrator.config.settings import ApiToken, Settings, parse_api_tokens
from orchestrator.errors import ConfigError
from orchestrator.store import db
from orchestrator.web.app import Server, create_app

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
TOKENS = "alice:alice-secret-1, crm-sync:crm-secret, bare-secret, alice:alice-secret-2"


def test_entries_parse_into_names() -> None:
    assert parse_api_tokens([p.strip() for p in TOKENS.split(",")]) == [
        ApiToken("alice", "alice-secret-1"),
        ApiToken("crm-sync", "crm-secret"),
        ApiToken("api", "bare-secret"),
        ApiToken("alice", "alice-secret-2"),  # two tokens, one name: a rotation
    ]
    assert "alice-secret" not in repr(ApiToken("alice", "alice-secret-1"))


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        (["bad name:tok"], "entry 1: the name before ':' must be"),
        ([":tok"], "entry 1: the name before ':' must be"),
        (["ok:a", "bob:"], "entry 2 (bob): the token after ':' is empty"),
        (["a:same", "b:same"], "entry 2 (b): this token is given twice"),
    ],
)
def test_bad_entries_are_refused_without_the_token(entries: list[str], said: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_api_tokens(entries)
    text = str(raised.value)
    assert "OUTREACH_API_TOKENS " + said in text, text
    assert "same" not in text.replace("name", "") and "tok" not in text.replace("token", "")


@pytest.fixture
def server_env(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, sa.Engine, Any]]:
    env = write_setup(tmp_path, db_url, 2, creditors=("acme",))
    engine = db.make_engine(db_url)
    runner = make_runner(engine, env)
    server = Server(
        db=engine,
        config=runner.config,
        cipher=runner.cipher,
        settings=Settings.from_env({**env, "OUTREACH_API_TOKENS": TOKENS}),
        clock=VirtualClock(T),
        runner=runner,
    )
    with TestClient(create_app(server), raise_server_exceptions=False) as client:
        yield client, engine, env
    engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_token_name_is_the_actor(server_env: tuple[TestClient, sa.Engine, Any]) -> None:
    client, _, env = server_env
    opened = client.post(
        "/api/v1/cases",
        json={"account_id": "A00000", "kind": "complaint"},
        headers=bearer("alice-secret-2"),
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["opened_by"] == "alice"
    url = "/api/v1/accounts/A00000/events"
    event = client.post(
        url, json={"type": "opt_out", "channel": "sms"}, headers=bearer("crm-secret")
    )
    assert event.status_code == 201, event.text
    pause = client.post("/api/v1/pauses", json={"reason": "test"}, headers=bearer("bare-secret"))
    assert pause.status_code == 201 and pause.json()["actor"] == "api"
    ended = client.delete(f"/api/v1/pauses/{pause.json()['id']}", headers=bearer("crm-secret"))
    assert ended.status_code == 200, ended.text
    for wrong in ("alice", "alice:alice-secret-1", "crm-secret "[:-2], ""):
        refused = client.get("/api/v1/pauses", headers=bearer(wrong))
        assert refused.status_code == 401, wrong
    entries = json.loads(cli(env, "audit", "--account", "A00000", "--json").output)["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("alice", "case.opened"),
        ("crm-sync", "opt_out.added"),
        ("crm-sync", "event.opt_out"),
    ]


def test_a_bad_entry_stops_the_server(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    engine = db.make_engine(db_url)
    runner = make_runner(engine, env)
    with pytest.raises(ConfigError, match="OUTREACH_API_TOKENS entry 2"):
        Server(
            db=engine,
            config=runner.config,
            cipher=runner.cipher,
            settings=Settings.from_env({**env, "OUTREACH_API_TOKENS": "a:x,b:"}),
            clock=VirtualClock(T),
            runner=runner,
        )
    engine.dispose()
