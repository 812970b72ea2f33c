"""Twilio's webhooks: status callbacks, inbound texts, and the TwiML of a placed call.

Every request must carry a valid ``X-Twilio-Signature`` for ``OUTREACH_PUBLIC_URL`` +
path (``channels.twilio.webhooks``), else 403 and nothing is written. Status callbacks
are written in group commits (``Server.commits``); the rest runs on the server's
database threads, off the event loop. The OpenAPI document lists them (under the
``twilioSignature`` scheme) for whoever sets up the Twilio numbers; Twilio is their only
caller.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from channels.twilio.webhooks import (
    FORM_TYPE,
    UnknownStatus,
    answered_call,
    form_fields,
    inbound_text,
    pressed,
    reply_twiml,
    signed_url,
    status_event,
)
from orchestrator.web.apidocs import security
from orchestrator.web.inbound import handle_inbound
from orchestrator.web.server import Server, ServerDep
from orchestrator.web.services.statuses import status_callback

router = APIRouter(tags=["Twilio webhooks"])

# What the OpenAPI document says of every route here: a signed form post from Twilio.
SIGNED_FORM: dict[str, Any] = {
    **security("twilioSignature"),
    "requestBody": {
        "required": True,
        "content": {
            FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "description": "Twilio's parameters (MessageSid, CallSid, ...)",
                    "additionalProperties": {"type": "string"},
                }
            }
        },
    },
}
REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"description": "no valid X-Twilio-Signature: nothing written"}
}


async def signed_form(server: Server, request: Request, route: str) -> dict[str, str]:
    """The callback's form fields, if its signature is Twilio's for our public URL."""
    if request.headers.get("content-type", "").startswith(FORM_TYPE):
        form = form_fields(await request.body())
    else:
        form = {k: str(v) for k, v in (await request.form()).items()}
    url = signed_url(server.settings.public_url, request.url.path, request.url.query)
    if not server.signatures.valid(url, form, request.headers.get("X-Twilio-Signature", "")):
        raise server.reject(route, "bad_signature", 403, "invalid Twilio signature")
    return form


async def _status(server: Server, request: Request, kind: str) -> Response:
    """A status callback of a text or a call: the send moves forward, never back; an
    answered call re-plans its account at once (a conversation pauses calls)."""
    route = f"twilio_{kind}_status"
    form = await signed_form(server, request, route)
    try:
        event = status_event(kind, form)
    except UnknownStatus as exc:
        raise server.reject(route, "bad_status", 400, str(exc)) from None
    callback = status_callback(
        kind, event, request.query_params.get("message_id"), server.clock.now()
    )
    result = await server.commits.submit(callback, key=event.provider_id)
    if result.outcome == "unknown":
        raise server.reject(route, "unknown_send", 404, "no such send")
    if result.account_id and kind == "voice":
        await server.run(server.replan, [result.account_id])
    return JSONResponse({"status": result.outcome, "send_status": result.status})


@router.post(
    "/webhooks/twilio/sms/status",
    summary="An SMS's delivery status",
    description="Twilio's status callback of a text: the send moves forward (delivered, undelivered, ...), never back.",
    openapi_extra=SIGNED_FORM,
    responses=REFUSED,
)
async def sms_status(request: Request, server: ServerDep) -> Response:
    return await _status(server, request, "sms")


@router.post(
    "/webhooks/twilio/voice/status",
    summary="A call's progress",
    description="Twilio's status callback of a call; an answered call re-plans its account (a conversation pauses calls).",
    openapi_extra=SIGNED_FORM,
    responses=REFUSED,
)
async def voice_status(request: Request, server: ServerDep) -> Response:
    return await _status(server, request, "voice")


@router.post(
    "/webhooks/twilio/voice/twiml/{message_id}",
    summary="What to say on an answered call",
    description="Answers TwiML (application/xml): the call's script, with a key to press for the payment link.",
    openapi_extra=SIGNED_FORM,
    responses=REFUSED,
)
async def voice_twiml(request: Request, message_id: str, server: ServerDep) -> Response:
    form = await signed_form(server, request, "twilio_voice_twiml")
    return await server.run(
        _voice, server, "twilio_voice_twiml", server.calls.answer, message_id, answered_call(form)
    )


@router.post(
    "/webhooks/twilio/voice/gather/{message_id}",
    summary="The key pressed on a call",
    description="Answers TwiML; pressing 1 texts the person their payment link.",
    openapi_extra=SIGNED_FORM,
    responses=REFUSED,
)
async def voice_gather(request: Request, message_id: str, server: ServerDep) -> Response:
    form = await signed_form(server, request, "twilio_voice_gather")
    return await server.run(
        _voice, server, "twilio_voice_gather", server.calls.press, message_id, pressed(form)
    )


def _voice(
    server: Server,
    route: str,
    answer: Callable[[str, Any, datetime], str | None],
    message_id: str,
    given: Any,
) -> Response:
    twiml = answer(message_id, given, server.clock.now())
    if twiml is None:
        raise server.reject(route, "unknown_send", 404, "no such call")
    return Response(twiml, media_type="application/xml")


@router.post(
    "/webhooks/twilio/sms/inbound",
    summary="A text from a debtor",
    description="STOP, START, HELP and the rest; answers TwiML with the replies to send.",
    openapi_extra=SIGNED_FORM,
    responses=REFUSED,
)
async def sms_inbound(request: Request, server: ServerDep) -> Response:
    form = await signed_form(server, request, "twilio_sms_inbound")
    text = inbound_text(form)
    if text is None:
        raise server.reject("twilio_sms_inbound", "no_message_sid", 400, "MessageSid is missing")
    return await server.run(_inbound, server, text.sid, text.phone, text.body)


def _inbound(server: Server, sid: str, phone: str, body: str) -> Response:
    """An inbound text acted on (``web.inbound``), answered with the replies to send."""
    with server.tx() as conn:
        replies = handle_inbound(
            conn,
            server.runner.decider,
            server.cipher,
            phone,
            body,
            server.clock.now(),
            message_sid=sid,
        )
    return Response(reply_twiml(replies), media_type="application/xml")
