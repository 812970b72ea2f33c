"""``outreach run``: the runner on APScheduler 3 (the stable line), for months on end.

Three interval jobs, each a module-level function that takes the daemon's id (so a job
store could persist them): planning (``plan_job``), dispatch (``dispatch_job``) and the
outbound webhooks (``webhooks_job``, ``orchestrator.dispatch.webhooks``), with
``max_instances=1`` and ``coalesce=True`` so a slow run never piles up, and a one-thread
executor so they never overlap in one process. Many processes may run at once on
PostgreSQL: leases, the claim and the debtor locks (``orchestrator.dispatch.claiming``, with
``orchestrator.dispatch.postgres``) keep them apart.

Signals: SIGTERM and SIGINT stop after the send in flight (the runner's stop event);
SIGHUP reloads the configuration, and an invalid one is logged and ignored, the old one
kept. Logs are JSON lines carrying account and message ids, never personal data.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from orchestrator import installed_version
from orchestrator.clock import Clock
from orchestrator.dispatch.metrics import DaemonMetrics
from orchestrator.dispatch.runner import Runner
from orchestrator.errors import OutreachError
from orchestrator.store.status import beat

log = logging.getLogger("outreach.daemon")

_DAEMONS: dict[str, Daemon] = {}


def plan_job(daemon_id: str) -> None:
    """APScheduler job: plan what is due (by id, so the job itself holds no state)."""
    _DAEMONS[daemon_id].plan()


def dispatch_job(daemon_id: str) -> None:
    """APScheduler job: decide and send every occurrence that is due."""
    _DAEMONS[daemon_id].dispatch()


def webhooks_job(daemon_id: str) -> None:
    """APScheduler job: queue new events and post the outbound webhooks due."""
    _DAEMONS[daemon_id].post_webhooks()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and known id fields."""

    FIELDS = (
        "account_id",
        "message_id",
        "occurrence_id",
        "decision",
        "reason",
        "worker",
        "planned",
        "decisions",
        "errors",
        "channel",
        "error",
        "phase",
        "where",
        "subscription",
    )

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not the stream it was
    when the handler was made: a command run in process (tests, an embedding program)
    that swaps stderr and closes its copy leaves no handler writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it
        pass


