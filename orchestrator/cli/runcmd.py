"""``outreach run``: the daemon (docs/cli.md)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from orchestrator.errors import OutreachError


def build_runner(
    *,
    now_fixed: datetime | None = None,
    worker: str | None = None,
    stop: threading.Event | None = None,
) -> tuple[Any, Any]:
    """A ``Runner`` and its clock, from the environment (docs/cli.md) and the config."""
    from channels.registry import create_adapter
    from orchestrator.clock import FrozenClock, SystemClock
    from orchestrator.config.loading import load_config
    from orchestrator.config.settings import Settings
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.dispatch.runner import SEND_BATCH, Runner
    from orchestrator.dispatch.webhooks import WebhookDispatcher, secrets_from_env
    from orchestrator.store import db

    settings = Settings.from_env()
    secret = settings.require("OUTREACH_SECRET_KEY")
    cipher = settings.cipher()
    config = load_config(settings.config_dir, settings.templates_dir, deployment=True)
    clock = FrozenClock(now_fixed) if now_fixed is not None else SystemClock()
    adapters = {
        name: create_adapter(name, cfg, base_dir=Path.cwd(), clock=clock)
        for name, cfg in config.channels.items()
    }
    engine = db.make_engine(settings.database_url)
    runner = Runner(
        engine,
        config,
        TemplateRenderer(settings.templates_dir, live=False),
        adapters,
        cipher,
        public_url=settings.public_url,
        secret=secret,
        worker=worker or default_worker(),
        workers=positive_env("OUTREACH_WORKERS", 1),
        stop=stop,
        send_batch=positive_env("OUTREACH_SEND_BATCH", SEND_BATCH),
    )
    runner.webhooks = WebhookDispatcher(engine, config.webhooks, secrets_from_env(config.webhooks))
    return runner, clock


def positive_env(name: str, default: int) -> int:
    """A positive whole number from the environment, or ``default`` when unset."""
    from orchestrator.errors import OutreachError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise OutreachError(f"{name}: error: expected a whole number of at least 1, got {raw!r}")
    return int(raw)


def default_worker() -> str:
    """A worker's name must survive its restart (its own interrupted sends are recognised
    by it): ``OUTREACH_WORKER_ID``, else the host name."""
    return os.environ.get("OUTREACH_WORKER_ID") or socket.gethostname()


def require_schema() -> None:
    """Refuse to start on a database without this release's schema (exit 2, saying so),
    before any adapter starts: not a traceback at the first table missing."""
    from orchestrator.config.settings import Settings
    from orchestrator.store import db

    db.open_database(Settings.from_env().database_url).dispose()


CONFIG_OPTION = typer.Option(
    None, "--config", help="configuration directory (default OUTREACH_CONFIG, else config)"
)
TEMPLATES_OPTION = typer.Option(
    None, "--templates", help="template directory (default OUTREACH_TEMPLATES, else templates)"
)


def use_directories(config: Path | None, templates: Path | None) -> tuple[Path, Path]:
    """The configuration and template directories: ``--config`` and ``--templates``,
    else ``OUTREACH_CONFIG`` and ``OUTREACH_TEMPLATES``, else ``config`` and
    ``templates``. An option given is exported as its variable, so that what reads the
    settings later (the daemon's reload on SIGHUP, ``serve``'s worker processes) reads
    the same directory. A directory given that does not exist is exit 2."""
    for given, variable, what in (
        (config, "OUTREACH_CONFIG", "configuration"),
        (templates, "OUTREACH_TEMPLATES", "template"),
    ):
        if given is None:
            continue
        if not given.is_dir():
            typer.echo(f"{given}: error: no such {what} directory", err=True)
            raise typer.Exit(2)
        os.environ[variable] = str(given)
    return (
        Path(os.environ.get("OUTREACH_CONFIG") or "config"),
        Path(os.environ.get("OUTREACH_TEMPLATES") or "templates"),
    )


def _parse_now(value: str) -> datetime:
    from orchestrator.clock import parse_instant

    try:
        return parse_instant(value)
    except ValueError as exc:
        typer.echo(f"--now: error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run_once(instant: datetime | None, worker: str | None) -> None:
    """``run --once``: recover, one tick, a heartbeat; the summary as one JSON line."""
    from orchestrator import installed_version
    from orchestrator.cli.simcmd import _fail
    from orchestrator.dispatch.daemon import setup_logging
    from orchestrator.store.status import beat

    setup_logging(logging.WARNING)  # what needs telling (bad data), as JSON lines
    try:
        runner, clock = build_runner(now_fixed=instant, worker=worker)
    except OutreachError as exc:
        _fail(exc)
        return
    at = clock.now()
    ambiguous = runner.recover(at)
    began = time.perf_counter()
    result = runner.tick(at)
    with runner.db.begin() as conn:  # `outreach status` shows the run as a worker's
        planned = (result.planned, time.perf_counter() - began)
        beat(conn, runner.worker, installed_version(), at, at, planned=planned)
    summary: dict[str, Any] = {
        "time": at.isoformat(),
        "worker": runner.worker,
        "planned": result.planned,
        "recovered_ambiguous": ambiguous,
        "decisions": dict(sorted(result.decisions.items())),
    }
    if runner.webhooks is not None:
        hooks = runner.webhooks.run(at)
        if runner.webhooks.urls:  # subscriptions configured: what the pass did
            summary["webhooks"] = hooks
    typer.echo(json.dumps(summary))


def run(
    once: bool = typer.Option(False, "--once", help="one full tick (plan + dispatch), then exit"),
    now: str | None = typer.Option(None, "--now", help="ISO-8601 instant for that tick"),
    worker: str | None = typer.Option(
        None, "--worker-id", help="this worker's stable name (default OUTREACH_WORKER_ID or host)"
    ),
    plan_every: float = typer.Option(60.0, help="seconds between planning runs"),
    dispatch_every: float = typer.Option(5.0, help="seconds between dispatch runs"),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="serve this worker's /metrics on this port"
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="the address --metrics-port listens on"
    ),
    config: Path | None = CONFIG_OPTION,
    templates: Path | None = TEMPLATES_OPTION,
) -> None:
    """Plan due steps and dispatch sends; forever, or one tick with --once.

    Reference: docs/cli.md; decision records: docs/decisions.md."""
    from orchestrator.cli.simcmd import _fail

    instant = _parse_now(now) if now else None
    use_directories(config, templates)
    require_schema()
    if once:
        _run_once(instant, worker)
        return
    from orchestrator.dispatch.daemon import Daemon, setup_logging

    setup_logging()
    clock_holder: dict[str, Any] = {}

    def build(stop: threading.Event) -> Any:
        runner, clock = build_runner(now_fixed=instant, worker=worker, stop=stop)
        clock_holder.setdefault("clock", clock)
        return runner

    try:
        daemon = Daemon(
            build,
            clock=_LazyClock(clock_holder),
            plan_every=plan_every,
            dispatch_every=dispatch_every,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
    except OutreachError as exc:
        _fail(exc)
        return
    try:
        daemon.serve_metrics()
    except OSError as exc:  # the port is taken, or the address is not this host's
        reason = exc.strerror or type(exc).__name__
        typer.echo(
            f"--metrics-port: error: cannot listen on {metrics_host}:{metrics_port}: {reason}",
            err=True,
        )
        raise typer.Exit(2) from None
    daemon.run()


class _LazyClock:
    """The clock of the first runner built (system clock, or frozen by --now)."""

    def __init__(self, holder: dict[str, Any]):
        self.holder = holder

    def now(self) -> datetime:
        return self.holder["clock"].now()  # type: ignore[no-any-return]


def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        envvar="OUTREACH_SERVE_WORKERS",
        help="processes, PostgreSQL only (one per core is a good start)",
    ),
    config: Path | None = CONFIG_OPTION,
    templates: Path | None = TEMPLATES_OPTION,
) -> None:
    """Webhooks, payment links and the REST API.

    Routes: docs/http.md; options and environment: docs/cli.md."""
    import uvicorn

    from orchestrator.cli.simcmd import _fail
    from orchestrator.dispatch.daemon import setup_logging
    from orchestrator.web.app import build_server, create_app

    use_directories(config, templates)
    require_schema()
    try:
        server = build_server()
    except OutreachError as exc:
        _fail(exc)
        return
    if workers > 1 and server.db.dialect.name == "sqlite":
        # One process serialises SQLite's writes and batches them; several would race
        # between a callback's read and its write.
        _fail(
            OutreachError(
                "--workers above 1 needs PostgreSQL: on SQLite one process "
                "takes every write (about 1,000 callbacks/s)"
            )
        )
        return
    setup_logging()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "proxy_headers": True,
        "server_header": False,
        "access_log": False,
    }
    if workers > 1:  # each process builds its own server (checked once above)
        server.db.dispose()
        uvicorn.run("orchestrator.web.app:app_from_env", factory=True, workers=workers, **options)
        return
    uvicorn.run(create_app(server), **options)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("serve")(serve)
