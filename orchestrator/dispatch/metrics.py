"""The daemon's own Prometheus metrics (``outreach run --metrics-port``): what it decided
and planned, how long providers take and how often they fail, and the database's view
of sends and due occurrences. Names and labels: docs/operations.md; the alert rules and
the dashboard in ``deploy/`` use only these and the server's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from sqlalchemy.engine import Engine

from orchestrator.clock import Clock
from orchestrator.core.records import DecisionKind, DecisionRecord
from orchestrator.store.metrics import DbCollector

__all__ = ["DaemonMetrics"]

_PROVIDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DaemonMetrics:
    """One worker's metrics, in a registry of their own (served on ``--metrics-port``)."""

    def __init__(self, db: Engine, clock: Clock, worker: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.worker = worker
        self.decisions = Counter(
            "outreach_daemon_decisions",
            "Decisions the daemon recorded, by channel, decision and reason",
            ["channel", "decision", "reason"],
            registry=self.registry,
        )
        self.provider_seconds = Histogram(
            "outreach_provider_send_seconds",
            "Time an adapter took to take one message, by channel",
            ["channel"],
            buckets=_PROVIDER_BUCKETS,
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "outreach_provider_errors",
            "Messages a provider refused or may not have taken, by channel and decision",
            ["channel", "decision"],
            registry=self.registry,
        )
        self.planning_seconds = Histogram(
            "outreach_planning_seconds",
            "Duration of this worker's planning rounds",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.planned = Counter(
            "outreach_planned_occurrences",
            "Occurrences this worker's planning rounds inserted",
            registry=self.registry,
        )
        self.last_planning = Gauge(
            "outreach_last_planning_timestamp_seconds",
            "When this worker's last planning round ended (Unix time)",
            registry=self.registry,
        )
        self.last_dispatch = Gauge(
            "outreach_last_dispatch_timestamp_seconds",
            "When this worker's last dispatch job ended (Unix time)",
            registry=self.registry,
        )
        self.registry.register(DbCollector(db, clock))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` from a thread of its own."""
        start_http_server(port, addr=host, registry=self.registry)

    # --- observations ------------------------------------------------------------------

    def planned_round(self, occurrences: int, seconds: float, at: float) -> None:
        self.planning_seconds.observe(seconds)
        self.planned.inc(occurrences)
        self.last_planning.set(at)

    def dispatched(self, records: Iterable[DecisionRecord], at: float) -> None:
        for record in records:
            self.decisions.labels(
                record.channel or "-", str(record.decision), record.reason or "-"
            ).inc()
        self.last_dispatch.set(at)

    def delivered(self, channel: str, seconds: float, outcome: Any) -> None:
        """One message handed to its adapter (``Sender.on_deliver``)."""
        self.provider_seconds.labels(channel).observe(seconds)
        decision = outcome.record.decision
        if decision in (DecisionKind.failed, DecisionKind.ambiguous) or outcome.retryable:
            self.provider_errors.labels(channel, str(decision)).inc()
