"""What ``account show`` tells of one account: its state, its promises, payments and
plans, its opt-outs, every decision and, in time order, every event from each source
(delivery receipts, account events, opt-outs, payments, promises, plans). The person's
own words are decrypted here, and only where a configured key opens them."""

from __future__ import annotations

from datetime import date, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channels.base import DeliveryStatus, can_move
from orchestrator.config.models import BestTime
from orchestrator.core.besttime import DEBTOR, learned_hours
from orchestrator.core.crypto import DataCipher, InvalidToken
from orchestrator.core.records import iso_utc
from orchestrator.store.besttime import load_book
from orchestrator.store.tables import (
    AccountEvent,
    AccountRow,
    Decision,
    DeliveryEvent,
    InstalmentPlan,
    InstalmentRow,
    OptOut,
    Payment,
    Promise,
    Send,
    table_of,
)

__all__ = ["account_timeline", "forward_deliveries"]

account_t = table_of(AccountRow)
decision_t = table_of(Decision)

# An event of the timeline: when, and what ``account show --json`` shows of it.
Event = tuple[datetime, dict[str, Any]]


def forward_deliveries(conn: Connection, account_id: str) -> list[Any]:
    """The account's delivery events that moved their send forward, in the order they
    came. A callback that would move a send back (a late ``sent`` after ``delivered``)
    is acknowledged and stored for audit, but it changed nothing: shown among the
    others it would read as if the message had gone back in flight."""
    send_t, delivery_t = table_of(Send), table_of(DeliveryEvent)
    rows = conn.execute(
        sa.select(
            delivery_t.c.send_id,
            delivery_t.c.time,
            delivery_t.c.status,
            send_t.c.channel,
            send_t.c.message_id,
        )
        .join(send_t, delivery_t.c.send_id == send_t.c.id)
        .where(send_t.c.account_id == account_id)
        .order_by(delivery_t.c.send_id, delivery_t.c.id)
    ).all()
    reached: dict[int, DeliveryStatus | None] = {}
    kept: list[Any] = []
    for row in rows:
        try:
            status = DeliveryStatus(row.status)
        except ValueError:  # not a provider status: shown as it is
            kept.append(row)
            continue
        if can_move(reached.get(row.send_id), status):
            reached[row.send_id] = status
            kept.append(row)
    return kept


def _dpd(due: date, today: date) -> int:
    return (today - due).days


def _readable(cipher: DataCipher, token: str) -> str | None:
    """A stored text in clear, or ``None`` if no configured key opens it."""
    try:
        return cipher.decrypt(token)
    except InvalidToken:
        return None


def account_timeline(
    conn: Connection,
    cipher: DataCipher,
    account_id: str,
    *,
    today: date,
    best_time: BestTime | None = None,
) -> dict[str, Any] | None:
    """The ``account show --json`` object (docs/cli.md), or ``None`` for an unknown id."""
    row = conn.execute(sa.select(account_t).where(account_t.c.account_id == account_id)).first()
    if row is None:
        return None
    promises = _promises(conn, account_id)
    plans = _plans(conn, account_id)
    instalments = _instalments(conn, plans)
    payments = _payments(conn, account_id)
    opt_rows = _opt_out_rows(conn, row)
    decisions = _decisions(conn, account_id)
    events = _in_time_order(
        _delivery_events(conn, account_id),
        _account_events(conn, cipher, account_id),
        _opt_out_events(opt_rows),
        [_event(p.paid_at, "payment") for p in payments],
        [_event(pr.made_at, "promise", status=pr.state) for pr in promises],
        [_event(pl.created_at, "plan", status=pl.state) for pl in plans],
    )
    shown: dict[str, Any] = {
        "account_id": row.account_id,
        "debtor_id": row.debtor_id,
        "status": row.status,
        "stage": row.stage,
        "dpd": _dpd(row.due_date, today),
        "balance": f"{row.balance:.2f}",
        "promises": [
            {
                "amount": f"{p.amount:.2f}",
                "due": p.due.isoformat(),
                "state": p.state,
                "made_at": iso_utc(p.made_at),
                **({} if p.waived is None else {"waived": f"{p.waived:.2f}"}),
            }
            for p in promises
        ],
        "payments": [
            {"amount": f"{p.amount:.2f}", "paid_at": iso_utc(p.paid_at)} for p in payments
        ],
        "opt_outs": _opted_out(cipher, row, opt_rows),
        "decisions": [_decision_shown(d) for d in decisions],
        "events": events,
    }
    if row.stage is not None:  # since when, and owing what then (beyond the documented keys)
        shown["stage_entered_at"] = iso_utc(row.stage_entered_at)
        shown["balance_at_stage_entry"] = (
            None if row.balance_at_stage_entry is None else f"{row.balance_at_stage_entry:.2f}"
        )
    settlements = [p for p in promises if p.waived is not None]
    if settlements:  # the latest settlement, where there is one (as plans)
        shown["settlement"] = _settlement_shown(settlements[-1])
    if plans:  # payment plans: shown where there are any (not a documented key otherwise)
        shown["plans"] = [_plan_shown(p, instalments[p.id]) for p in plans]
    segment = next((d.segment for d in reversed(decisions) if d.segment), None)
    hours = best_hours(conn, row.debtor_id, segment, best_time or BestTime())
    if hours:  # what ``at: best`` has learned of this debtor, where it has learned anything
        shown["best_hours"] = hours
    return shown


