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

import hashlib
import hmac
import html
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Connection, Row
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
from orchestrator.clock import to_utc
from orchestrator.config.models import Creditor
from orchestrator.config.settings import Settings
from orchestrator.core.bounds import FUTURE_LEEWAY, instant_problem, plan_problem, promise_problem
from orchestrator.core.links import (
    PAY,
    UNSUBSCRIBE,
    TokenData,
    creditor_pay_url,
    is_preview_agent,
    open_token,
)
from orchestrator.core.zones import local_date
from orchestrator.dispatch.runner import Runner
from orchestrator.ingest.validation import parse_account
from orchestrator.store import facts, idempotency
from orchestrator.store.accounts import account_from_row, account_timeline
from orchestrator.store.db import schema_problem
from orchestrator.store.tables import Send, table_of
from orchestrator.web.auth import bearer_token, same_secret
from orchestrator.web.inbound import handle_inbound
from orchestrator.web.linkpages import (
    PayHelp,
    not_found_page,
    pay_help_page,
    unsubscribe_too_old_page,
)
from orchestrator.web.schemas import KEY_PATTERN, AccountId, AccountIn, EventIn, PaymentIn
from orchestrator.web.server import Server
from orchestrator.web.services.statuses import status_callback as status_callback_of

log = logging.getLogger("outreach.server")

MAX_BODY = 256 * 1024
PAYMENT_WINDOW = timedelta(seconds=300)


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


KEYED = ("payment", "promise", "plan")  # events a retry must not record twice


def _link_for_a_browser(request: Request) -> bool:
    """A person's browser following a ``/p/`` or ``/u/`` link gets HTML pages; scripts and
    API clients keep JSON."""
    return (request.url.path.startswith(("/p/", "/u/"))
            and "text/html" in request.headers.get("accept", ""))


