"""What the API records about an account: ``POST /api/v1/accounts/{id}/events``.

A payment, a promise or a plan must carry an idempotency key (its ``Idempotency-Key``
header, or a payment's own ``payment_id``), so that a retry cannot record it twice: a
repeat of the same request gets the first answer again and records nothing; the same
key with another request is refused (as Stripe does). Every check (the key, the instant,
the account, the policy's promise and plan bounds) comes before the transaction writes:
a refusal leaves nothing behind, and nothing after the commit can turn the answer into
an error (``Server.replan`` never raises). Each event recorded is audited; a dispute or
a complaint also opens a case (``store.cases``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchestrator.core.bounds import plan_problem, promise_problem, settlement_problem
from orchestrator.core.cases import CaseKind
from orchestrator.core.ebill import settlement_authority
from orchestrator.core.planner import dpd_on
from orchestrator.store import audit, cases, facts, idempotency
from orchestrator.web.schemas import EventIn
from orchestrator.web.server import Server
from orchestrator.web.services.payments import currency_problem, write_payment
from orchestrator.web.services.refusals import Invalid, Unknown, checked_instant

__all__ = ["KEYED", "record_event"]

KEYED = ("payment", "promise", "plan", "settlement")  # events a retry must not record twice

Answer = tuple[int, dict[str, Any]]  # an HTTP status and the body that goes with it


def record_event(
    server: Server,
    account_id: str,
    event: EventIn,
    idempotency_key: str | None,
    actor: str,
    *,
    source: str = "api",
) -> Answer:
    """Record what was agreed with the debtor, once per key; the answer (201 recorded,
    200 a payment recorded before, or the first answer again for a repeated key).
    ``Invalid`` or ``Unknown`` if it cannot be recorded: then nothing was written.
    ``actor`` (the token's name) is the actor of its audit log entries; ``source``:
    where it was recorded (the API's ``api``, the e-bill page's ``self_service``), kept
    with a promise or a plan."""
    now = server.clock.now()
    key = _request_key(event, idempotency_key)
    at = _event_at(event, now)
    fingerprint = idempotency.fingerprint(account_id, event)
    try:
        status, answer, new = _record_once(
            server, account_id, event, (key, fingerprint), at, now, (actor, source)
        )
    except sa.exc.IntegrityError:  # the same key, committed by a request racing this one
        first = _first_answer(server, key)
        if first is None:
            raise
        (status, answer), new = _repeat(first, fingerprint), False
    if new:
        server.replan([account_id])
    return status, answer


def _request_key(event: EventIn, header: str | None) -> str | None:
    """The request's idempotency key: its header, else a payment's own id. A payment,
    promise or plan must have one: a retry must not record it twice."""
    if header is not None:
        return header
    if event.type == "payment" and event.payment_id:
        return f"payment_id:{event.payment_id}"
    if event.type in KEYED:
        either = " or a payment_id" if event.type == "payment" else ""
        raise Invalid(
            f"a {event.type} needs an Idempotency-Key header{either}, "
            f"so that a retry cannot record it twice",
            "no_key",
        )
    return None


def _event_at(event: EventIn, now: datetime) -> datetime:
    """When the event happened: ``at`` (not later than now), else now."""
    if event.at is None:
        return now
    return min(checked_instant(event.at, now, "at"), now)


def _record_once(
    server: Server,
    account_id: str,
    event: EventIn,
    keyed: tuple[str | None, str],
    at: datetime,
    now: datetime,
    who: tuple[str, str],
) -> tuple[int, dict[str, Any], bool]:
    """The answer, and whether this request wrote: the first answer again for a key
    recorded before; else the event checked and written, with its answer under its
    key, in one transaction."""
    key, fingerprint = keyed
    actor, source = who
    with server.tx() as conn:
        first = idempotency.first_answer(conn, key) if key is not None else None
        if first is not None:
            return (*_repeat(first, fingerprint), False)
        row = facts.account_row(conn, account_id)
        if row is None:
            raise Unknown("unknown account", "unknown_account")
        problem = _event_problem(server, row, event, at)
        if problem is not None:
            raise Invalid(problem, "invalid")
        status, answer = _write_event(conn, row, event, key, (at, now), who)
        if status == 201:
            _record_aside(conn, server, row, event, (at, now), actor)
        if key is not None:
            idempotency.remember(
                conn,
                key=key,
                account_id=account_id,
                fingerprint=fingerprint,
                answer=(status, answer),
                now=now,
            )
    return status, answer, status == 201


def _first_answer(server: Server, key: str | None) -> idempotency.Answer | None:
    if key is None:
        return None
    with server.db.connect() as conn:
        return idempotency.first_answer(conn, key)


def _repeat(first: idempotency.Answer, fingerprint: str) -> Answer:
    """A repeat's answer: the first one, if it is the same request (as Stripe does)."""
    if first.fingerprint != fingerprint:
        raise Invalid(
            "this Idempotency-Key (or payment_id) came before with another "
            "request: a new request needs a new key",
            "key_reused",
        )
    return first.status, first.body


def _event_problem(server: Server, row: Row[Any], event: EventIn, at: datetime) -> str | None:
    """Why this event cannot be recorded on this account, if it cannot."""
    if event.type == "payment":
        if event.amount is None:
            return "a payment needs an amount"
        return currency_problem(row, event.currency)
    if event.type == "promise":
        if event.amount is None or event.due is None:
            return "a promise needs an amount and a due date"
        rules = server.rules(row)
        return promise_problem(
            rules.promise_bounds,
            amount=event.amount,
            due=event.due,
            made_on=at.astimezone(rules.zones.primary).date(),
            balance=row.balance,
        )
    if event.type == "settlement":
        if event.amount is None or event.due is None:
            return "a settlement needs an amount (what is paid) and a due date"
        return _settlement_problem(server, row, event.amount, event.due, at)
    if event.type == "plan":
        if not event.instalments:
            return "a plan needs its instalments (due, amount)"
        rules = server.rules(row)
        return plan_problem(
            rules.plan_bounds,
            instalments=[(i.due, i.amount) for i in event.instalments],
            made_on=at.astimezone(rules.zones.primary).date(),
            balance=row.balance,
        )
    if event.type == "opt_out" and event.channel is None:
        return "an opt-out needs a channel"
    if event.type == "agency_contact" and event.channel is None:
        return "an agency contact needs its channel (voice: a connected call)"
    return None


def _settlement_problem(
    server: Server, row: Row[Any], amount: Any, due: Any, at: datetime
) -> str | None:
    """A settlement beyond what the creditor's ``settlement:`` allows on this account
    today (its stages, its authority capped by the policy's), or not due in time."""
    rules = server.rules(row)
    made_on = at.astimezone(rules.zones.primary).date()
    dpd = dpd_on(row.due_date, made_on)
    stage = rules.cadences.stage_for(dpd)
    creditor = server.config.creditor(row.creditor)
    waivable, within = settlement_authority(
        creditor.settlement if creditor is not None else None,
        rules.settlement_cap,
        row.balance,
        (row.principal, row.interest, row.fees),
        (stage.id if stage is not None else None, dpd),
        rules.promise_bounds.max_days_ahead,
    )
    return settlement_problem(
        amount=amount,
        due=due,
        made_on=made_on,
        balance=row.balance,
        waivable=waivable,
        pay_within=within,
    )


def _record_aside(
    conn: Connection,
    server: Server,
    row: Row[Any],
    event: EventIn,
    times: tuple[datetime, datetime],
    actor: str,
) -> None:
    """What an event recorded brings with it: its audit entry; a dispute or a complaint
    opens a case (the event, written already, suppresses or pauses as it always did);
    ``dispute_resolved`` resolves the account's open dispute cases."""
    at, now = times
    detail: dict[str, Any] = {"type": event.type, "at": at.isoformat()}
    if event.channel is not None:
        detail["channel"] = event.channel
    if event.type in ("payment", "settlement"):
        detail["amount"] = str(event.amount)
    if event.type == "settlement":
        detail["waived"] = str(row.balance - (event.amount or 0))
    audit.write(
        conn,
        now=now,
        actor=actor,
        action=f"event.{event.type}",
        object_type="account",
        object_id=row.account_id,
        account_id=row.account_id,
        detail=detail,
    )
    if event.type in ("dispute", "complaint"):
        cases.open_for_account(
            conn,
            server.config.policy,
            row,
            kind=CaseKind(event.type),
            category=None,
            channel=event.channel,
            actor=actor,
            now=at,
            write_event=False,
        )
    elif event.type == "dispute_resolved":
        cases.resolve_open_disputes(conn, row.account_id, actor=actor, now=now)


def _write_event(
    conn: Connection,
    row: Row[Any],
    event: EventIn,
    key: str | None,
    times: tuple[datetime, datetime],
    who: tuple[str, str],
) -> Answer:
    """Record a checked event: the answer's status and body. ``who``: the actor of the
    audit log and the source kept with a promise or a plan."""
    at, now = times
    actor, source = who
    account_id = row.account_id
    answer = {"account_id": account_id, "type": event.type, "at": at.isoformat()}
    if event.type == "payment":
        assert event.amount is not None and key is not None
        payment_id = event.payment_id or f"api:{key}"  # a retry: the same payment
        answer["payment_id"] = payment_id
        if not write_payment(conn, row, payment_id, event.amount, at, "api", now):
            return 200, {**answer, "status": "duplicate"}
        return 201, {**answer, "status": "recorded"}
    if event.type in ("promise", "settlement"):
        assert event.amount is not None and event.due is not None
        # A settlement is a promise of part of the balance, the rest waived when kept.
        waived = row.balance - event.amount if event.type == "settlement" else None
        facts.record_promise(
            conn,
            account_id=account_id,
            amount=event.amount,
            due=event.due,
            made_at=at,
            source=source,
            waived=waived,
        )
        if waived is not None:
            answer["waived"] = f"{waived:.2f}"
    elif event.type == "plan":
        assert event.instalments
        facts.record_plan(
            conn,
            account_id=account_id,
            created_at=at,
            instalments=[(i.due, i.amount) for i in event.instalments],
            source=source,
        )
    elif event.type == "opt_out":
        assert event.channel is not None
        facts.opt_out_account(conn, row, event.channel, source="api", at=at, actor=actor)
    else:
        facts.record_event(
            conn, account_id=account_id, type_=event.type, at=at, channel=event.channel
        )
    return 201, answer
