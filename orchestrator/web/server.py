"""The ``Server``: what every request needs, built once per process.

It holds the database, the configuration, the cipher, the settings, the clock and the
runner, and the disciplines every route keeps: a write runs in ``tx()`` (one at a time
on SQLite), off the event loop (``run``); a refused request is counted and logged
(``reject``) and writes nothing; after a commit the accounts it touched are planned
again (``replan``), which never turns a success into an error. Routes get it through
``ServerDep``: ``create_app`` puts it on the app's state.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.engine import Connection, Engine, Row

from channels.twilio.webhooks import SignatureCheck
from orchestrator.clock import Clock
from orchestrator.config.models import Config
from orchestrator.config.settings import Settings
from orchestrator.core.crypto import DataCipher
from orchestrator.core.rules import AccountRules
from orchestrator.dispatch.runner import Runner
from orchestrator.store import facts
from orchestrator.store.accounts import account_from_row
from orchestrator.store.groupcommit import GroupCommit
from orchestrator.store.metrics import DbCollector
from orchestrator.web.requests import RequestMetrics
from orchestrator.web.services.statuses import StatusCallback, record_statuses
from orchestrator.web.voice import VoiceCalls

T = TypeVar("T")

__all__ = ["Server", "ServerDep", "current_server"]

log = logging.getLogger("outreach.server")


class Server:
    """Everything a request needs, built once per process."""

    def __init__(
        self,
        *,
        db: Engine,
        config: Config,
        cipher: DataCipher,
        settings: Settings,
        clock: Clock,
        runner: Runner,
        twilio_token: str | None = None,
        conversation_seconds: int = 30,
    ):
        self.db = db
        self.config = config
        self.cipher = cipher
        self.settings = settings
        self.api_tokens = settings.named_api_tokens()  # a bad entry stops the start
        self.clock = clock
        self.runner = runner
        self.signatures = SignatureCheck(twilio_token)
        self.conversation_seconds = conversation_seconds
        self._write_lock = threading.Lock() if db.dialect.name == "sqlite" else None
        # Webhook writes run here, off the event loop: one thread for SQLite (one writer
        # anyway), a few for PostgreSQL. Fewer threads than requests keeps latency flat.
        self.executor = ThreadPoolExecutor(
            1 if self._write_lock else 8, thread_name_prefix="outreach-db"
        )
        self.registry = CollectorRegistry()
        self.rejections = Counter(
            "outreach_webhook_rejections",
            "Requests refused, by reason",
            ["route", "reason"],
            registry=self.registry,
        )
        self.registry.register(DbCollector(db, clock))
        self.http = RequestMetrics(self.registry)  # per route: ``requests.RequestTiming``
        # Status callbacks come in bursts: their writes share transactions (groupcommit).
        self.commits = GroupCommit(
            self.tx, self.record_statuses, writers=1 if self._write_lock else 2
        )
        self.calls = VoiceCalls(
            tx=self.tx, config=config, cipher=cipher, runner=runner, public_url=settings.public_url
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(fn, *args))

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction. SQLite has one writer: serialise them here rather than let
        threads collide and back off inside SQLite's busy handler."""
        if self._write_lock is None:
            with self.db.begin() as conn:
                yield conn
            return
        with self._write_lock, self.db.begin() as conn:
            yield conn

    def reject(self, route: str, reason: str, status: int, message: str) -> HTTPException:
        self.rejections.labels(route, reason).inc()
        log.warning("rejected", extra={"reason": reason})
        return HTTPException(status, message)

    def record_statuses(
        self, conn: Connection, callbacks: list[StatusCallback]
    ) -> list[facts.DeliveryResult]:
        """A group commit's batch of status callbacks (``services.statuses``)."""
        return record_statuses(conn, callbacks, conversation_seconds=self.conversation_seconds)

    def replan(self, account_ids: list[str]) -> None:
        """Plan these accounts now that their new facts are committed. Never raises: the
        request has succeeded, and must not answer 500 after its commit; the planner's
        next round plans them anyway (the write marked them due)."""
        try:
            self.runner.plan_accounts(account_ids, self.clock.now())
        except Exception as exc:  # noqa: BLE001 - see above
            log.warning(
                "planning after a request failed; the next round plans it",
                extra={"account_id": ",".join(account_ids), "error": type(exc).__name__},
            )

    def rules(self, row: Row[Any]) -> AccountRules:
        """The rules of an account row: its zones, its promise and plan bounds."""
        return self.runner.decider.rules(account_from_row(row, self.cipher))


async def current_server(request: Request) -> Server:
    """The ``Server`` of the app answering ``request`` (``create_app`` sets it). Async,
    so that FastAPI calls it on the event loop rather than in a worker thread."""
    server: Server = request.app.state.server
    return server


ServerDep = Annotated[Server, Depends(current_server)]
