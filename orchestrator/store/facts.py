"""Recording what happened to an account: payments, promises, events, opt-outs, deliveries.

These are the facts the runner replays into account state (``orchestrator.store.replay``);
the HTTP server and the REST API write them through here, each in the caller's
transaction, so a rejected request writes nothing. Every writer is idempotent where the
outside world repeats itself: payments by ``payment_id``, delivery events by the
provider's event key, opt-outs by (contact, channel). A fact that can change what is
planned (a payment, a promise) also marks its account to be planned again (``replan``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from channels.base import DeliveryStatus, can_move
from orchestrator.core.crypto import DataCipher
from orchestrator.core.records import Reason
from orchestrator.store import audit
from orchestrator.store.db import insert_for
from orchestrator.store.inlist import one_of
from orchestrator.store.tables import (
    AccountEvent,
    AccountPlan,
    AccountRow,
    Decision,
    DeliveryEvent,
    InboundMessage,
    InstalmentPlan,
    InstalmentRow,
    OptOut,
    Payment,
    Promise,
    Send,
    table_of,
)

account_t = table_of(AccountRow)
account_plan_t = table_of(AccountPlan)
payment_t = table_of(Payment)
promise_t = table_of(Promise)
plan_t = table_of(InstalmentPlan)
instalment_t = table_of(InstalmentRow)
event_t = table_of(AccountEvent)
optout_t = table_of(OptOut)
send_t = table_of(Send)
decision_t = table_of(Decision)
delivery_t = table_of(DeliveryEvent)
inbound_t = table_of(InboundMessage)

EVENT_TYPES = (
    "conversation",
    "dispute",
    "dispute_resolved",
    "cease",
    "complaint",
    "agency_contact",  # a contact a collection agency reported: limits may count it
)


def replan(conn: Connection, account_ids: Iterable[str]) -> None:
    """These accounts' plans may have changed (a promise, a payment, new account data):
    the planner's next round replays them, and ``plan_seq`` tells a planner that read
    them before this change not to mark them planned. Every writer of such facts calls
    it, in the transaction that writes them."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    statement = insert_for(conn)(account_plan_t).values(
        account_id=sa.bindparam("b_id"), plan_due_at=None, plan_seq=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=["account_id"],
        set_={"plan_due_at": None, "plan_seq": account_plan_t.c.plan_seq + 1},
    )
    conn.execute(statement, [{"b_id": i} for i in ids])


def account_row(conn: Connection, account_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(account_t).where(account_t.c.account_id == account_id)).first()


def accounts_by_phone(conn: Connection, cipher: DataCipher, phone: str) -> list[Row[Any]]:
    """Every account reached at this phone number (by its blind index under any key)."""
    candidates = cipher.index_candidates(phone, "phone")
    if not candidates:
        return []
    return list(
        conn.execute(
            sa.select(account_t)
            .where(account_t.c.phone_index.in_(candidates))
            .order_by(account_t.c.account_id)
        ).all()
    )


def record_payment(
    conn: Connection,
    *,
    account_id: str,
    payment_id: str,
    amount: Decimal,
    currency: str | None,
    paid_at: datetime,
    source: str,
    now: datetime,
) -> bool:
    """A payment, once per ``payment_id``: the balance goes down (never below zero) and a
    payment that covers it closes the account. ``False`` if it was already recorded."""
    inserted = conn.execute(
        insert_for(conn)(payment_t)
        .values(
            payment_id=payment_id,
            account_id=account_id,
            amount=amount,
            currency=currency,
            paid_at=paid_at,
            source=source,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["payment_id"])
        .returning(payment_t.c.id)
    ).first()
    if inserted is None:
        return False
    balance = conn.execute(
        sa.select(account_t.c.balance).where(account_t.c.account_id == account_id)
    ).scalar_one()
    left = max(balance - amount, Decimal("0.00"))
    values: dict[str, Any] = {"balance": left, "updated_at": now}
    if left <= 0:
        values["status"] = "closed"
    conn.execute(account_t.update().where(account_t.c.account_id == account_id).values(values))
    replan(conn, [account_id])
    return True


