"""Outbound webhooks, the daemon's side: each pass queues the new events
(``store.webhook_events.emit``), then posts what is due (``store.webhook_outbox``), signed
per the Standard Webhooks specification (``core.webhooks``).

At least once: a delivery is claimed (leased) before it is posted and marked delivered
only on a 2xx answer, so a crash in between posts it again (same ``webhook-id``: the
receiver can drop the repeat). Any other answer, a timeout or a refused connection is
tried again after the retry policy's backoff (tenacity, as the channels' sends), and
after its attempts the delivery is dead-lettered. The signature's timestamp is the wall
clock's (``signing_clock``): receivers check it against theirs, whatever virtual time
``run --once --now`` plans at.

The daemon runs its jobs one at a time, so a pass is bounded: no post starts after
``PASS_SECONDS``, and a receiver that does not answer is waited for once a pass, its other
deliveries left for the next.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy.engine import Engine, Row

from orchestrator.clock import Clock, SystemClock
from orchestrator.config.models import Webhooks
from orchestrator.core.webhooks import decode_secret, signed_headers
from orchestrator.dispatch.sending import retry_wait
from orchestrator.errors import ConfigError, Problem
from orchestrator.store import webhook_events, webhook_outbox

__all__ = ["WebhookDispatcher", "secrets_from_env"]

log = logging.getLogger("outreach.webhooks")

PAGE = 100  # deliveries looked at in one round
MAX_ROUNDS = 50  # rounds in one pass: a backlog drains over passes, never blocks a job
PASS_SECONDS = 30.0  # no new post starts after this long: slow receivers delay no send long


def secrets_from_env(webhooks: Webhooks, env: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Each subscription's key, from its ``secret_env`` (checked at load with
    ``deployment``; here again, for callers that loaded without it)."""
    environ = os.environ if env is None else env
    keys: dict[str, bytes] = {}
    for sub in webhooks.subscriptions:
        try:
            keys[sub.id] = decode_secret(environ.get(sub.secret_env, "").strip())
        except ValueError as exc:
            message = f"webhooks: {sub.id}: {sub.secret_env}: {exc}"
            raise ConfigError([Problem("webhooks.yaml", None, None, message)]) from None
    return keys


class WebhookDispatcher:
    """Emits and posts outbound webhooks; one ``run(now)`` is one pass."""

    def __init__(
        self,
        db: Engine,
        webhooks: Webhooks,
        keys: Mapping[str, bytes],
        *,
        signing_clock: Clock | None = None,
        session: requests.Session | None = None,
    ):
        self.db = db
        self.webhooks = webhooks
        self.keys = dict(keys)
        self.urls = {sub.id: sub.url for sub in webhooks.subscriptions}
        self.signing_clock = signing_clock or SystemClock()
        self.session = session or requests.Session()
        self.lease = timedelta(seconds=webhooks.timeout * 3 + 30)

    def run(self, now: datetime) -> dict[str, int]:
        """Queue new events, then post what is due: counts of queued, delivered, failed
        (to be retried) and dead."""
        with self.db.begin() as conn:
            queued = webhook_events.emit(conn, self.webhooks.subscriptions, now)
        counts: Counter[str] = Counter(queued=queued)
        if not self.urls:
            return dict(counts)
        down: set[str] = set()  # receivers that did not answer: left for the next pass
        until = time.monotonic() + PASS_SECONDS  # real time: it bounds waiting on sockets
        for _ in range(MAX_ROUNDS):  # each round posts the head of each account
            with self.db.connect() as conn:
                heads = webhook_outbox.due_heads(conn, self.urls, now, PAGE)
            outcomes = Counter(
                self._deliver(row, now, down)
                for row in heads
                if row.subscription_id not in down and time.monotonic() < until
            )
            outcomes.pop(None, None)
            counts.update(outcomes)  # type: ignore[arg-type]
            if not (outcomes["delivered"] or outcomes["dead"]):  # no account moved on
                break
        return {k: counts[k] for k in ("queued", "delivered", "failed", "dead")}

    def _deliver(self, row: Row[Any], now: datetime, down: set[str]) -> str | None:
        """Post one delivery and record the outcome; a receiver that does not answer
        joins ``down``, so one pass waits for its timeout once, not once per account."""
        with self.db.begin() as conn:
            if not webhook_outbox.claim(conn, row.id, now, self.lease):
                return None
        status, error = self._post(row)
        if status is None:
            down.add(row.subscription_id)
        with self.db.begin() as conn:
            if status is not None and 200 <= status < 300:
                webhook_outbox.record_delivered(conn, row.id, status, now)
                return "delivered"
            attempt = row.attempts + 1
            policy = self.webhooks.retry
            retry_at = None if attempt >= policy.attempts else now + retry_wait(policy, attempt)
            webhook_outbox.record_failed(
                conn, row.id, status=status, error=error, now=now, retry_at=retry_at
            )
        log.warning(
            "webhook not delivered",
            extra={
                "account_id": row.account_id,
                "subscription": row.subscription_id,
                "error": error,
                "decision": "dead" if retry_at is None else "retry",
            },
        )
        return "dead" if retry_at is None else "failed"

    def _post(self, row: Row[Any]) -> tuple[int | None, str]:
        """The receiver's status (None: no answer) and what went wrong, if anything."""
        body = row.body.encode("utf-8")
        headers = signed_headers(
            self.keys[row.subscription_id], row.webhook_id, self.signing_clock.now(), body
        )
        try:
            response = self.session.post(
                self.urls[row.subscription_id],
                data=body,
                headers=headers,
                timeout=self.webhooks.timeout,
                allow_redirects=False,
                stream=True,  # the status is all we read: never a receiver's large body
            )
        except requests.Timeout:
            return None, f"no answer within {self.webhooks.timeout:g}s"
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: cannot reach the receiver"
        response.close()
        return response.status_code, f"HTTP {response.status_code}"
