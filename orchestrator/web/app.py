"""``outreach serve`` (CONTRACT §8): webhooks, tracked links and the REST API, on FastAPI.

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

import html
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Connection
from twilio.twiml.messaging_response import MessagingResponse

from channels.base import DeliveryStatus
from channels.twilio.webhooks import (
    FORM_TYPE,
    UnknownStatus,
    answered_call,
    form_fields,
    inbound_text,
    pressed,
    signed_url,
    status_event,
)
from orchestrator.config.models import Creditor
from orchestrator.config.settings import Settings
from orchestrator.core.links import (
    PAY,
    UNSUBSCRIBE,
    TokenData,
    creditor_pay_url,
    is_preview_agent,
    open_token,
)
from orchestrator.dispatch.runner import Runner
from orchestrator.store import facts
from orchestrator.store.accounts import account_from_row
from orchestrator.store.db import schema_problem
from orchestrator.store.tables import Send, table_of
from orchestrator.web.inbound import handle_inbound
from orchestrator.web.linkpages import (
    PayHelp,
    not_found_page,
    pay_help_page,
    unsubscribe_too_old_page,
)
from orchestrator.web.routes import api, payments
from orchestrator.web.server import Server
from orchestrator.web.services.statuses import status_callback as status_callback_of

log = logging.getLogger("outreach.server")

MAX_BODY = 256 * 1024


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before any handler."""

    def __init__(self, app: Any, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
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
    return (request.url.path.startswith(("/p/", "/u/"))
            and "text/html" in request.headers.get("accept", ""))


def create_app(server: Server) -> FastAPI:
    app = FastAPI(title="outreach", version="1", description=__doc__)
    app.state.server = server  # what the routers' ``ServerDep`` reads
    app.add_middleware(BodyLimit)

    @app.exception_handler(HTTPException)
    async def _json_errors(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and _link_for_a_browser(request):
            return HTMLResponse(not_found_page(), status_code=404)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, without echoing the input: it may be personal data, megabytes, or
        text that cannot even be encoded (a lone surrogate made the default a 500)."""
        return JSONResponse({"detail": [
            {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": str(e.get("msg"))}
            for e in exc.errors()]}, status_code=422)

    # --- Twilio ------------------------------------------------------------------------

    async def twilio_form(request: Request, route: str) -> dict[str, str]:
        """The callback's form fields, if its signature is Twilio's for our public URL."""
        if request.headers.get("content-type", "").startswith(FORM_TYPE):
            form = form_fields(await request.body())
        else:
            form = {k: str(v) for k, v in (await request.form()).items()}
        url = signed_url(server.settings.public_url, request.url.path, request.url.query)
        if not server.signatures.valid(url, form, request.headers.get("X-Twilio-Signature", "")):
            raise server.reject(route, "bad_signature", 403, "invalid Twilio signature")
        return form

    async def status_callback(request: Request, kind: str) -> Response:
        route = f"twilio_{kind}_status"
        form = await twilio_form(request, route)
        try:
            event = status_event(kind, form)
        except UnknownStatus as exc:
            raise server.reject(route, "bad_status", 400, str(exc)) from None
        callback = status_callback_of(kind, event, request.query_params.get("message_id"),
                                      server.clock.now())
        result = await server.commits.submit(callback, key=event.provider_id)
        if result.outcome == "unknown":
            raise server.reject(route, "unknown_send", 404, "no such send")
        if result.account_id and kind == "voice":
            await server.run(server.replan, [result.account_id])
        return JSONResponse({"status": result.outcome, "send_status": result.status})

    @app.post("/webhooks/twilio/sms/status", include_in_schema=False)
    async def sms_status(request: Request) -> Response:
        return await status_callback(request, "sms")

    @app.post("/webhooks/twilio/voice/status", include_in_schema=False)
    async def voice_status(request: Request) -> Response:
        return await status_callback(request, "voice")

    @app.post("/webhooks/twilio/voice/twiml/{message_id}", include_in_schema=False)
    async def voice_twiml(request: Request, message_id: str) -> Response:
        form = await twilio_form(request, "twilio_voice_twiml")
        return await server.run(_voice, "twilio_voice_twiml", server.calls.answer,
                                message_id, answered_call(form))

    @app.post("/webhooks/twilio/voice/gather/{message_id}", include_in_schema=False)
    async def voice_gather(request: Request, message_id: str) -> Response:
        form = await twilio_form(request, "twilio_voice_gather")
        return await server.run(_voice, "twilio_voice_gather", server.calls.press,
                                message_id, pressed(form))

    def _voice(route: str, answer: Callable[[str, Any, datetime], str | None],
               message_id: str, given: Any) -> Response:
        twiml = answer(message_id, given, server.clock.now())
        if twiml is None:
            raise server.reject(route, "unknown_send", 404, "no such call")
        return Response(twiml, media_type="application/xml")

    @app.post("/webhooks/twilio/sms/inbound", include_in_schema=False)
    async def sms_inbound(request: Request) -> Response:
        form = await twilio_form(request, "twilio_sms_inbound")
        text = inbound_text(form)
        if text is None:
            raise server.reject("twilio_sms_inbound", "no_message_sid", 400,
                                "MessageSid is missing")
        return await server.run(_inbound, text.sid, text.phone, text.body)

    def _inbound(sid: str, phone: str, body: str) -> Response:
        reply = MessagingResponse()
        with server.tx() as conn:
            for text in handle_inbound(conn, server.runner.decider, server.cipher, phone, body,
                                       server.clock.now(), message_sid=sid):
                reply.message(text)
        return Response(str(reply), media_type="application/xml")

    # --- links -------------------------------------------------------------------------

    def _link(token: str, kind: str) -> tuple[TokenData, Any]:
        """A link we signed, expired or not, and its send; a forged or unknown one is a
        404 that records nothing."""
        data = open_token(server.settings.secret_key or "", token)
        if data is None or data.kind != kind:
            raise server.reject(f"link_{kind}", "bad_token", 404, "not found")
        with server.db.connect() as conn:
            send = conn.execute(sa.select(table_of(Send)).where(
                table_of(Send).c.message_id == data.message_id)).first()
        if send is None:
            raise server.reject(f"link_{kind}", "unknown_send", 404, "not found")
        return data, send

    def _account_of(conn: Connection, send: Any) -> tuple[Any, Creditor | None]:
        row = facts.account_row(conn, send.account_id)
        assert row is not None  # a send's account is never deleted (foreign key)
        account = account_from_row(row, server.cipher)
        return account, server.config.creditor(account.creditor)

    @app.api_route("/p/{token}", methods=["GET", "HEAD"], include_in_schema=False)
    def pay_redirect(token: str, request: Request) -> Response:
        """To the creditor's pay page. Only a person's GET of a live link is a click: a
        HEAD or a link previewer is answered the same without recording; an expired link
        still leads to the pay page (or where to pay and whom to call)."""
        data, send = _link(token, PAY)
        now = server.clock.now()
        counts = (request.method == "GET" and not data.expired(now)
                  and not is_preview_agent(request.headers.get("user-agent")))
        with server.tx() if counts else server.db.connect() as conn:
            account, creditor = _account_of(conn, send)
            if counts:
                _record_click(conn, send, now)
        target = creditor_pay_url(creditor, account) if creditor else None
        if target:
            return RedirectResponse(target, status_code=302)
        reference = account.reference or account.account_id
        return HTMLResponse(pay_help_page(account.locale, PayHelp(
            creditor, reference, expired=data.expired(now))))

    def _record_click(conn: Connection, send: Any, now: datetime) -> None:
        """Every click is an event; the first of a message is also its ``clicked``
        delivery status, the one the report's click rate counts."""
        first = facts.record_delivery(conn, provider_id=None, message_id=send.message_id,
                                      status=DeliveryStatus.clicked,
                                      event_key=f"click:{send.message_id}", at=now)
        facts.record_event(conn, account_id=send.account_id, type_="click", at=now,
                           channel=send.channel,
                           detail={"message_id": send.message_id,
                                   "first": first.outcome == "recorded"})

    def _unsubscribe_link(token: str) -> tuple[Any, Response | None]:
        """The send of an unsubscribe link, and the page to answer instead when the link
        is past ``UNSUBSCRIBE_GRACE`` (410: nothing is recorded)."""
        data, send = _link(token, UNSUBSCRIBE)
        if data.honoured(server.clock.now()):
            return send, None
        with server.db.connect() as conn:
            account, creditor = _account_of(conn, send)
        return send, HTMLResponse(unsubscribe_too_old_page(account.locale, creditor), 410)

    @app.api_route("/u/{token}", methods=["GET", "HEAD"], include_in_schema=False)
    def unsubscribe_page(token: str) -> Response:
        _, too_old = _unsubscribe_link(token)
        if too_old is not None:
            return too_old
        safe = html.escape(token, quote=True)
        return HTMLResponse(
            "<!doctype html><html lang=en><meta charset=utf-8><title>Unsubscribe</title>"
            "<h1>Stop these emails?</h1>"
            f"<form method=post action='/u/{safe}'><button type=submit>Unsubscribe</button></form>"
        )

    @app.post("/u/{token}", include_in_schema=False)
    def unsubscribe(token: str) -> Response:
        send, too_old = _unsubscribe_link(token)
        if too_old is not None:
            return too_old
        now = server.clock.now()
        with server.tx() as conn:
            row = facts.account_row(conn, send.account_id)
            assert row is not None
            facts.opt_out(conn, debtor_id=row.debtor_id, account_id=None, channel="email",
                          contact_index=row.email_index, source="unsubscribe", at=now)
        return HTMLResponse("<!doctype html><title>Unsubscribed</title>"
                            "<p>You will receive no more emails from us.</p>")

    app.include_router(payments.router)
    app.include_router(api.router)

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness with the database: the process answers, the database answers, and
        its schema is the one this release needs (else 503 and why)."""
        return _health()

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: send traffic here only on 200. The same checks as
        ``/healthz``: every request needs the database and its schema."""
        return _health()

    def _health() -> Response:
        try:
            with server.db.connect() as conn:
                conn.execute(sa.text("select 1"))
                schema = schema_problem(conn)
            problem = None if schema is None else f"the database {schema}"
        except sa.exc.SQLAlchemyError as exc:  # the class only: messages may hold hosts
            problem = f"database unreachable ({type(exc).__name__})"
        if problem is not None:
            log.warning("unhealthy", extra={"reason": problem})
            return JSONResponse({"status": "unavailable", "reason": problem}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return PlainTextResponse(generate_latest(server.registry).decode(),
                                 media_type=CONTENT_TYPE_LATEST)

    return app


def build_server(settings: Settings | None = None) -> Server:
    """A ``Server`` from the environment (CONTRACT §3) and the configuration directory."""
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
    engine = db.make_engine(settings.database_url, pool_size=20, max_overflow=20) \
        if settings.database_url.startswith("postgresql") else db.make_engine(settings.database_url)
    clock = SystemClock()
    # The server sends one thing itself: the payment-link text a person asks for on a call.
    sms = config.channels.get(PAY_LINK_CHANNEL)
    adapters = ({PAY_LINK_CHANNEL: create_adapter(PAY_LINK_CHANNEL, sms, base_dir=Path.cwd(),
                                                  clock=clock)} if sms is not None else {})
    runner = Runner(engine, config, TemplateRenderer(settings.templates_dir), adapters, cipher,
                    public_url=settings.public_url, secret=secret, worker="server")
    return Server(db=engine, config=config, cipher=cipher, settings=settings, clock=clock,
                  runner=runner, twilio_token=settings.twilio_auth_token)


def app_from_env() -> FastAPI:
    """The app factory each ``outreach serve --workers N`` process calls."""
    from orchestrator.dispatch.daemon import setup_logging

    setup_logging()
    return create_app(build_server())
