"""``/api/v1/cases``: complaints and disputes as cases (``services.cases``).

Bearer token as every ``/api/v1`` route; a refusal is a 404 (unknown case or account)
or a 422 with the reason (docs/http.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam

from orchestrator.core.cases import CaseStatus
from orchestrator.web.routes.api import Actor, api
from orchestrator.web.schemas import CaseIn, CaseList, CaseOut, CasePatch
from orchestrator.web.server import ServerDep
from orchestrator.web.services import cases
from orchestrator.web.services.refusals import Refused

router = APIRouter(tags=["REST API"])

CaseId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


@router.post("/api/v1/cases", dependencies=api, status_code=201, response_model=CaseOut)
def post_case(body: CaseIn, server: ServerDep, actor: Actor) -> dict[str, object]:
    """Open a case. A dispute suppresses the account's collection until it is resolved
    with verification; a complaint applies the policy's complaint pause."""
    try:
        return cases.create(server, body, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.get("/api/v1/cases", dependencies=api, response_model=CaseList)
def get_cases(
    server: ServerDep,
    status: Annotated[CaseStatus | None, Query(description="only cases in this state")] = None,
    overdue: Annotated[bool, Query(description="only cases past a due time")] = False,
) -> dict[str, object]:
    """Cases, oldest first."""
    return {"cases": cases.listed(server, status, overdue)}


@router.get("/api/v1/cases/{case_id}", dependencies=api, response_model=CaseOut)
def get_case(case_id: CaseId, server: ServerDep) -> dict[str, object]:
    try:
        return cases.read(server, case_id)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.patch("/api/v1/cases/{case_id}", dependencies=api, response_model=CaseOut)
def patch_case(
    case_id: CaseId, body: CasePatch, server: ServerDep, actor: Actor
) -> dict[str, object]:
    """Acknowledge, resolve (with a resolution; ``verified`` for a dispute lifts its
    suppression) or recategorise a case."""
    try:
        return cases.change(server, case_id, body, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
