"""``/api/v1/placements``: accounts placed with collection agencies (``services.placements``).

Bearer token as every ``/api/v1`` route; a refusal is a 404 (unknown account or
placement) or a 422 with the reason (docs/http.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam

from orchestrator.web.routes.api import api
from orchestrator.web.schemas import (
    Placed,
    PlacementIn,
    PlacementList,
    PlacementOut,
    PlainText,
    RecallIn,
)
from orchestrator.web.server import ServerDep
from orchestrator.web.services import placements
from orchestrator.web.services.refusals import Refused

router = APIRouter()

PlacementId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


@router.post("/api/v1/placements", dependencies=api, status_code=201, response_model=Placed)
def post_placements(body: PlacementIn, server: ServerDep) -> dict[str, object]:
    """Place accounts (a list, or a rule) with an agency and write its placement file.
    Our own collection and service sends of them stop (``placed``) until recalled."""
    try:
        return placements.place(server, body)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.get("/api/v1/placements", dependencies=api, response_model=PlacementList)
def get_placements(
    server: ServerDep,
    agency: Annotated[
        PlainText | None, Query(max_length=64, description="only this agency's")
    ] = None,
    account_id: Annotated[
        PlainText | None, Query(max_length=64, description="only this account's")
    ] = None,
    in_force: Annotated[bool, Query(description="only those not recalled")] = False,
) -> dict[str, object]:
    """Placements, oldest first."""
    return {"placements": placements.listed(server, agency, account_id, in_force)}


@router.post("/api/v1/placements/recall", dependencies=api, response_model=PlacementList)
def post_recall(body: RecallIn, server: ServerDep) -> dict[str, object]:
    """Recall the placements in force of these accounts, or all of an agency's: our own
    collection of them resumes."""
    try:
        return {"placements": placements.recall(server, body)}
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.delete("/api/v1/placements/{placement_id}", dependencies=api, response_model=PlacementOut)
def delete_placement(placement_id: PlacementId, server: ServerDep) -> dict[str, object]:
    """Recall one placement."""
    try:
        return placements.recall_one(server, placement_id)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
