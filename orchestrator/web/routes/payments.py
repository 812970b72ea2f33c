"""The payment provider's webhook, ``POST /webhooks/payments``.

Authenticated by an HMAC of its raw body (``services.payments``): a refusal is counted
under ``payments`` and writes nothing; a payment id seen before answers ``duplicate``
(docs/http.md). Not in the OpenAPI document: only the payment provider calls it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.web.server import ServerDep
from orchestrator.web.services import payments
from orchestrator.web.services.refusals import Refused

router = APIRouter()


@router.post("/webhooks/payments", include_in_schema=False)
async def payment_webhook(request: Request, server: ServerDep) -> Response:
    secret = server.settings.payment_webhook_secret
    body = await request.body()
    stamp = request.headers.get("X-Outreach-Timestamp", "")
    given = request.headers.get("X-Outreach-Signature", "")
    try:
        payments.verify_signature(secret, stamp, given, body, server.clock.now())
        payment, paid_at = payments.parse_payment(body, server.clock.now())
        new = await server.run(payments.record_webhook_payment, server, payment, paid_at)
    except Refused as exc:
        raise server.reject("payments", exc.reason, exc.status, exc.detail) from None
    if new:
        return JSONResponse({"status": "recorded"}, status_code=201)
    return JSONResponse({"status": "duplicate", "duplicate": True})