# A settlement is a promise: kept, the account is settled; broken, the offer lapsed.
_SETTLEMENT_STATES = {"pending": "pending", "kept": "settled", "broken": "lapsed"}


def _settlement_shown(p: Any) -> dict[str, Any]:
    return {
        "amount": f"{p.amount:.2f}",
        "waived": f"{p.waived:.2f}",
        "due": p.due.isoformat(),
        "state": _SETTLEMENT_STATES.get(p.state, p.state),
        "made_at": iso_utc(p.made_at),
        "source": p.source or "api",
    }


def best_hours(
    conn: Connection, debtor_id: str, segment: str | None, settings: BestTime
) -> dict[str, list[dict[str, Any]]]:
    """Per channel, the debtor's three best local hours by the learned answer rate, each
    with the debtor's own sends and answers at that hour (``core.besttime``)."""
    book = load_book(conn, [debtor_id])
    out: dict[str, list[dict[str, Any]]] = {}
    for channel in book.channels(DEBTOR, debtor_id):
        out[channel] = [
            {
                "hour": f"{h.hour:02d}:00",
                "rate": round(h.rate, 3),
                "sent": h.sent,
                "answered": h.answered,
            }
            for h in learned_hours(book, debtor_id, segment, channel, settings)
        ]
    return out


# -- the rows of each source, in the order they are shown ---------------------------


def _promises(conn: Connection, account_id: str) -> list[Any]:
    promise_t = table_of(Promise)
    return list(
        conn.execute(
            sa.select(promise_t)
            .where(promise_t.c.account_id == account_id)
            .order_by(promise_t.c.made_at, promise_t.c.id)
        ).all()
    )


def _plans(conn: Connection, account_id: str) -> list[Any]:
    plan_t = table_of(InstalmentPlan)
    return list(
        conn.execute(
            sa.select(plan_t)
            .where(plan_t.c.account_id == account_id)
            .order_by(plan_t.c.created_at, plan_t.c.id)
        ).all()
    )


def _instalments(conn: Connection, plans: list[Any]) -> dict[int, list[Any]]:
    """Each plan's instalments by due date (one query for all the plans)."""
    instalment_t = table_of(InstalmentRow)
    instalments: dict[int, list[Any]] = {p.id: [] for p in plans}
    if plans:
        for inst in conn.execute(
            sa.select(instalment_t)
            .where(instalment_t.c.plan_id.in_(list(instalments)))
            .order_by(instalment_t.c.due, instalment_t.c.id)
        ):
            instalments[inst.plan_id].append(inst)
    return instalments


def _payments(conn: Connection, account_id: str) -> list[Any]:
    payment_t = table_of(Payment)
    return list(
        conn.execute(
            sa.select(payment_t)
            .where(payment_t.c.account_id == account_id)
            .order_by(payment_t.c.paid_at, payment_t.c.id)
        ).all()
    )


