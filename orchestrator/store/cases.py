"""Cases in the database (``case_file``): open, read, list, acknowledge, resolve,
recategorise. Each change is audited (``store.audit``) with its actor in the caller's
transaction.

A case does not suppress anything by itself: the ``dispute`` and ``complaint`` account
events do (the gate reads them), and opening a case writes its event unless the caller
wrote it already (the events API). Resolving a dispute with verification writes
``dispute_resolved``, which lifts the suppression as it always did, once no other
dispute case of the account is still open (``disputes_holding``); resolving one without
verification closes the case and leaves collection suppressed (a new verified
``dispute_resolved`` lifts it later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchestrator.config.models import Policy
from orchestrator.core.cases import (
    CaseKind,
    CaseStatus,
    DueTimes,
    due_times,
    is_overdue,
    status_of,
)
from orchestrator.errors import Invalid, Unknown
from orchestrator.store import audit, facts, tasks
from orchestrator.store.tables import AccountRow, CaseFile, table_of

__all__ = [
    "Case",
    "acknowledge_case",
    "disputes_holding",
    "find_case",
    "list_cases",
    "open_case",
    "open_for_account",
    "recategorise_case",
    "resolve_case",
    "resolve_checked",
    "resolve_open_disputes",
]

case_t = table_of(CaseFile)
account_t = table_of(AccountRow)


def _stamp(t: datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Case:
    id: int
    account_id: str
    kind: str
    category: str
    channel: str | None
    opened_at: datetime
    opened_by: str
    due_ack_at: datetime
    due_resolve_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    verified: bool | None

    @classmethod
    def of(cls, row: Row[Any]) -> Case:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    @property
    def status(self) -> CaseStatus:
        return status_of(self.acknowledged_at, self.resolved_at)

    def overdue(self, now: datetime) -> bool:
        return is_overdue(self.status, self.due_ack_at, self.due_resolve_at, now)

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "kind": self.kind,
            "category": self.category,
            "channel": self.channel,
            "status": str(self.status),
            "overdue": self.overdue(now),
            "opened_at": _stamp(self.opened_at),
            "opened_by": self.opened_by,
            "acknowledge_due_at": _stamp(self.due_ack_at),
            "resolve_due_at": _stamp(self.due_resolve_at),
            "acknowledged_at": _stamp(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": _stamp(self.resolved_at),
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
            "verified": self.verified,
        }


def open_case(
    conn: Connection,
    *,
    account_id: str,
    kind: CaseKind,
    category: str,
    channel: str | None,
    due: DueTimes,
    actor: str,
    now: datetime,
    write_event: bool,
) -> Case:
    """Open a case (and, with ``write_event``, its ``dispute``/``complaint`` event)."""
    if write_event:
        facts.record_event(conn, account_id=account_id, type_=str(kind), at=now, channel=channel)
    case_id = conn.execute(
        case_t.insert()
        .values(
            account_id=account_id,
            kind=str(kind),
            category=category,
            channel=channel,
            opened_at=now,
            opened_by=actor,
            due_ack_at=due.acknowledge,
            due_resolve_at=due.resolve,
            updated_at=now,
        )
        .returning(case_t.c.id)
    ).scalar_one()
    case = find_case(conn, case_id)
    assert case is not None
    _audit(conn, case, actor, now, "case.opened", {"kind": str(kind), "category": category})
    return case


def find_case(conn: Connection, case_id: int) -> Case | None:
    row = conn.execute(sa.select(case_t).where(case_t.c.id == case_id)).first()
    return None if row is None else Case.of(row)


def list_cases(
    conn: Connection,
    *,
    now: datetime,
    status: CaseStatus | None = None,
    overdue: bool = False,
    account_id: str | None = None,
) -> list[Case]:
    """Cases, oldest first: of one ``status``, only the ``overdue`` ones, of one account."""
    query = sa.select(case_t).order_by(case_t.c.opened_at, case_t.c.id)
    if account_id is not None:
        query = query.where(case_t.c.account_id == account_id)
    if status == CaseStatus.resolved:
        query = query.where(case_t.c.resolved_at.is_not(None))
    elif status == CaseStatus.acknowledged:
        query = query.where(case_t.c.resolved_at.is_(None), case_t.c.acknowledged_at.is_not(None))
    elif status == CaseStatus.open:
        query = query.where(case_t.c.resolved_at.is_(None), case_t.c.acknowledged_at.is_(None))
    if overdue:
        query = query.where(case_t.c.resolved_at.is_(None), past_due(now))
    return [Case.of(row) for row in conn.execute(query).all()]


def past_due(now: datetime) -> sa.ColumnElement[bool]:
    """A case past a due time at ``now`` (with ``resolved_at IS NULL``: an overdue case,
    as ``Case.overdue`` tells it): not resolved by its resolution due time, or not
    acknowledged by its acknowledgement due time."""
    return sa.or_(
        case_t.c.due_resolve_at <= now,
        sa.and_(case_t.c.acknowledged_at.is_(None), case_t.c.due_ack_at <= now),
    )


def acknowledge_case(conn: Connection, case: Case, *, actor: str, now: datetime) -> Case:
    """Acknowledge an open case; one acknowledged or resolved already is left as it is."""
    if case.acknowledged_at is not None or case.resolved_at is not None:
        return case
    done = conn.execute(
        case_t.update()
        .where(
            case_t.c.id == case.id,
            case_t.c.acknowledged_at.is_(None),
            case_t.c.resolved_at.is_(None),
        )
        .values(acknowledged_at=now, acknowledged_by=actor, updated_at=now)
    ).rowcount
    if done:  # else a concurrent request acknowledged it first
        _audit(conn, case, actor, now, "case.acknowledged", {})
    return _reread(conn, case)


def resolve_case(
    conn: Connection,
    case: Case,
    *,
    resolution: str,
    verified: bool,
    actor: str,
    now: datetime,
) -> Case:
    """Resolve a case (acknowledging it too, if it was not). A dispute resolved with
    ``verified`` writes ``dispute_resolved``: collection resumes, unless another dispute
    of the account still holds it (``disputes_holding``); without ``verified``, it stays
    suppressed. The caller replans the account."""
    kept = verified if case.kind == CaseKind.dispute else None
    if not _mark_resolved(conn, case, resolution, kept, actor, now):
        # a concurrent request resolved it first: this one rolls back
        raise Invalid(f"case {case.id} is resolved already", "resolved")
    detail: dict[str, Any] = {"verified": kept}
    if case.kind == CaseKind.dispute and verified:
        # Two disputes of one account resolved at once: the second to take the account's
        # row sees the first resolved, so one of them lifts the suppression.
        conn.execute(
            sa.select(account_t.c.account_id)
            .where(account_t.c.account_id == case.account_id)
            .with_for_update()
        )
        holding = disputes_holding(conn, case.account_id)
        if not holding:
            facts.record_event(
                conn,
                account_id=case.account_id,
                type_="dispute_resolved",
                at=now,
                detail={"case": case.id},
            )
        detail["collection_resumes"] = not holding
    _audit(conn, case, actor, now, "case.resolved", detail)
    return _reread(conn, case)


def disputes_holding(conn: Connection, account_id: str) -> list[int]:
    """The ids of the account's dispute cases not resolved yet: each keeps collection
    suppressed, so one dispute verified does not lift another still being answered.
    (A dispute resolved without verification is answered by a later verification of
    the debt, as before.)"""
    query = (
        sa.select(case_t.c.id)
        .where(
            case_t.c.account_id == account_id,
            case_t.c.kind == str(CaseKind.dispute),
            case_t.c.resolved_at.is_(None),
        )
        .order_by(case_t.c.id)
    )
    return list(conn.execute(query).scalars())


def _mark_resolved(
    conn: Connection,
    case: Case,
    resolution: str,
    verified: bool | None,
    actor: str,
    now: datetime,
) -> bool:
    """Resolve (and acknowledge, if it was not) a case still open; False when another
    request resolved it first."""
    values: dict[str, Any] = {
        "resolved_at": now,
        "resolved_by": actor,
        "resolution": resolution,
        "verified": verified,
        "updated_at": now,
    }
    if case.acknowledged_at is None:
        values |= {"acknowledged_at": now, "acknowledged_by": actor}
    done = conn.execute(
        case_t.update()
        .where(case_t.c.id == case.id, case_t.c.resolved_at.is_(None))
        .values(**values)
    ).rowcount
    return bool(done)


def recategorise_case(
    conn: Connection, case: Case, *, category: str, actor: str, now: datetime
) -> Case:
    if category == case.category:
        return case
    conn.execute(
        case_t.update().where(case_t.c.id == case.id).values(category=category, updated_at=now)
    )
    _audit(conn, case, actor, now, "case.category", {"from": case.category, "to": category})
    return _reread(conn, case)


def resolve_open_disputes(
    conn: Connection, account_id: str, *, actor: str, now: datetime
) -> list[Case]:
    """A ``dispute_resolved`` recorded through the events API: the account's open
    dispute cases are resolved with verification (the event itself is the caller's)."""
    resolved = []
    for case in list_cases(conn, now=now, account_id=account_id):
        if case.kind != CaseKind.dispute or case.resolved_at is not None:
            continue
        resolution = "dispute_resolved recorded through the events API"
        if not _mark_resolved(conn, case, resolution, True, actor, now):
            continue
        detail = {"verified": True, "collection_resumes": True}  # the event lifts them all
        _audit(conn, case, actor, now, "case.resolved", detail)
        resolved.append(_reread(conn, case))
    return resolved


def _reread(conn: Connection, case: Case) -> Case:
    found = find_case(conn, case.id)
    assert found is not None
    return found


def _audit(
    conn: Connection, case: Case, actor: str, now: datetime, action: str, detail: dict[str, Any]
) -> None:
    audit.write(
        conn,
        now=now,
        actor=actor,
        action=action,
        object_type="case",
        object_id=str(case.id),
        account_id=case.account_id,
        detail=detail or None,
    )


def open_for_account(
    conn: Connection,
    policy: Policy,
    row: Row[Any],
    *,
    kind: CaseKind,
    category: str | None,
    channel: str | None,
    actor: str,
    now: datetime,
    write_event: bool,
) -> Case:
    """Open a case on the account ``row`` with the policy's deadlines (and a task, under
    the policy's ``tasks.rules.case_opened``); ``Invalid`` for a category the policy does
    not list (none given: its ``default_category``)."""
    cases = policy.cases
    category = category or cases.default_category
    if category not in cases.categories:
        raise Invalid(
            [
                {
                    "field": "category",
                    "message": f"unknown category {category!r} "
                    f"(policy.yaml cases.categories: {', '.join(cases.categories)})",
                }
            ],
            "invalid",
        )
    due = due_times(now, cases.sla, ZoneInfo(policy.timezone.default), row.country, row.region)
    case = open_case(
        conn,
        account_id=row.account_id,
        kind=kind,
        category=category,
        channel=channel,
        due=due,
        actor=actor,
        now=now,
        write_event=write_event,
    )
    if write_event:
        facts.replan(conn, [row.account_id])
    rule = policy.tasks.rules.case_opened
    if rule is not None:
        tasks.create_task(conn, rule, account_id=row.account_id, now=now, case_id=case.id)
    return case


def resolve_checked(
    conn: Connection, case_id: int, *, resolution: str, verified: bool, actor: str, now: datetime
) -> Case:
    """Resolve the case ``case_id``: ``Unknown`` if there is none, ``Invalid`` if it is
    resolved already, has no resolution text, or is a complaint said ``verified``."""
    case = find_case(conn, case_id)
    if case is None:
        raise Unknown(f"no case {case_id}", "unknown")
    if case.resolved_at is not None:
        raise Invalid(f"case {case_id} is resolved already", "resolved")
    if not resolution.strip():
        raise Invalid([{"field": "resolution", "message": "a resolution is required"}], "invalid")
    if verified and case.kind != CaseKind.dispute:
        raise Invalid(
            [{"field": "verified", "message": "only a dispute is resolved with verification"}],
            "invalid",
        )
    resolved = resolve_case(
        conn, case, resolution=resolution, verified=verified, actor=actor, now=now
    )
    if verified:
        facts.replan(conn, [case.account_id])
    return resolved
