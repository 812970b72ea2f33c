"""Placements through the API (``store.placements``): place accounts with an agency,
list placements, recall them.

A refusal (an unknown agency 422, an unknown account 404, a list and a rule together
422) comes before anything is written, or inside the transaction, which then rolls back.
The actor of every placement and recall is ``api``. Recalled accounts are planned again
after the commit.
"""

from __future__ import annotations

from typing import Any

from orchestrator.store import placements
from orchestrator.web.schemas import PlacementIn, RecallIn
from orchestrator.web.server import Server
from orchestrator.web.services.refusals import Invalid, Unknown

__all__ = ["ACTOR", "listed", "place", "recall", "recall_one"]

ACTOR = "api"


def place(server: Server, body: PlacementIn) -> dict[str, Any]:
    if (body.account_ids is None) == (body.rule is None):
        raise Invalid(
            [{"field": "account_ids", "message": "give account_ids or a rule, not both"}],
            "invalid",
        )
    rule = body.rule.model_dump(exclude_none=True) if body.rule is not None else None
    if rule is not None and not rule:
        raise Invalid([{"field": "rule", "message": "an empty rule selects nothing"}], "invalid")
    now = server.clock.now()
    with server.tx() as conn:
        chosen = (
            placements.select_by_rule(conn, rule, now) if rule is not None else body.account_ids
        )
        placed = placements.place(
            conn,
            server.config,
            server.cipher,
            agency=body.agency,
            account_ids=chosen or [],
            actor=ACTOR,
            now=now,
        )
    return {
        "placements": [p.as_json() for p in placed.placements],
        "already_placed": placed.already,
        "files": [str(f) for f in placed.files],
    }


def listed(
    server: Server, agency: str | None, account_id: str | None, in_force: bool
) -> list[dict[str, Any]]:
    with server.db.connect() as conn:
        found = placements.list_placements(
            conn, agency=agency, account_id=account_id, in_force=in_force
        )
    return [p.as_json() for p in found]


def recall(server: Server, body: RecallIn) -> list[dict[str, Any]]:
    if body.account_ids is None and body.agency is None:
        raise Invalid(
            [{"field": "account_ids", "message": "give account_ids or an agency"}], "invalid"
        )
    now = server.clock.now()
    with server.tx() as conn:
        done = placements.recall(
            conn, account_ids=body.account_ids, agency=body.agency, actor=ACTOR, now=now
        )
    server.replan(sorted({p.account_id for p in done}))
    return [p.as_json() for p in done]


def recall_one(server: Server, placement_id: int) -> dict[str, Any]:
    """Recall one placement by its id (404 if none; 422 if recalled already)."""
    now = server.clock.now()
    with server.tx() as conn:
        found = placements.find_placement(conn, placement_id)
        if found is None:
            raise Unknown(f"no placement {placement_id}", "unknown")
        if found.recalled_at is not None:
            raise Invalid(f"placement {placement_id} is recalled already", "recalled")
        done = placements.recall(conn, placement_id=placement_id, actor=ACTOR, now=now)
    server.replan([found.account_id])
    return done[0].as_json()
