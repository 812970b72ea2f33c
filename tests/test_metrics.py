"""The daemon's ``/metrics`` (``outreach run --metrics-port``): what it counts as it plans
and sends, served over HTTP; and the alert rules and dashboard in ``deploy/``, which
must name only metrics the daemon and the server export."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client import generate_latest
from ruamel.yaml import YAML
from support import ROOT, free_socket  # noqa: I001 - tests/support.py
from test_pause import TOKEN, make_runner, write_setup  # noqa: I001 - tests/test_pause.py
from typer.testing import CliRunner

from channels.base import OutboundMessage, SendResult
from channels.simulated import SimulatedChannel
from orchestrator.cli import _register_all, app
from orchestrator.clock import FrozenClock
from orchestrator.config.settings import Settings
from orchestrator.dispatch.daemon import Daemon
from orchestrator.store import db
from orchestrator.web.app import Server

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York


class FlakyChannel(SimulatedChannel):
    """Refuses every third message, as a provider refusing bad numbers would."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def send(self, message: OutboundMessage) -> SendResult:
        from orchestrator.errors import PermanentChannelError

        self.n += 1
        if self.n % 3 == 0:
            raise PermanentChannelError("21211: invalid number")
        return super().send(message)


def _samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, from the text exposition format."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_the_daemon_counts_what_it_plans_and_sends(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 6, creditors=("acme",))
    engine = db.make_engine(db_url)
    clock = FrozenClock(T)
    channel = FlakyChannel()
    daemon = Daemon(
        lambda stop: make_runner(engine, env, worker="w-m", channel=channel),
        clock,
        metrics_port=1,  # not served here: the registry is read directly
    )
    assert daemon.metrics is not None
    daemon.plan()
    daemon.dispatch()
    found = _samples(generate_latest(daemon.metrics.registry).decode())
    assert found["outreach_planned_occurrences_total"] == 12
    sent = sum(v for k, v in found.items() if 'decision="sent"' in k and "decisions_total" in k)
    failed = sum(v for k, v in found.items() if 'decision="failed"' in k and "decisions_total" in k)
    assert (sent, failed) == (8, 4)  # every third of 12 refused
    assert found['outreach_provider_send_seconds_count{channel="sms"}'] == 6
    errors = sum(v for k, v in found.items() if k.startswith("outreach_provider_errors_total"))
    assert errors == 4
    assert found["outreach_due_occurrences"] == 0  # the database's view, at the scrape
    assert found["outreach_last_dispatch_timestamp_seconds"] > 0
    assert "process_resident_memory_bytes" in found
    engine.dispose()


def test_metrics_are_served_over_http(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    engine = db.make_engine(db_url)
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    daemon = Daemon(lambda stop: make_runner(engine, env), FrozenClock(T), metrics_port=port)
    assert daemon.metrics is not None
    daemon.metrics.serve(port)
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# TYPE outreach_daemon_decisions_total counter" in body
    assert "outreach_due_occurrences" in body
    engine.dispose()


def _exported(db_url: str, tmp_path: Path) -> set[str]:
    """Every sample name the daemon and the server export once they have seen a little."""
    env = write_setup(tmp_path, db_url, 3, creditors=("acme",))
    engine = db.make_engine(db_url)
    clock = FrozenClock(T)
    daemon = Daemon(
        lambda stop: make_runner(engine, env, channel=FlakyChannel()), clock, metrics_port=1
    )
    assert daemon.metrics is not None
    daemon.plan()
    daemon.dispatch()
    runner = daemon.runner
    server = Server(
        db=engine,
        config=runner.config,
        cipher=runner.cipher,
        settings=Settings.from_env({**env, "OUTREACH_API_TOKENS": TOKEN}),
        clock=clock,
        runner=runner,
    )
    server.rejections.labels("/webhooks/twilio/sms/status", "signature").inc()
    server.http.observe("GET", "/healthz", 200, 0.002)  # a request (tests/test_health.py)
    names: set[str] = set()
    for registry in (daemon.metrics.registry, server.registry):
        for line in generate_latest(registry).decode().splitlines():
            if line and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    engine.dispose()
    return names


def test_alert_rules_and_dashboard_name_only_exported_metrics(db_url: str, tmp_path: Path) -> None:
    exported = _exported(db_url, tmp_path)
    rules = YAML(typ="safe").load((ROOT / "deploy" / "prometheus-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 6 and all(r.get("alert") for g in rules["groups"] for r in g["rules"])
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {m for e in exprs for m in re.findall(r"\b((?:outreach|process)_[a-z_]+)\b", e)}
    assert named, "no metric named: the check proves nothing"
    assert {"outreach_http_requests_total", "outreach_http_request_seconds_bucket"} <= named
    assert sorted(named - exported) == []


def test_run_takes_a_metrics_port(db_url: str, tmp_path: Path) -> None:
    """``run --metrics-port`` is refused out of range, before anything starts."""
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    _register_all()
    result = CliRunner().invoke(app, ["run", "--metrics-port", "70000"], env=env)
    assert result.exit_code == 2 and "metrics-port" in result.output


def test_a_metrics_port_in_use_is_one_line_and_exit_2(db_url: str, tmp_path: Path) -> None:
    env = write_setup(tmp_path, db_url, 1, creditors=("acme",))
    taken = free_socket()
    taken.listen()
    port = taken.getsockname()[1]
    _register_all()
    try:
        result = CliRunner().invoke(app, ["run", "--metrics-port", str(port)], env=env)
    finally:
        taken.close()
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"--metrics-port: error: cannot listen on 127.0.0.1:{port}: ")