def setup_logging(level: int = logging.INFO) -> None:
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # a run skipped because the previous one is still going is by design (coalesce)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class Daemon:
    """Holds the current ``Runner`` (replaced on reload) and runs the scheduler."""

    def __init__(
        self,
        build: Callable[[threading.Event], Runner],
        clock: Clock,
        *,
        plan_every: float = 60.0,
        dispatch_every: float = 5.0,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ):
        self.build = build
        self.clock = clock
        self.plan_every = plan_every
        self.dispatch_every = dispatch_every
        self.stop_event = threading.Event()
        runner = build(self.stop_event)  # a bad config at start is the caller's error
        self.metrics_at = (metrics_host, metrics_port)
        self.metrics = (
            None if metrics_port is None else DaemonMetrics(runner.db, clock, runner.worker)
        )
        self.runner = self._observed(runner)
        self.id = uuid.uuid4().hex
        self.version = installed_version()
        self.started_at = clock.now()
        self._lock = threading.Lock()
        self.scheduler: BlockingScheduler | None = None

    # --- the jobs --------------------------------------------------------------------------

    def plan(self) -> None:
        with self._lock:
            runner = self.runner
        try:
            began = time.perf_counter()
            planned = runner.plan(self.clock.now())
            log.info("planned", extra={"planned": planned, "worker": runner.worker})
            took = time.perf_counter() - began
            self._beat(runner, None if planned is None else (planned, took))
            if self.metrics is not None and planned is not None:
                self.metrics.planned_round(planned, took, time.time())
        except Exception:  # noqa: BLE001 - the next run tries again; the daemon stays up
            log.exception("planning failed")

    def dispatch(self) -> None:
        with self._lock:
            runner = self.runner
        try:
            result = runner.dispatch(self.clock.now(), keep_records=self.metrics is not None)
            if self.metrics is not None:
                self.metrics.dispatched(result.records, time.time())
            if result.decisions:
                log.info(
                    "dispatched",
                    extra={"decisions": dict(result.decisions), "worker": runner.worker},
                )
            self._beat(runner)
        except Exception:  # noqa: BLE001
            log.exception("dispatch failed")

    def post_webhooks(self) -> None:
        with self._lock:
            runner = self.runner
        if runner.webhooks is None:
            return
        try:
            counts = runner.webhooks.run(self.clock.now())
            if any(counts.values()):
                log.info("webhooks", extra={"decisions": counts, "worker": runner.worker})
        except Exception:  # noqa: BLE001 - the next run tries again
            log.exception("webhooks failed")

    def serve_metrics(self) -> None:
        """Start serving ``/metrics`` when ``metrics_port`` was given; ``OSError`` when
        the address cannot be listened on (the caller says so and stops)."""
        host, port = self.metrics_at
        if self.metrics is not None and port is not None:
            self.metrics.serve(port, host)
            log.info("metrics served", extra={"where": f"http://{host}:{port}/metrics"})

    def _observed(self, runner: Runner) -> Runner:
        """The runner, its sends timed for the metrics (when served)."""
        if self.metrics is not None:
            runner.sender.on_deliver = self.metrics.delivered
        return runner

    def _beat(self, runner: Runner, planned: tuple[int, float] | None = None) -> None:
        """This worker's heartbeat (and its planning round's figures): ``outreach status``."""
        with runner.db.begin() as conn:
            beat(
                conn,
                runner.worker,
                self.version,
                self.started_at,
                self.clock.now(),
                planned=planned,
            )

    # --- control -------------------------------------------------------------------------

    def reload(self) -> bool:
        """Build a runner on the configuration as it is now; keep the old one if invalid."""
        try:
            runner = self._observed(self.build(self.stop_event))
        except OutreachError as exc:
            errors = [str(p) for p in getattr(exc, "problems", [])] or [str(exc)]
            log.error(
                "configuration rejected; still running on the previous one",
                extra={"errors": errors},
            )
            return False
        with self._lock:
            self.runner = runner
        log.info("configuration reloaded")
        return True

    def request_stop(self, *_: object) -> None:
        log.info("stopping after the send in flight")
        self.stop_event.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def run(self) -> None:
        """Recover after a crash, then plan and dispatch until SIGTERM or SIGINT."""
        ambiguous = self.runner.recover(self.clock.now())
        if ambiguous:
            log.warning(
                "sends interrupted by a crash marked ambiguous",
                extra={"decisions": {"ambiguous": ambiguous}},
            )
        _DAEMONS[self.id] = self
        executor = ThreadPoolExecutor(1)
        scheduler = BlockingScheduler(
            executors={"default": executor},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=UTC,
        )
        self.scheduler = scheduler
        first = datetime.now(UTC)
        scheduler.add_job(
            plan_job,
            "interval",
            seconds=self.plan_every,
            args=[self.id],
            id="plan",
            next_run_time=first,
        )
        scheduler.add_job(
            dispatch_job,
            "interval",
            seconds=self.dispatch_every,
            args=[self.id],
            id="dispatch",
            next_run_time=first,
        )
        scheduler.add_job(
            webhooks_job,
            "interval",
            seconds=self.dispatch_every,
            args=[self.id],
            id="webhooks",
            next_run_time=first,
        )
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        log.info("started", extra={"worker": self.runner.worker})
        try:
            scheduler.start()  # blocks until shutdown
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            # the executor thread may still be finishing its send: wait for it
            executor.shutdown(wait=True)
            _DAEMONS.pop(self.id, None)
            log.info("stopped", extra={"worker": self.runner.worker})

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload()
        else:
            self.request_stop()
