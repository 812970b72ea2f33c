"""The server's own request metrics: how many requests each route answered, with what
status, and how long they took, in the server's ``/metrics``.

Routes are labelled by their template (``/api/v1/accounts/{account_id}``), never the
raw path: a path holds account ids and link tokens, and a scanner's made-up paths would
grow the series without bound. A request no route answered (an unknown path, a body
refused before routing, the docs' static files) is ``other``; a method outside HTTP's
usual few is ``OTHER``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["RequestMetrics", "RequestTiming"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """``outreach_http_requests_total`` and ``outreach_http_request_seconds``."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "outreach_http_requests",
            "Requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "outreach_http_request_seconds",
            "Time to answer a request, by method and route template",
            ["method", "route"],
            buckets=BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.seconds.labels(method, route).observe(seconds)


class RequestTiming:
    """ASGI middleware: each HTTP request counted and timed in ``metrics()`` (read per
    request, so an app built without a server still answers)."""

    def __init__(self, app: Any, metrics: Callable[[], RequestMetrics | None]):
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        metrics = self.metrics() if scope["type"] == "http" else None
        if metrics is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            metrics.observe(scope["method"], route, status, time.perf_counter() - start)
