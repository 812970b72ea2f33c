"""An account's state rebuilt from the facts in the tables.

Facts live in tables: accounts, promises, instalment plans, payments, account events and
opt-outs. The state the gate needs is rebuilt from them by replaying them through the
same pure transitions ``simulate`` applies (``orchestrator.core.state``), so a promise is
kept or broken, a plan is broken and a trigger fires exactly as in a simulation;
nothing derived is stored twice. ``load_facts`` reads the facts of many accounts in a
fixed handful of statements (each list bound as one parameter, see ``inlist``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchestrator.core.crypto import DataCipher
from orchestrator.core.hours import local_day_start
from orchestrator.core.rules import AccountRules
from orchestrator.core.state import AccountState, Contact, EventRecord, TriggerFire
from orchestrator.core.validation import VALIDATION_STEP
from orchestrator.store.accounts import account_from_row
from orchestrator.store.inlist import one_of
from orchestrator.store.tables import (
    AccountEvent,
    DeliveryEvent,
    InstalmentPlan,
    InstalmentRow,
    OccurrenceRow,
    OptOut,
    Payment,
    Placement,
    Promise,
    Send,
    UTCDateTime,
    table_of,
)

__all__ = [
    "NO_FACTS",
    "Facts",
    "Replayed",
    "attach_contacts",
    "attach_notices",
    "attach_placements",
    "load_facts",
    "next_facts",
    "replay",
]

promise_t = table_of(Promise)
plan_t = table_of(InstalmentPlan)
instalment_t = table_of(InstalmentRow)
payment_t = table_of(Payment)
event_t = table_of(AccountEvent)
optout_t = table_of(OptOut)

_EVENT_TYPES = ("conversation", "complaint", "dispute", "dispute_resolved", "cease")


@dataclass
class Facts:
    """Every fact about one account that its state depends on."""

    promises: list[Any] = field(default_factory=list)
    plans: list[tuple[Any, list[Any]]] = field(default_factory=list)
    payments: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    opt_outs: set[str] = field(default_factory=set)


NO_FACTS = Facts()  # of an account with none: never changed (``replay`` only reads)


@dataclass
class Replayed:
    state: AccountState
    rules: AccountRules
    fires: list[TriggerFire]
    next_deadline: datetime | None = None  # the first promise or instalment deadline ahead


def replay(
    account_row: Row[Any],
    cipher: DataCipher,
    rules_for: Callable[..., AccountRules],
    facts: Facts,
    now: datetime,
    *,
    sealed: bool = False,
) -> Replayed:
    """The account's state at ``now``, and every trigger event its facts caused.

    Facts are applied in time order, events before deadlines at the same instant (as in
    ``simulate``); promise and instalment deadlines (end of due date + grace, in the
    debtor's zone) fall between them.
    """
    account = account_from_row(account_row, cipher, sealed=sealed)
    current_balance, current_status = account.balance, account.status
    account.balance = current_balance + sum((p.amount for p in facts.payments), Decimal("0"))
    account.status = "open"
    rules = rules_for(account)
    state = AccountState(account, rules.zones)
    fires: list[TriggerFire] = []
    next_deadline = None
    if facts.promises or facts.plans or facts.payments or facts.events:  # most have none
        next_deadline = _apply_facts(state, rules, facts, now, fires)
    account.balance = current_balance
    if current_status == "closed" or current_balance <= 0:
        account.status = "closed"
    else:
        account.status = "open"
    state.opted_out = set(facts.opt_outs)
    return Replayed(state, rules, fires, next_deadline)


def _apply_facts(
    state: AccountState,
    rules: AccountRules,
    facts: Facts,
    now: datetime,
    fires: list[TriggerFire],
) -> datetime | None:
    """Apply the facts dated by ``now`` to ``state`` in time order, and the deadlines
    they set that fall by then, their trigger events into ``fires``: the first
    deadline still ahead."""
    zone = rules.zones.primary
    seq = itertools.count()
    items: list[tuple[datetime, int, int, str, Any]] = []
    for p in facts.promises:
        items.append((p.made_at, 0, next(seq), "promise", p))
    for plan, instalments in facts.plans:
        items.append((plan.created_at, 0, next(seq), "plan", instalments))
    for pay in facts.payments:
        items.append((pay.paid_at, 0, next(seq), "payment", pay))
    for ev in facts.events:
        items.append((ev.time, 0, next(seq), "event", ev))
    items.sort()
    deadlines: list[tuple[datetime, int]] = []
    actions: dict[int, Callable[[datetime], None]] = {}

    def deadline(when: datetime, action: Callable[[datetime], None]) -> None:
        key = next(seq)
        actions[key] = action
        heapq.heappush(deadlines, (when, key))

    def run_deadlines(until: datetime, inclusive: bool) -> None:
        while deadlines and (deadlines[0][0] < until or (inclusive and deadlines[0][0] == until)):
            when, key = heapq.heappop(deadlines)
            actions.pop(key)(when)

    def firing(transition: Callable[..., list[TriggerFire]], *args: Any) -> Callable[..., None]:
        """A deadline's action: the transition, its trigger events kept."""
        return lambda at: fires.extend(transition(*args, at))

    for when, _, _, kind, item in items:
        if when > now:
            break
        run_deadlines(when, inclusive=False)
        if kind == "promise":
            new = state.add_promise(when, item.amount, item.due, item.waived)
            fires.extend(new)
            pid = state.promises[-1].promise_id
            end = local_day_start(item.due + timedelta(days=1), zone) + rules.promise_grace
            deadline(max(end, when), firing(state.break_promise, pid))
        elif kind == "plan":
            fires.extend(state.add_plan(when, [(i.due, i.amount) for i in item]))
            plan = state.plans[-1]
            for inst in plan.instalments:
                end = local_day_start(inst.due + timedelta(days=1), zone) + rules.promise_grace
                deadline(max(end, when), firing(state.check_plan, plan.plan_id, inst.index))
        elif kind == "payment":
            fires.extend(state.add_payment(when, item.amount, item.payment_id))
        elif kind == "event":
            _apply_event(state, item)
    run_deadlines(now, inclusive=True)
    return deadlines[0][0] if deadlines else None


def _apply_event(state: AccountState, ev: Any) -> None:
    if ev.type in ("conversation", "complaint"):
        state.events.append(EventRecord(ev.time, ev.type, ev.channel))
    elif ev.type == "dispute":
        state.disputed = True
        state.events.append(EventRecord(ev.time, "dispute", ev.channel))
    elif ev.type == "dispute_resolved":
        state.disputed = False
    elif ev.type == "cease":
        state.ceased = True


_NOW: sa.BindParameter[datetime] = sa.bindparam("now")
# The facts of each kind, by account, that are in force at ``now``: each kind's table,
# the column that dates a fact, and what else makes it count.
_KIND_OF: dict[str, tuple[sa.Table, sa.ColumnElement[Any], list[sa.ColumnElement[bool]]]] = {
    "promise": (promise_t, promise_t.c.made_at, []),
    "plan": (plan_t, plan_t.c.created_at, []),
    "payment": (payment_t, payment_t.c.paid_at, []),
    "event": (event_t, event_t.c.time, [event_t.c.type.in_(_EVENT_TYPES)]),
}


def _dated(
    table: sa.Table, time: sa.ColumnElement[Any], extra: list[sa.ColumnElement[bool]]
) -> list[sa.ColumnElement[bool]]:
    return [one_of(table.c.account_id, "ids"), time <= _NOW, *extra]


# Each kind's facts in time order (as ``replay`` applies them).
_FACTS = {
    kind: sa.select(table).where(*_dated(table, time, extra)).order_by(time, table.c.id)
    for kind, (table, time, extra) in _KIND_OF.items()
}
_INSTALMENTS = (
    sa.select(instalment_t)
    .where(one_of(instalment_t.c.plan_id, "plans"))
    .order_by(instalment_t.c.due, instalment_t.c.id)
)
# Opt-outs in force: of one of these accounts, of one of their phone numbers or email
# addresses (blind indexes), or of a whole debtor.
_OPT_OUTS_IN_FORCE = [
    optout_t.c.created_at <= _NOW,
    sa.or_(optout_t.c.revoked_at.is_(None), optout_t.c.revoked_at > _NOW),
    sa.or_(
        one_of(optout_t.c.account_id, "ids"),
        one_of(optout_t.c.contact_index, "contacts"),
        sa.and_(
            one_of(optout_t.c.debtor_id, "debtors"),
            optout_t.c.account_id.is_(None),
            optout_t.c.contact_index.is_(None),
        ),
    ),
]
# In one statement: which of these accounts have facts of each kind (most have none, and
# then this stands for the four statements that would read them), and the opt-outs in
# force (kind ``opt_out``, with their channel, contact index and debtor).
_NONE = sa.null()
_HEADS = sa.union_all(
    *(
        sa.select(
            sa.literal(kind).label("kind"),
            table.c.account_id,
            _NONE.label("channel"),
            _NONE.label("contact_index"),
            _NONE.label("debtor_id"),
        )
        .where(*_dated(table, time, extra))
        .distinct()
        for kind, (table, time, extra) in _KIND_OF.items()
    ),
    sa.select(
        sa.literal("opt_out"),
        optout_t.c.account_id,
        optout_t.c.channel,
        optout_t.c.contact_index,
        optout_t.c.debtor_id,
    ).where(*_OPT_OUTS_IN_FORCE),
)


def _grouped(
    rows: Sequence[Row[Any]], cipher: DataCipher
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The accounts of ``rows`` by each index of their contacts, and by debtor."""
    by_contact: dict[str, list[str]] = defaultdict(list)
    by_debtor: dict[str, list[str]] = defaultdict(list)
    if cipher.rotating:  # each contact's index under every key
        for r in rows:
            by_debtor[r.debtor_id].append(r.account_id)
            indexes = {
                *cipher.contact_indexes(r.phone_enc, r.phone_index, "phone"),
                *cipher.contact_indexes(r.email_enc, r.email_index, "email"),
            }
            for index in indexes:
                by_contact[index].append(r.account_id)
        return by_contact, by_debtor
    # The stored indexes (``contact_indexes``), without a call a row.
    for account_id, debtor_id, phone, email in (
        (r.account_id, r.debtor_id, r.phone_index, r.email_index) for r in rows
    ):
        by_debtor[debtor_id].append(account_id)
        if phone:
            by_contact[phone].append(account_id)
        if email and email != phone:
            by_contact[email].append(account_id)
    return by_contact, by_debtor


def load_facts(
    conn: Connection, rows: Sequence[Row[Any]], now: datetime, cipher: DataCipher
) -> dict[str, Facts]:
    """Facts of these accounts, in a fixed number of statements whatever their number:
    one when none of them has a promise, plan, payment or event (the usual case).
    Opt-outs of a contact are matched under every index the contact may have while keys
    rotate (``DataCipher.contact_indexes``)."""
    ids = [r.account_id for r in rows]
    # Made for the accounts with a fact only (most have none): ``replay`` takes
    # ``NO_FACTS`` for the others, and ``facts[account_id]`` still answers for any.
    facts: dict[str, Facts] = defaultdict(Facts)
    if not ids:
        return facts
    by_contact, by_debtor = _grouped(rows, cipher)
    having: dict[str, list[str]] = defaultdict(list)
    opt_outs = []
    for head in conn.execute(
        _HEADS, {"ids": ids, "now": now, "contacts": list(by_contact), "debtors": list(by_debtor)}
    ):
        if head.kind == "opt_out":
            opt_outs.append(head)
        else:
            having[head.kind].append(head.account_id)

    def of(kind: str) -> list[Any]:
        if not having[kind]:
            return []
        return list(conn.execute(_FACTS[kind], {"ids": having[kind], "now": now}))

    for p in of("promise"):
        facts[p.account_id].promises.append(p)
    plans = of("plan")
    if plans:
        by_plan: dict[int, list[Any]] = defaultdict(list)
        for inst in conn.execute(_INSTALMENTS, {"plans": [p.id for p in plans]}):
            by_plan[inst.plan_id].append(inst)
        for plan in plans:
            facts[plan.account_id].plans.append((plan, by_plan[plan.id]))
    for pay in of("payment"):
        facts[pay.account_id].payments.append(pay)
    for ev in of("event"):
        facts[ev.account_id].events.append(ev)
    asked = set(ids)
    for o in opt_outs:
        if o.account_id in asked:
            facts[o.account_id].opt_outs.add(o.channel)
        if o.contact_index is not None:
            for account_id in by_contact.get(o.contact_index, ()):
                facts[account_id].opt_outs.add(o.channel)
        elif o.account_id is None:
            for account_id in by_debtor.get(o.debtor_id, ()):
                facts[account_id].opt_outs.add(o.channel)
    return facts


# The first planning fact dated after ``now`` of each account (a payment or promise
# recorded ahead of its date): its account's plan changes then.
_NEXT_FACTS = sa.union_all(
    *(
        sa.select(table.c.account_id, sa.func.min(time).label("at"))
        .where(one_of(table.c.account_id, "ids"), time > _NOW)
        .group_by(table.c.account_id)
        for table, time, _ in (_KIND_OF[k] for k in ("promise", "plan", "payment"))
    )
)


def next_facts(conn: Connection, ids: Sequence[str], now: datetime) -> dict[str, datetime]:
    """For each of these accounts that has one, the time of its first promise, plan or
    payment dated after ``now``."""
    out: dict[str, datetime] = {}
    if ids:
        for account_id, at in conn.execute(_NEXT_FACTS, {"ids": list(ids), "now": now}):
            out[account_id] = min(at, out.get(account_id, at))
    return out


def attach_contacts(
    conn: Connection, replayed: dict[str, Replayed], account_ids: Sequence[str], now: datetime
) -> None:
    """The messages planned steps sent these accounts up to ``now``, each with the
    statuses its provider reported (``delivery_event``) and the payment links followed
    from it (``click`` events): what segment rules on contact and responsiveness read.
    Two statements, whatever the number of accounts."""
    send_t, delivery_t = table_of(Send), table_of(DeliveryEvent)
    sends = conn.execute(
        sa.select(send_t.c.account_id, send_t.c.message_id, send_t.c.channel, send_t.c.sent_at)
        .where(
            one_of(send_t.c.account_id, "ids"),
            send_t.c.occurrence_id.is_not(None),
            send_t.c.sent_at <= sa.bindparam("now", type_=UTCDateTime()),
        )
        .order_by(send_t.c.sent_at, send_t.c.id),
        {"ids": list(account_ids), "now": now},
    ).all()
    if not sends:
        return
    by_message: dict[str, Contact] = {}
    for s in sends:
        contact = Contact(s.sent_at, s.channel, s.message_id)
        by_message[s.message_id] = contact
        replayed[s.account_id].state.contacts.append(contact)
    statuses = conn.execute(
        sa.select(delivery_t.c.message_id, delivery_t.c.status, delivery_t.c.time)
        .where(
            one_of(delivery_t.c.message_id, "messages"),
            delivery_t.c.time <= sa.bindparam("now", type_=UTCDateTime()),
        )
        .order_by(delivery_t.c.time, delivery_t.c.id),
        {"messages": list(by_message), "now": now},
    ).all()
    for d in statuses:
        by_message[d.message_id].statuses.append((d.time, d.status))


def attach_notices(
    conn: Connection, replayed: dict[str, Replayed], account_ids: Sequence[str], now: datetime
) -> None:
    """When the validation notice (``core.validation``) of each of these accounts was
    handed to its channel, if it was by ``now``: its first send not ``failed`` (in flight
    and ``ambiguous`` count, as they do toward limits). One statement."""
    send_t, occ_t = table_of(Send), table_of(OccurrenceRow)
    rows = conn.execute(
        sa.select(send_t.c.account_id, sa.func.min(send_t.c.sent_at).label("at"))
        .select_from(send_t.join(occ_t, occ_t.c.id == send_t.c.occurrence_id))
        .where(
            one_of(send_t.c.account_id, "ids"),
            occ_t.c.step_id == VALIDATION_STEP,
            send_t.c.status != "failed",
            send_t.c.sent_at <= sa.bindparam("now", type_=UTCDateTime()),
        )
        .group_by(send_t.c.account_id),
        {"ids": list(account_ids), "now": now},
    ).all()
    for account_id, at in rows:
        replayed[account_id].state.notice_sent_at = at


def attach_placements(
    conn: Connection, replayed: dict[str, Replayed], account_ids: Sequence[str], now: datetime
) -> None:
    """The agency each of these accounts is placed with at ``now`` (a placement made by
    then and not recalled by then), if any. One statement."""
    placement_t = table_of(Placement)
    at = sa.bindparam("now", type_=UTCDateTime())
    rows = conn.execute(
        sa.select(placement_t.c.account_id, placement_t.c.agency)
        .where(
            one_of(placement_t.c.account_id, "ids"),
            placement_t.c.placed_at <= at,
            sa.or_(placement_t.c.recalled_at.is_(None), placement_t.c.recalled_at > at),
        )
        .order_by(placement_t.c.placed_at, placement_t.c.id),
        {"ids": list(account_ids), "now": now},
    ).all()
    for account_id, agency in rows:
        replayed[account_id].state.placed = agency
