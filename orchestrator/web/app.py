"""``outreach serve`` (docs/http.md): webhooks, tracked links and the REST API, on FastAPI.

Only the real sender changes anything: Twilio callbacks must carry a valid
``X-Twilio-Signature`` for ``OUTREACH_PUBLIC_URL`` + path (the twilio SDK's
``RequestValidator``), the payment webhook an HMAC of its raw body with a fresh
timestamp, links a valid signature and expiry, the API a bearer token. A rejected
request writes nothing; an accepted one writes in one transaction. Repeats are
idempotent (delivery event keys, payment ids, opt-outs).

After a fact arrives the runner re-plans that account at once, so a payment's thank-you
or a broken promise's follow-up does not wait for the next planning run.

A placed call fetches its TwiML here when answered, and pressing 1 on it texts the person
their payment link (``orchestrator.web.voice``): the one send the server makes itself,
through the ``sms`` channel's adapter, recorded as the daemon records its sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from orchestrator.config.settings import Settings
from orchestrator.dispatch.runner import Runner
from orchestrator.web.apidocs import serve_docs
from orchestrator.web.linkpages import not_found_page
from orchestrator.web.outbound import document_webhooks
from orchestrator.web.requests import RequestTiming
from orchestrator.web.routes import (
    api,
    cases,
    health,
    links,
    payments,
    placements,
    tasks,
    twilio,
)
from orchestrator.web.server import Server

__all__ = ["BodyLimit", "Server", "app_from_env", "build_server", "create_app"]

MAX_BODY = 256 * 1024

# In this order: the OpenAPI document lists their paths so.
ROUTERS = (
    twilio.router,
    links.router,
    payments.router,
    api.router,
    cases.router,
    tasks.router,
    placements.router,
    health.router,
)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before any handler."""

    def __init__(self, app: Any, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await JSONResponse({"error": "request body too large"}, 413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, limited, send)


def _link_for_a_browser(request: Request) -> bool:
    """A person's browser following a ``/p/`` or ``/u/`` link gets HTML pages; scripts and
    API clients keep JSON."""
    return request.url.path.startswith(("/p/", "/u/")) and "text/html" in request.headers.get(
        "accept", ""
    )


async def _json_errors(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404 and _link_for_a_browser(request):
        return HTMLResponse(not_found_page(), status_code=404)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, without echoing the input: it may be personal data, megabytes, or
    text that cannot even be encoded (a lone surrogate made the default a 500)."""
    return JSONResponse(
        {
            "detail": [
                {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": str(e.get("msg"))}
                for e in exc.errors()
            ]
        },
        status_code=422,
    )


def create_app(server: Server) -> FastAPI:
    """The app serving ``server``: every router, the body limit, and errors as JSON
    ``{"error": ...}`` (a browser following a bad link gets a page instead)."""
    # Swagger UI from the installed package at /docs (``apidocs``): FastAPI's own pages
    # would load scripts from a public CDN, on a server that holds debtors' data.
    app = FastAPI(title="outreach", version="1", description=__doc__, docs_url=None, redoc_url=None)
    app.state.server = server  # what the routes' ``ServerDep`` reads
    app.add_middleware(BodyLimit)
    # Outermost: a request refused for its size is counted too.
    app.add_middleware(RequestTiming, metrics=lambda: getattr(server, "http", None))
    app.exception_handler(HTTPException)(_json_errors)
    app.exception_handler(RequestValidationError)(_invalid)
    for router in ROUTERS:
        app.include_router(router)
    document_webhooks(app)  # what the daemon posts to subscribers (never served)
    serve_docs(app)
    return app


def build_server(settings: Settings | None = None) -> Server:
    """A ``Server`` from the environment (docs/cli.md) and the configuration directory."""
    from channels.registry import create_adapter
    from orchestrator.clock import SystemClock
    from orchestrator.config.loading import load_config
    from orchestrator.content.rendering import TemplateRenderer
    from orchestrator.store import db
    from orchestrator.web.voice import PAY_LINK_CHANNEL

    settings = settings or Settings.from_env()
    secret = settings.require("OUTREACH_SECRET_KEY")
    cipher = settings.cipher()
    config = load_config(settings.config_dir, settings.templates_dir, deployment=True)
    engine = (
        db.make_engine(settings.database_url, pool_size=20, max_overflow=20)
        if settings.database_url.startswith("postgresql")
        else db.make_engine(settings.database_url)
    )
    clock = SystemClock()
    # The server sends one thing itself: the payment-link text a person asks for on a call.
    sms = config.channels.get(PAY_LINK_CHANNEL)
    adapters = (
        {PAY_LINK_CHANNEL: create_adapter(PAY_LINK_CHANNEL, sms, base_dir=Path.cwd(), clock=clock)}
        if sms is not None
        else {}
    )
    runner = Runner(
        engine,
        config,
        TemplateRenderer(settings.templates_dir),
        adapters,
        cipher,
        public_url=settings.public_url,
        secret=secret,
        worker="server",
    )
    return Server(
        db=engine,
        config=config,
        cipher=cipher,
        settings=settings,
        clock=clock,
        runner=runner,
        twilio_token=settings.twilio_auth_token,
    )


def app_from_env() -> FastAPI:
    """The app factory each ``outreach serve --workers N`` process calls."""
    from orchestrator.dispatch.daemon import setup_logging

    setup_logging()
    return create_app(build_server())