def _opt_out_rows(conn: Connection, row: Any) -> list[Any]:
    """The account's opt-outs and its debtor's debtor-wide ones (no account)."""
    opt_t = table_of(OptOut)
    return list(
        conn.execute(
            sa.select(opt_t)
            .where(
                sa.or_(
                    opt_t.c.account_id == row.account_id,
                    sa.and_(opt_t.c.account_id.is_(None), opt_t.c.debtor_id == row.debtor_id),
                )
            )
            .order_by(opt_t.c.created_at, opt_t.c.id)
        ).all()
    )


def _decisions(conn: Connection, account_id: str) -> list[Any]:
    return list(
        conn.execute(
            sa.select(decision_t)
            .where(decision_t.c.account_id == account_id)
            .order_by(decision_t.c.time, decision_t.c.id)
        ).all()
    )


def _opted_out(cipher: DataCipher, row: Any, opt_rows: list[Any]) -> list[str]:
    """The channels opted out of now: the account's own opt-outs, and a debtor-wide one
    made from a contact (phone, email) this account still has."""
    phones = cipher.contact_indexes(row.phone_enc, row.phone_index, "phone")
    contact = {
        "sms": phones,
        "voice": phones,
        "email": cipher.contact_indexes(row.email_enc, row.email_index, "email"),
    }
    return sorted(
        {
            o.channel
            for o in opt_rows
            if o.revoked_at is None
            and (
                o.contact_index is None
                or o.account_id == row.account_id
                or o.contact_index in contact.get(o.channel, ())
            )
        }
    )


# -- the events --------------------------------------------------------------------


def _event(
    at: datetime, type_: str, channel: Any = None, status: Any = None, message_id: Any = None
) -> Event:
    return at, {
        "time": iso_utc(at),
        "type": type_,
        "channel": channel,
        "status": status,
        "message_id": message_id,
    }


def _in_time_order(*sources: list[Event]) -> list[dict[str, Any]]:
    """The events of every source by time; at one instant, in the order of the sources
    and, within one, in its own order (the sort is stable)."""
    events = [event for source in sources for event in source]
    return [shown for _, shown in sorted(events, key=itemgetter(0))]


def _delivery_events(conn: Connection, account_id: str) -> list[Event]:
    return [
        _event(d.time, "delivery", d.channel, d.status, d.message_id)
        for d in forward_deliveries(conn, account_id)
    ]


def _account_events(conn: Connection, cipher: DataCipher, account_id: str) -> list[Event]:
    event_t = table_of(AccountEvent)
    found = []
    for e in conn.execute(sa.select(event_t).where(event_t.c.account_id == account_id)):
        detail = e.detail or {}
        event = _event(
            e.time,
            e.type,
            e.channel,
            detail.get("status") or detail.get("kind"),
            detail.get("message_id"),
        )
        if e.type == "inbound_sms" and detail.get("body"):
            # The person's own words, for people to read (what was not a keyword above all).
            event[1]["text"] = _readable(cipher, detail["body"])
        found.append(event)
    return found


def _opt_out_events(opt_rows: list[Any]) -> list[Event]:
    """Each opt-out, followed by its opt-in where it was revoked."""
    found = []
    for o in opt_rows:
        found.append(_event(o.created_at, "opt_out", o.channel))
        if o.revoked_at is not None:
            found.append(_event(o.revoked_at, "opt_in", o.channel))
    return found


# -- the rest of the shown object ------------------------------------------------------


def _decision_shown(d: Any) -> dict[str, Any]:
    return {
        "time": iso_utc(d.time),
        "local_time": d.local_time,
        "account": d.account_id,
        "debtor": d.debtor_id,
        "stage": d.stage,
        "step": d.step,
        "channel": d.channel,
        "kind": d.kind,
        "decision": d.decision,
        "reason": d.reason,
        "until": iso_utc(d.until),
        "message_id": d.message_id,
        "to": d.to_masked,
        "subject": d.subject,
    }


def _plan_shown(plan: Any, instalments: list[Any]) -> dict[str, Any]:
    return {
        "created_at": iso_utc(plan.created_at),
        "state": plan.state,
        "ended_at": iso_utc(plan.ended_at),
        "instalments": [
            {
                "due": i.due.isoformat(),
                "amount": f"{i.amount:.2f}",
                "paid": f"{i.paid:.2f}",
                "state": i.state,
            }
            for i in instalments
        ],
    }
