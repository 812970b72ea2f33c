"""The payment provider's webhook, ``POST /webhooks/payments``.

Authenticated by an HMAC of its raw body (``services.payments``): a refusal is counted
under ``payments`` and writes nothing; a payment id seen before answers ``duplicate``
(docs/http.md). In the OpenAPI document under the ``paymentSignature`` scheme.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.web.apidocs import security
from orchestrator.web.schemas import PaymentIn
from orchestrator.web.server import ServerDep
from orchestrator.web.services import payments
from orchestrator.web.services.refusals import Refused

router = APIRouter(tags=["Payment webhook"])

SIGNED_JSON = {
    **security("paymentSignature"),
    "parameters": [
        {
            "name": "X-Outreach-Timestamp",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "Unix seconds when signed; within 300 s of the server's clock",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PaymentIn.model_json_schema()}},
    },
}


@router.post(
    "/webhooks/payments",
    summary="A payment received",
    description="From the payment provider: recorded once per `payment_id` (a repeat answers "
    "`duplicate`), and the account is planned again at once.",
    openapi_extra=SIGNED_JSON,
    responses={
        201: {"description": "recorded"},
        401: {"description": "bad or stale signature: nothing written"},
    },
)
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
