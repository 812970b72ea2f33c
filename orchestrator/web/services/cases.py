"""Cases through the API (``store.cases``): open one, list them, read one, change one.

A refusal (an unknown account or case 404, a bad category or change 422) comes before
anything is written, or inside the transaction, which then rolls back. The actor of
every change is the name of the request's token (``api`` for a bare token). An account whose suppression
changed (a case opened, a dispute resolved with verification) is planned again after
the commit (``Server.replan`` never raises).
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.cases import CaseKind, CaseStatus
from orchestrator.store import cases, facts
from orchestrator.web.schemas import CaseIn, CasePatch
from orchestrator.web.server import Server
from orchestrator.web.services.refusals import Invalid, Unknown

__all__ = ["change", "create", "listed", "read"]


def create(server: Server, body: CaseIn, actor: str) -> dict[str, Any]:
    now = server.clock.now()
    with server.tx() as conn:
        row = facts.account_row(conn, body.account_id)
        if row is None:
            raise Unknown("unknown account", "unknown_account")
        case = cases.open_for_account(
            conn,
            server.config.policy,
            row,
            kind=CaseKind(body.kind),
            category=body.category,
            channel=body.channel,
            actor=actor,
            now=now,
            write_event=True,
        )
    server.replan([body.account_id])
    return case.as_json(now)


def listed(server: Server, status: CaseStatus | None, overdue: bool) -> list[dict[str, Any]]:
    now = server.clock.now()
    with server.db.connect() as conn:
        found = cases.list_cases(conn, now=now, status=status, overdue=overdue)
    return [case.as_json(now) for case in found]


def read(server: Server, case_id: int) -> dict[str, Any]:
    with server.db.connect() as conn:
        case = cases.find_case(conn, case_id)
    if case is None:
        raise Unknown(f"no case {case_id}", "unknown")
    return case.as_json(server.clock.now())


def change(server: Server, case_id: int, body: CasePatch, actor: str) -> dict[str, Any]:
    """Acknowledge, resolve or recategorise a case."""
    now = server.clock.now()
    _check(server, body)
    with server.tx() as conn:
        case = cases.find_case(conn, case_id)
        if case is None:
            raise Unknown(f"no case {case_id}", "unknown")
        if body.action == "resolve":
            assert body.resolution is not None
            case = cases.resolve_checked(
                conn,
                case_id,
                resolution=body.resolution,
                verified=body.verified,
                actor=actor,
                now=now,
            )
        elif case.resolved_at is not None:
            raise Invalid(f"case {case_id} is resolved already", "resolved")
        elif body.action == "acknowledge":
            case = cases.acknowledge_case(conn, case, actor=actor, now=now)
        else:
            assert body.category is not None
            case = cases.recategorise_case(conn, case, category=body.category, actor=actor, now=now)
    if body.action == "resolve" and body.verified:
        server.replan([case.account_id])
    return case.as_json(now)


def _check(server: Server, body: CasePatch) -> None:
    """The fields each action needs, and only those."""
    problems = []
    if body.action == "resolve" and body.resolution is None:
        problems.append({"field": "resolution", "message": "resolve needs a resolution"})
    if body.action != "resolve" and (body.resolution is not None or body.verified):
        problems.append(
            {"field": "resolution", "message": f"{body.action} takes no resolution or verified"}
        )
    if body.action == "categorise":
        categories = server.config.policy.cases.categories
        if body.category is None:
            problems.append({"field": "category", "message": "categorise needs a category"})
        elif body.category not in categories:
            problems.append(
                {
                    "field": "category",
                    "message": f"unknown category {body.category!r} "
                    f"(policy.yaml cases.categories: {', '.join(categories)})",
                }
            )
    elif body.category is not None:
        problems.append({"field": "category", "message": f"{body.action} takes no category"})
    if problems:
        raise Invalid(problems, "invalid")
