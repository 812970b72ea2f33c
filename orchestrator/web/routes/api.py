"""The REST API, ``/api/v1``: accounts in and out, and what was agreed with a debtor.

Every route needs ``Authorization: Bearer <token>``, one of ``OUTREACH_API_TOKENS``
(else 401, counted under ``api``); the token's name (``Actor``) is the actor of the
audit log entries the request writes. The work is the services' (``services.accounts``,
``services.events``, ``services.pauses``); a refusal is a 404 or a 422 with the reason (docs/http.md).
These routes, their bodies and their headers make the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from orchestrator.store.status import status as read_status
from orchestrator.web.auth import bearer_token, same_secret
from orchestrator.web.schemas import KEY_PATTERN, AccountId, AccountIn, EventIn, PauseIn
from orchestrator.web.server import ServerDep
from orchestrator.web.services import accounts, events, pauses
from orchestrator.web.services.refusals import Refused

router = APIRouter(tags=["REST API"])


def bearer(server: ServerDep, authorization: Annotated[str | None, Header()] = None) -> str:
    """The name of the request's token (every token is compared, in constant time)."""
    token = bearer_token(authorization)
    names = [t.name for t in server.api_tokens if token and same_secret(token, t.token)]
    if not names:
        raise server.reject("api", "bad_token", 401, "invalid or missing bearer token")
    return names[0]


api = [Depends(bearer)]
Actor = Annotated[str, Depends(bearer)]  # who the request acts as: its token's name


@router.put("/api/v1/accounts/{account_id}", dependencies=api, status_code=200)
def put_account(
    account_id: AccountId, body: AccountIn, server: ServerDep, actor: Actor
) -> dict[str, Any]:
    try:
        outcome = accounts.put_account(server, account_id, body, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return {"account_id": account_id, "result": outcome}


@router.get("/api/v1/accounts/{account_id}", dependencies=api)
def get_account(account_id: AccountId, server: ServerDep) -> Any:
    found = accounts.account_view(server, account_id)
    if found is None:
        raise HTTPException(404, "unknown account")
    return JSONResponse(jsonable_encoder(found))


@router.get("/api/v1/accounts/{account_id}/timeline", dependencies=api)
def get_timeline(account_id: AccountId, server: ServerDep) -> Any:
    found = accounts.timeline_view(server, account_id)
    if found is None:
        raise HTTPException(404, "unknown account")
    return JSONResponse(jsonable_encoder(found))


@router.post("/api/v1/accounts/{account_id}/events", dependencies=api, status_code=201)
def post_event(
    account_id: AccountId,
    event: EventIn,
    server: ServerDep,
    actor: Actor,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=KEY_PATTERN,
            description="unique to this request (a UUID). A repeat with the same key gets "
            "the first answer again (status and body) and records nothing; the "
            "same key with another request is refused (422). Required for a "
            "payment (or its payment_id), a promise and a plan.",
        ),
    ] = None,
) -> Any:
    """Record what was agreed with the debtor. Every check (the key, the instant, the
    account, the policy's promise and plan bounds) comes before the transaction
    writes: a refusal leaves nothing behind, and nothing after the commit can turn
    the answer into an error."""
    try:
        status, answer = events.record_event(server, account_id, event, idempotency_key, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return JSONResponse(answer, status_code=status)


@router.get("/api/v1/status", dependencies=api)
def get_status(server: ServerDep) -> dict[str, Any]:
    """What ``outreach status`` shows: the workers, sends due and late, ambiguous sends,
    today's sends and decisions, and the pauses in force."""
    with server.db.connect() as conn:
        return read_status(conn, server.clock.now())


@router.get("/api/v1/pauses", dependencies=api)
def get_pauses(server: ServerDep) -> dict[str, Any]:
    """The operator pauses in force, oldest first."""
    return {"pauses": pauses.listed(server)}


@router.post("/api/v1/pauses", dependencies=api, status_code=201)
def post_pause(body: PauseIn, server: ServerDep, actor: Actor) -> dict[str, Any]:
    """Stop outbound sends now: every channel of every creditor, or only ``channel``
    and/or ``creditor``. Every daemon worker holds back what it claims after the 201."""
    try:
        return pauses.start(server, body, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.delete("/api/v1/pauses/{pause_id}", dependencies=api)
def delete_pause(
    pause_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], server: ServerDep, actor: Actor
) -> dict[str, Any]:
    """End the pause ``pause_id``: what it held goes at its next check (within a minute)."""
    try:
        return pauses.end(server, pause_id, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
