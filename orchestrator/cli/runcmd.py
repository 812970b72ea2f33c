"""``outreach run``: the daemon (CONTRACT §2)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType

import typer

from orchestrator.errors import OutreachError

log = logging.getLogger("outreach.run")


def build_runner(*, now_fixed: datetime | None = None):  # type: ignore[no-untyped-def]
    """A ``Runner`` from the environment (CONTRACT §3) and the configuration directory."""
    from channels.registry import create_adapter
    from orchestrator import db
    from orchestrator.clock import FrozenClock, SystemClock
    from orchestrator.configload import load_config
    from orchestrator.crypto import DataCipher
    from orchestrator.rendering import TemplateRenderer
    from orchestrator.runner import Runner
    from orchestrator.settings import Settings

    settings = Settings.from_env()
    secret = settings.require("OUTREACH_SECRET_KEY")
    settings.require("OUTREACH_DATA_KEYS")
    cipher = DataCipher(settings.data_keys)
    config = load_config(settings.config_dir, settings.templates_dir)
    clock = FrozenClock(now_fixed) if now_fixed is not None else SystemClock()
    adapters = {
        name: create_adapter(name, cfg, base_dir=Path.cwd(), clock=clock)
        for name, cfg in config.channels.items()
    }
    engine = db.make_engine(settings.database_url)
    runner = Runner(engine, config, TemplateRenderer(settings.templates_dir), adapters, cipher,
                    public_url=settings.public_url, secret=secret)
    return runner, clock


def _parse_now(value: str) -> datetime:
    from orchestrator.scenario import parse_instant

    try:
        return parse_instant(value)
    except ValueError as exc:
        typer.echo(f"--now: error: {exc}", err=True)
        raise typer.Exit(2) from exc


def run(
    once: bool = typer.Option(False, "--once", help="one full tick (plan + dispatch), then exit"),
    now: str | None = typer.Option(None, "--now", help="ISO-8601 instant for that tick"),
    interval: float = typer.Option(60.0, help="seconds between ticks when running forever"),
) -> None:
    """Plan due steps and dispatch sends; forever, or once with --once."""
    from orchestrator.cli.engine import _fail

    instant = _parse_now(now) if now else None
    try:
        runner, clock = build_runner(now_fixed=instant)
    except OutreachError as exc:
        _fail(exc)
        return
    if once:
        result = runner.tick(clock.now())
        typer.echo(json.dumps({"time": clock.now().isoformat(), "planned": result.planned,
                               "decisions": dict(sorted(result.decisions.items()))}))
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current tick, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    while not stop.is_set():
        try:
            result = runner.tick(clock.now())
            log.info("tick: planned %d, decisions %s", result.planned, dict(result.decisions))
        except Exception:  # noqa: BLE001 - a daemon logs and carries on; the next tick retries
            log.exception("tick failed")
        stop.wait(interval)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
