"""``/healthz`` and ``/readyz`` on a real server (SQLite and PostgreSQL): 200 only when the
database answers and its schema is at the release's migration head; ``/readyz`` also when
the data keys open a stored personal field. And the server's request metrics per route."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from support import ROOT, TEST_SECRET, free_socket, live_server, setup_db, write_config  # noqa: I001 - tests/support.py
from test_server import T

from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.settings import Settings
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.dispatch.runner import Runner
from orchestrator.store import db
from orchestrator.web.app import Server, create_app


@contextmanager
def serving(db_url: str, tmp_path: Path, keys: str | None = None) -> Iterator[str]:
    """A real server on ``db_url``, whatever state that database is in."""
    config_dir = write_config(tmp_path / "config", outbox=tmp_path / "outbox")
    settings = Settings.from_env(
        {
            "OUTREACH_DATABASE_URL": db_url,
            "OUTREACH_DATA_KEYS": keys or Fernet.generate_key().decode(),
            "OUTREACH_SECRET_KEY": TEST_SECRET,
            "OUTREACH_CONFIG": str(config_dir),
        }
    )
    config = load_config(config_dir, ROOT / "templates")
    cipher, engine = DataCipher(settings.data_keys), db.make_engine(db_url)
    runner = Runner(
        engine,
        config,
        TemplateRenderer(ROOT / "templates"),
        {},
        cipher,
        public_url="https://o.example.com",
        secret=TEST_SECRET,
    )
    server = Server(
        db=engine,
        config=config,
        cipher=cipher,
        settings=settings,
        clock=VirtualClock(T),
        runner=runner,
    )
    sock = free_socket()
    try:
        with live_server(create_app(server), sock):
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        engine.dispose()


HEAD = db.known_revisions()[-1]


def probes(url: str) -> list[tuple[int, dict[str, Any]]]:
    return [
        (r.status_code, r.json()) for r in (httpx.get(url + p) for p in ("/healthz", "/readyz"))
    ]


def test_health_needs_the_database_at_the_migration_head(db_url: str, tmp_path: Path) -> None:
    """On a database with no tables /healthz said 200 while /metrics failed."""
    with serving(db_url, tmp_path) as url:
        missing = {
            "status": "unavailable",
            "reason": f"the database has no schema (expected revision {HEAD}): "
            "run `outreach db upgrade`",
        }
        assert probes(url) == [(503, missing), (503, missing)]
        db.upgrade(db_url, "0003")
        behind = probes(url)
        assert [code for code, _ in behind] == [503, 503]
        assert f"is at revision 0003, expected {HEAD}" in behind[0][1]["reason"], behind
        db.upgrade(db_url)
        assert probes(url) == [(200, {"status": "ok"})] * 2
        assert httpx.get(url + "/metrics").status_code == 200


def test_health_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
    with serving(unreachable, tmp_path) as url:
        assert (
            probes(url)
            == [
                (
                    503,
                    {"status": "unavailable", "reason": "database unreachable (OperationalError)"},
                )
            ]
            * 2
        )


def test_readyz_needs_keys_that_open_a_stored_field(db_url: str, tmp_path: Path) -> None:
    """Started with the wrong data keys, the server is alive but must get no traffic."""
    with serving(db_url, tmp_path / "empty") as url:
        db.upgrade(db_url)
        assert probes(url) == [(200, {"status": "ok"})] * 2  # nothing stored: nothing to open
    env, _ = setup_db(db_url, tmp_path, 2)
    with serving(db_url, tmp_path / "wrong") as url:  # a new random key, not the import's
        (live, _), (ready, why) = probes(url)
        assert (live, ready) == (200, 503)
        assert why["reason"].startswith("the data keys do not open debtor.name_enc: check ")
        assert "OUTREACH_DATA_KEYS" in why["reason"]
    rotated = f"{Fernet.generate_key().decode()},{env['OUTREACH_DATA_KEYS']}"
    with serving(db_url, tmp_path / "rotating", keys=rotated) as url:
        assert probes(url) == [(200, {"status": "ok"})] * 2  # the old key is still listed


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split(" ")[0] == f"{name}{{{wanted}}}":
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_server_counts_requests_by_route_template(db_url: str, tmp_path: Path) -> None:
    db.upgrade(db_url)
    with serving(db_url, tmp_path) as url:
        for token in ("abc", "def", "ghi"):
            assert httpx.get(f"{url}/p/{token}").status_code == 404
        httpx.get(url + "/healthz")
        httpx.get(url + "/no/such/path")
        httpx.request("PROPFIND", url + "/healthz")
        text = httpx.get(url + "/metrics").text
    assert (
        _sample(
            text, "outreach_http_requests_total", method="GET", route="/p/{token}", status="404"
        )
        == 3
    )
    assert "abc" not in text and "/no/such/path" not in text  # templates, never raw paths
    assert (
        _sample(text, "outreach_http_requests_total", method="GET", route="/healthz", status="200")
        == 1
    )
    assert (
        _sample(text, "outreach_http_requests_total", method="GET", route="other", status="404")
        == 1
    )
    brewed = _sample(
        text, "outreach_http_requests_total", method="OTHER", route="/healthz", status="405"
    )
    assert brewed == 1
    count = _sample(text, "outreach_http_request_seconds_count", method="GET", route="/p/{token}")
    assert count == 3