def _instant(value: datetime, now: datetime, name: str) -> datetime:
    """An instant sent to us (an event's ``at``, a ``paid_at``), in UTC, or 422 with the
    reason if it is out of range (``bounds.instant_problem``)."""
    try:
        at = to_utc(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None
    problem = instant_problem(at, now + FUTURE_LEEWAY)
    if problem is not None:
        raise HTTPException(422, f"{name}: {problem}")
    return at


def create_app(server: Server) -> FastAPI:
    app = FastAPI(title="outreach", version="1", description=__doc__)
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

    # --- payments ----------------------------------------------------------------------

    @app.post("/webhooks/payments", include_in_schema=False)
    async def payment_webhook(request: Request) -> Response:
        secret = server.settings.payment_webhook_secret
        body = await request.body()
        stamp = request.headers.get("X-Outreach-Timestamp", "")
        given = request.headers.get("X-Outreach-Signature", "")
        if not secret:
            raise server.reject("payments", "not_configured", 401, "payment webhook disabled")
        expected = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        if not same_secret(expected, given):
            raise server.reject("payments", "bad_signature", 401, "invalid signature")
        try:
            sent_at = datetime.fromtimestamp(int(stamp), UTC)
        except (ValueError, OverflowError, OSError):
            raise server.reject("payments", "bad_timestamp", 401, "invalid timestamp") from None
        if abs(server.clock.now() - sent_at) > PAYMENT_WINDOW:
            raise server.reject("payments", "stale", 401, "timestamp outside 300 s")
        try:
            payment = PaymentIn.model_validate_json(body)
        except ValueError as exc:
            raise server.reject("payments", "invalid", 422, f"invalid payment: {exc}") from None
        try:
            paid_at = _instant(payment.paid_at, server.clock.now(), "paid_at")
        except HTTPException as exc:
            raise server.reject("payments", "invalid", 422, str(exc.detail)) from None
        return await server.run(_webhook_payment, payment, paid_at)

    def _webhook_payment(payment: PaymentIn, paid_at: datetime) -> Response:
        now = server.clock.now()
        with server.tx() as conn:
            row = facts.account_row(conn, payment.account_id)
            if row is None:
                raise server.reject("payments", "unknown_account", 404, "unknown account")
            problem = _currency_problem(row, payment.currency)
            if problem is not None:
                raise server.reject("payments", "currency", 422, problem)
            new = _write_payment(conn, row, payment.event_id, payment.amount, paid_at,
                                 "webhook", now)
        if new:
            server.replan([payment.account_id])
            return JSONResponse({"status": "recorded"}, status_code=201)
        return JSONResponse({"status": "duplicate", "duplicate": True})  # CONTRACT §10.14

    def _currency_problem(row: Row[Any], currency: str | None) -> str | None:
        if currency is not None and currency.upper() != row.currency:
            return f"currency {currency} does not match the account's"
        return None

    def _write_payment(conn: Connection, row: Row[Any], payment_id: str, amount: Decimal,
                       paid_at: datetime, source: str, now: datetime) -> bool:
        """Record a payment checked already; ``False``: its id was recorded before."""
        return facts.record_payment(conn, account_id=row.account_id, payment_id=payment_id,
                                    amount=amount, currency=row.currency,
                                    paid_at=min(paid_at, now), source=source, now=now)

    # --- REST API ----------------------------------------------------------------------

    def bearer(authorization: Annotated[str | None, Header()] = None) -> str:
        token = bearer_token(authorization)
        if not token or not any(same_secret(token, t) for t in server.settings.api_tokens):
            raise server.reject("api", "bad_token", 401, "invalid or missing bearer token")
        return token

    api = [Depends(bearer)]

    @app.put("/api/v1/accounts/{account_id}", dependencies=api, status_code=200)
    def put_account(account_id: AccountId, body: AccountIn) -> dict[str, Any]:
        raw = {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
               for k, v in body.model_dump().items()}
        raw = {k: v for k, v in raw.items() if v != ""}
        account, problems = parse_account({"account_id": account_id, **raw}, source="api",
                                          line=None)
        if account is None:
            raise HTTPException(422, [{"field": p.field, "message": p.message}
                                      for p in problems])
        if account.creditor and server.config.creditor(account.creditor) is None:
            raise HTTPException(422, [{"field": "creditor",
                                       "message": f"unknown creditor {account.creditor!r}"}])
        from orchestrator.ingest.importer import upsert_account

        with server.tx() as conn:
            outcome = upsert_account(conn, server.cipher, account, now=server.clock.now(),
                                     actor="api")
        return {"account_id": account_id, "result": outcome}

    def _today(conn: Any, account_id: str) -> date:
        """Today in the debtor's primary zone: the day their DPD counts on."""
        now = server.clock.now()
        row = facts.account_row(conn, account_id)
        if row is None:
            return now.date()
        return local_date(account_from_row(row, server.cipher),
                          server.config.policy.timezone, now)

    @app.get("/api/v1/accounts/{account_id}", dependencies=api)
    def get_account(account_id: AccountId) -> Any:
        with server.db.connect() as conn:
            found = account_timeline(conn, server.cipher, account_id,
                                     today=_today(conn, account_id))
        if found is None:
            raise HTTPException(404, "unknown account")
        return JSONResponse(jsonable_encoder(_without_personal(found)))

    @app.get("/api/v1/accounts/{account_id}/timeline", dependencies=api)
    def get_timeline(account_id: AccountId) -> Any:
        with server.db.connect() as conn:
            found = account_timeline(conn, server.cipher, account_id,
                                     today=_today(conn, account_id))
        if found is None:
            raise HTTPException(404, "unknown account")
        return JSONResponse(jsonable_encoder({"account_id": account_id,
                                              "decisions": found.get("decisions", []),
                                              "events": found.get("events", [])}))

    @app.post("/api/v1/accounts/{account_id}/events", dependencies=api, status_code=201)
    def post_event(
        account_id: AccountId, event: EventIn,
        idempotency_key: Annotated[str | None, Header(
            min_length=1, max_length=200, pattern=KEY_PATTERN,
            description="unique to this request (a UUID). A repeat with the same key gets "
                        "the first answer again (status and body) and records nothing; the "
                        "same key with another request is refused (422). Required for a "
                        "payment (or its payment_id), a promise and a plan.")] = None,
    ) -> Any:
        """Record what was agreed with the debtor. Every check (the key, the instant, the
        account, the policy's promise and plan bounds) comes before the transaction
        writes: a refusal leaves nothing behind, and nothing after the commit can turn
        the answer into an error."""
        now = server.clock.now()
        key = _request_key(event, idempotency_key)
        at = _event_at(event, now)
        fingerprint = idempotency.fingerprint(account_id, event)
        try:
            status, answer, new = _record_once(account_id, event, key, fingerprint, at, now)
        except sa.exc.IntegrityError:  # the same key, committed by a request racing this one
            first = _first_answer(key)
            if first is None:
                raise
            (status, answer), new = _repeat(first, fingerprint), False
        if new:
            server.replan([account_id])
        return JSONResponse(answer, status_code=status)

    def _request_key(event: EventIn, header: str | None) -> str | None:
        """The request's idempotency key: its header, else a payment's own id. A payment,
        promise or plan must have one: a retry must not record it twice."""
        if header is not None:
            return header
        if event.type == "payment" and event.payment_id:
            return f"payment_id:{event.payment_id}"
        if event.type in KEYED:
            either = " or a payment_id" if event.type == "payment" else ""
            raise HTTPException(422, f"a {event.type} needs an Idempotency-Key header{either}, "
                                     f"so that a retry cannot record it twice")
        return None

    def _event_at(event: EventIn, now: datetime) -> datetime:
        """When the event happened: ``at`` (not later than now), else now."""
        if event.at is None:
            return now
        return min(_instant(event.at, now, "at"), now)

    def _record_once(account_id: str, event: EventIn, key: str | None, fingerprint: str,
                     at: datetime, now: datetime) -> tuple[int, dict[str, Any], bool]:
        """The answer, and whether this request wrote: the first answer again for a key
        recorded before; else the event checked and written, with its answer under its
        key, in one transaction."""
        with server.tx() as conn:
            first = idempotency.first_answer(conn, key) if key is not None else None
            if first is not None:
                return (*_repeat(first, fingerprint), False)
            row = facts.account_row(conn, account_id)
            if row is None:
                raise HTTPException(404, "unknown account")
            problem = _event_problem(row, event, at)
            if problem is not None:
                raise HTTPException(422, problem)
            status, answer = _write_event(conn, row, event, key, at, now)
            if key is not None:
                idempotency.remember(conn, key=key, account_id=account_id,
                                     fingerprint=fingerprint, answer=(status, answer), now=now)
        return status, answer, status == 201

    def _first_answer(key: str | None) -> idempotency.Answer | None:
        if key is None:
            return None
        with server.db.connect() as conn:
            return idempotency.first_answer(conn, key)

    def _repeat(first: idempotency.Answer, fingerprint: str) -> tuple[int, dict[str, Any]]:
        """A repeat's answer: the first one, if it is the same request (as Stripe does)."""
        if first.fingerprint != fingerprint:
            raise HTTPException(422, "this Idempotency-Key (or payment_id) came before with "
                                     "another request: a new request needs a new key")
        return first.status, first.body

    def _event_problem(row: Row[Any], event: EventIn, at: datetime) -> str | None:
        """Why this event cannot be recorded on this account, if it cannot."""
        if event.type == "payment":
            if event.amount is None:
                return "a payment needs an amount"
            return _currency_problem(row, event.currency)
        if event.type == "promise":
            if event.amount is None or event.due is None:
                return "a promise needs an amount and a due date"
            rules = server.rules(row)
            return promise_problem(rules.promise_bounds, amount=event.amount, due=event.due,
                                   made_on=at.astimezone(rules.zones.primary).date(),
                                   balance=row.balance)
        if event.type == "plan":
            if not event.instalments:
                return "a plan needs its instalments (due, amount)"
            rules = server.rules(row)
            return plan_problem(rules.plan_bounds,
                                instalments=[(i.due, i.amount) for i in event.instalments],
                                made_on=at.astimezone(rules.zones.primary).date(),
                                balance=row.balance)
        if event.type == "opt_out" and event.channel is None:
            return "an opt-out needs a channel"
        return None

    def _write_event(conn: Connection, row: Row[Any], event: EventIn, key: str | None,
                     at: datetime, now: datetime) -> tuple[int, dict[str, Any]]:
        """Record a checked event: the answer's status and body."""
        account_id = row.account_id
        answer = {"account_id": account_id, "type": event.type, "at": at.isoformat()}
        if event.type == "payment":
            assert event.amount is not None and key is not None
            payment_id = event.payment_id or f"api:{key}"  # a retry: the same payment
            answer["payment_id"] = payment_id
            if not _write_payment(conn, row, payment_id, event.amount, at, "api", now):
                return 200, {**answer, "status": "duplicate"}
            return 201, {**answer, "status": "recorded"}
        if event.type == "promise":
            assert event.amount is not None and event.due is not None
            facts.record_promise(conn, account_id=account_id, amount=event.amount,
                                 due=event.due, made_at=at)
        elif event.type == "plan":
            assert event.instalments
            facts.record_plan(conn, account_id=account_id, created_at=at,
                              instalments=[(i.due, i.amount) for i in event.instalments])
        elif event.type == "opt_out":
            assert event.channel is not None
            facts.opt_out_account(conn, row, event.channel, source="api", at=at)
        else:
            facts.record_event(conn, account_id=account_id, type_=event.type, at=at,
                               channel=event.channel)
        return 201, answer

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


def _without_personal(found: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in found.items() if k not in ("name", "phone", "email", "address")}


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
