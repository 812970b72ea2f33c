"""Operator pauses through the API: list them, start one, end one (``store.pauses``).

A channel or creditor the configuration does not know is refused (422) before anything
is written; ending a pause that is not in force is a 404. The actor of the audit log
is the name of the request's token.
"""

from __future__ import annotations

from typing import Any

from orchestrator.store.pauses import active_pauses, end_pauses, start_pause
from orchestrator.web.schemas import PauseIn
from orchestrator.web.server import Server
from orchestrator.web.services.refusals import Invalid, Unknown

__all__ = ["end", "listed", "start"]


def listed(server: Server) -> list[dict[str, Any]]:
    """The pauses in force, oldest first."""
    with server.db.connect() as conn:
        return [p.as_json() for p in active_pauses(conn)]


def start(server: Server, body: PauseIn, actor: str) -> dict[str, Any]:
    """Start a pause; ``Invalid`` for a channel or creditor not in the configuration."""
    problems = []
    if body.channel is not None and body.channel not in server.config.channels:
        problems.append({"field": "channel", "message": f"unknown channel {body.channel!r}"})
    if body.creditor is not None and server.config.creditor(body.creditor) is None:
        problems.append({"field": "creditor", "message": f"unknown creditor {body.creditor!r}"})
    if problems:
        raise Invalid(problems, "invalid")
    with server.tx() as conn:
        pause = start_pause(
            conn,
            channel=body.channel,
            creditor=body.creditor,
            reason=body.reason,
            actor=actor,
            now=server.clock.now(),
        )
    return pause.as_json()


def end(server: Server, pause_id: int, actor: str) -> dict[str, Any]:
    """End the pause ``pause_id``; ``Unknown`` if no such pause is in force."""
    with server.tx() as conn:
        ended = end_pauses(conn, actor=actor, now=server.clock.now(), pause_id=pause_id)
    if not ended:
        raise Unknown("no such pause in force", "unknown")
    return {**ended[0].as_json(), "ended": True}