def record_promise(
    conn: Connection,
    *,
    account_id: str,
    amount: Decimal,
    due: date,
    made_at: datetime,
    source: str | None = None,
    waived: Decimal | None = None,
) -> int:
    """A promise to pay; ``source``: where it was made (``api``, ``self_service``);
    ``waived``: a settlement's waived amount (the promise pays the rest)."""
    result = conn.execute(
        promise_t.insert().values(
            account_id=account_id,
            amount=amount,
            due=due,
            made_at=made_at,
            state="pending",
            source=source,
            waived=waived,
        )
    )
    replan(conn, [account_id])
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def record_plan(
    conn: Connection,
    *,
    account_id: str,
    instalments: Sequence[tuple[date, Decimal]],
    created_at: datetime,
    source: str | None = None,
) -> int:
    """A payment plan agreed with the debtor: its instalments (due date, amount), in due
    order. While it is kept only service messages go out (a reminder before each
    instalment, thanks for each payment); a missed instalment breaks it. Replayed like a
    scenario's ``plan`` event. Returns the plan's id."""
    if not instalments:
        raise ValueError("a plan needs at least one instalment")
    result = conn.execute(
        plan_t.insert().values(
            account_id=account_id, created_at=created_at, state="active", source=source
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    plan_id = int(key[0])
    conn.execute(
        instalment_t.insert(),
        [
            {
                "plan_id": plan_id,
                "due": due,
                "amount": amount,
                "paid": Decimal("0.00"),
                "state": "pending",
            }
            for due, amount in sorted(instalments, key=lambda item: item[0])
        ],
    )
    replan(conn, [account_id])
    return plan_id


def replied_since(conn: Connection, account_ids: Sequence[str], step: str, since: datetime) -> bool:
    """Whether a reply of ``step`` (an opt-out confirmation) went to one of these accounts
    at or after ``since``."""
    return (
        conn.execute(
            sa.select(decision_t.c.id)
            .where(
                one_of(decision_t.c.account_id, "ids"),
                decision_t.c.step == step,
                decision_t.c.decision == "sent",
                decision_t.c.time >= since,
            )
            .limit(1),
            {"ids": list(account_ids)},
        ).first()
        is not None
    )


def record_reply_send(
    conn: Connection,
    *,
    message_id: str,
    account_id: str,
    debtor_id: str,
    to_index: str | None,
    at: datetime,
) -> None:
    """The send row of a reply to the person's own text (it went out in our answer to
    the provider's webhook): limits count it like any text."""
    conn.execute(
        send_t.insert().values(
            message_id=message_id,
            account_id=account_id,
            debtor_id=debtor_id,
            channel="sms",
            status="sent",
            sent_at=at,
            status_at=at,
            to_index=to_index,
        )
    )


def record_event(
    conn: Connection,
    *,
    account_id: str,
    type_: str,
    at: datetime,
    channel: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        event_t.insert().values(
            account_id=account_id, type=type_, channel=channel, time=at, detail=detail
        )
    )


def first_inbound(conn: Connection, *, provider_id: str, channel: str, at: datetime) -> bool:
    """Note a provider's inbound message id; ``False`` if it was noted before (a repeat
    that must change nothing)."""
    inserted = conn.execute(
        insert_for(conn)(inbound_t)
        .values(provider_id=provider_id, channel=channel, received_at=at)
        .on_conflict_do_nothing(index_elements=["provider_id"])
        .returning(inbound_t.c.id)
    ).first()
    return inserted is not None


def opt_out(
    conn: Connection,
    *,
    debtor_id: str,
    account_id: str | None,
    channel: str,
    contact_index: str | None,
    source: str,
    at: datetime,
    about: Sequence[str] | None = None,
    actor: str | None = None,
) -> bool:
    """Opt a contact (or, with no contact, the debtor) out of a channel. ``False`` if an
    active opt-out already covers it. A new one is audited, with ``actor`` (default:
    ``source``) as its actor, once per account of ``about`` (default: ``account_id``'s)."""
    active = conn.execute(
        sa.select(optout_t.c.id).where(
            optout_t.c.channel == channel,
            optout_t.c.revoked_at.is_(None),
            optout_t.c.contact_index == contact_index
            if contact_index is not None
            else sa.and_(optout_t.c.debtor_id == debtor_id, optout_t.c.contact_index.is_(None)),
        )
    ).first()
    if active is not None:
        return False
    conn.execute(
        optout_t.insert().values(
            debtor_id=debtor_id,
            account_id=account_id,
            channel=channel,
            contact_index=contact_index,
            source=source,
            created_at=at,
        )
    )
    accounts: list[str | None] = list(about) if about is not None else [account_id]
    for account in accounts or [None]:
        audit.write(
            conn,
            now=at,
            actor=actor or source,
            action="opt_out.added",
            object_type="opt_out",
            object_id=channel,
            account_id=account,
            detail={
                "channel": channel,
                "debtor_id": debtor_id,
                "contact": contact_index is not None,
            },
        )
    return True


def opt_out_account(
    conn: Connection,
    row: Row[Any],
    channel: str,
    *,
    source: str,
    at: datetime,
    actor: str | None = None,
) -> bool:
    """An opt-out asked for on an account (the REST API, an agent): for a text, a call or
    an email it is the number's or address's, and reaches every account at it whichever
    debtor it belongs to (as ``simulate`` applies it); a letter's, or one for an account
    without that contact, reaches that account only."""
    index = row.email_index if channel == "email" else row.phone_index
    if channel in ("sms", "voice", "email") and index is not None:
        return opt_out(
            conn,
            debtor_id=row.debtor_id,
            account_id=None,
            channel=channel,
            contact_index=index,
            source=source,
            at=at,
            about=[row.account_id],
            actor=actor,
        )
    return opt_out(
        conn,
        debtor_id=row.debtor_id,
        account_id=row.account_id,
        channel=channel,
        contact_index=None,
        source=source,
        at=at,
        actor=actor,
    )


def opt_in(conn: Connection, *, contact_indexes: list[str], channel: str, at: datetime) -> int:
    """Revoke the active opt-outs of these contacts from a channel (START)."""
    if not contact_indexes:
        return 0
    return (
        conn.execute(
            optout_t.update()
            .where(
                optout_t.c.channel == channel,
                optout_t.c.revoked_at.is_(None),
                optout_t.c.contact_index.in_(contact_indexes),
            )
            .values(revoked_at=at)
        ).rowcount
        or 0
    )


_WENT_OUT = frozenset(
    {
        DeliveryStatus.queued,
        DeliveryStatus.sending,
        DeliveryStatus.sent,
        DeliveryStatus.delivered,
        DeliveryStatus.undelivered,
        DeliveryStatus.ringing,
        DeliveryStatus.in_progress,
        DeliveryStatus.answered,
        DeliveryStatus.machine,
        DeliveryStatus.no_answer,
        DeliveryStatus.busy,
        DeliveryStatus.opened,
        DeliveryStatus.clicked,
    }
)


def _same_offset(at: datetime, local_time: str | None) -> str | None:
    """``at`` as the debtor's local time, at the UTC offset of an earlier record of theirs
    (the zone itself is not stored with the record)."""
    if not local_time:
        return None
    try:
        zone = datetime.fromisoformat(local_time).tzinfo
    except ValueError:
        return None
    return at.astimezone(zone).isoformat() if zone is not None else None


def _resolve_ambiguous(conn: Connection, send: Row[Any], at: datetime) -> None:
    """The provider reports on a send we could not confirm: it did go out. Record it."""
    from orchestrator.store.tables import Decision, OccurrenceRow

    decision_t, occurrence_t = table_of(Decision), table_of(OccurrenceRow)
    last = conn.execute(
        sa.select(decision_t)
        .where(decision_t.c.message_id == send.message_id, decision_t.c.decision == "ambiguous")
        .order_by(decision_t.c.id.desc())
    ).first()
    if last is not None:
        values = {c: getattr(last, c) for c in last._fields if c != "id"}
        values.update(
            time=at,
            local_time=_same_offset(at, last.local_time),
            decision="sent",
            reason=str(Reason.confirmed_by_provider),
            until=None,
        )
        conn.execute(decision_t.insert().values(values))
    if send.occurrence_id is not None:
        conn.execute(
            occurrence_t.update()
            .where(occurrence_t.c.id == send.occurrence_id, occurrence_t.c.state == "ambiguous")
            .values(state="sent", updated_at=at)
        )


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str  # recorded | duplicate | unknown
    send_id: int | None = None
    account_id: str | None = None
    status: str | None = None  # the send's status afterwards


def _as_delivery_status(status: str) -> DeliveryStatus | None:
    """A send's stored status as a provider status (``None``: nothing heard yet)."""
    try:
        return DeliveryStatus(status)
    except ValueError:  # sending / ambiguous / failed: the runner's own states
        return None if status in ("sending", "ambiguous") else DeliveryStatus.failed


_SEND_BY_PROVIDER = (
    sa.select(send_t).where(send_t.c.provider_id == sa.bindparam("provider_id")).with_for_update()
)
_SEND_BY_MESSAGE = (
    sa.select(send_t).where(send_t.c.message_id == sa.bindparam("message_id")).with_for_update()
)


def record_delivery(
    conn: Connection,
    *,
    provider_id: str | None,
    message_id: str | None,
    status: DeliveryStatus,
    event_key: str,
    at: datetime,
    raw: dict[str, Any] | None = None,
) -> DeliveryResult:
    """A provider's status callback: stored once per ``event_key``; the send's status
    moves forward only (a final status is never downgraded by a late callback)."""
    send = None
    # Locked (PostgreSQL) so that two callbacks for one send, taken by two server
    # processes at once, move its status one after the other.
    if provider_id:
        send = conn.execute(_SEND_BY_PROVIDER, {"provider_id": provider_id}).first()
    if send is None and message_id:
        send = conn.execute(_SEND_BY_MESSAGE, {"message_id": message_id}).first()
    if send is None:
        return DeliveryResult("unknown")
    inserted = conn.execute(
        insert_for(conn)(delivery_t)
        .values(
            provider_event_key=event_key,
            send_id=send.id,
            message_id=send.message_id,
            status=str(status),
            time=at,
            raw=raw,
        )
        .on_conflict_do_nothing(index_elements=["provider_event_key"])
        .returning(delivery_t.c.id)
    ).first()
    if inserted is None:
        return DeliveryResult("duplicate", send.id, send.account_id, send.status)
    old = _as_delivery_status(send.status)
    new_status = send.status
    if send.status == "ambiguous" and status in _WENT_OUT:
        _resolve_ambiguous(conn, send, at)
    if can_move(old, status):
        new_status = str(status)
        values: dict[str, Any] = {"status": new_status, "status_at": at}
        if provider_id and send.provider_id is None:
            values["provider_id"] = provider_id
        conn.execute(send_t.update().where(send_t.c.id == send.id).values(values))
    return DeliveryResult("recorded", send.id, send.account_id, new_status)


@dataclass(frozen=True)
class Delivery:
    """One provider status callback, as ``record_delivery`` takes it."""

    provider_id: str | None
    message_id: str | None
    status: DeliveryStatus
    event_key: str
    at: datetime
    raw: dict[str, Any] | None = None


_SENDS_BY_PROVIDERS = (
    sa.select(send_t)
    .where(send_t.c.provider_id.in_(sa.bindparam("provider_ids", expanding=True)))
    .order_by(send_t.c.id)
    .with_for_update()
)
_MOVE_SEND = (
    send_t.update()
    .where(send_t.c.id == sa.bindparam("b_id"))
    .values(status=sa.bindparam("b_status"), status_at=sa.bindparam("b_at"))
)


def record_deliveries(conn: Connection, deliveries: Sequence[Delivery]) -> list[DeliveryResult]:
    """Many status callbacks, with the results ``record_delivery`` would give taking them
    one after another in this order, in three statements for the usual case (sends found
    by provider id): their sends, locked in id order; the new events in one insert; the
    status moves. The rest (a send found only by our message id, an ambiguous send
    being resolved) go through ``record_delivery`` one by one."""
    provider_ids = sorted({d.provider_id for d in deliveries if d.provider_id})
    sends = (
        {
            r.provider_id: r
            for r in conn.execute(_SENDS_BY_PROVIDERS, {"provider_ids": provider_ids})
        }
        if provider_ids
        else {}
    )

    usual: list[Row[Any] | None] = []  # the send, when the usual path takes it
    for d in deliveries:
        send = sends.get(d.provider_id) if d.provider_id else None
        usual.append(send if send is not None and send.status != "ambiguous" else None)
    first_of_key: dict[str, tuple[int, Row[Any]]] = {}
    for i, (d, send) in enumerate(zip(deliveries, usual, strict=True)):
        if send is not None:
            first_of_key.setdefault(d.event_key, (i, send))
    inserted: set[str] = set()
    if first_of_key:
        rows = [
            {
                "provider_event_key": deliveries[i].event_key,
                "send_id": send.id,
                "message_id": send.message_id,
                "status": str(deliveries[i].status),
                "time": deliveries[i].at,
                "raw": deliveries[i].raw,
            }
            for i, send in first_of_key.values()
        ]
        inserted = set(
            conn.execute(
                insert_for(conn)(delivery_t)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["provider_event_key"])
                .returning(delivery_t.c.provider_event_key)
            ).scalars()
        )
    status_now = {pid: send.status for pid, send in sends.items()}
    moves: dict[int, dict[str, Any]] = {}
    results: list[DeliveryResult] = []
    for i, (d, send) in enumerate(zip(deliveries, usual, strict=True)):
        if send is None:
            results.append(
                record_delivery(
                    conn,
                    provider_id=d.provider_id,
                    message_id=d.message_id,
                    status=d.status,
                    event_key=d.event_key,
                    at=d.at,
                    raw=d.raw,
                )
            )
            continue
        pid = send.provider_id
        if first_of_key[d.event_key][0] != i or d.event_key not in inserted:
            results.append(DeliveryResult("duplicate", send.id, send.account_id, status_now[pid]))
            continue
        if can_move(_as_delivery_status(status_now[pid]), d.status):
            status_now[pid] = str(d.status)
            moves[send.id] = {"b_id": send.id, "b_status": str(d.status), "b_at": d.at}
        results.append(DeliveryResult("recorded", send.id, send.account_id, status_now[pid]))
    if moves:
        conn.execute(_MOVE_SEND, list(moves.values()))
    return results
