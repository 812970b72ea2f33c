"""Reading and writing account state through the tables, with personal data decrypted
only here: load accounts as ``domain.Account``, record decisions, build the timeline
of ``account show``, and re-encrypt everything on ``keys rotate``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from channels.base import DeliveryStatus, can_move
from orchestrator.core.account import Account
from orchestrator.core.crypto import DataCipher, InvalidToken, mask_phone
from orchestrator.core.records import DecisionRecord, iso_utc
from orchestrator.core.zones import stored_phone_zones
from orchestrator.store.tables import (
    ENCRYPTED_COLUMNS,
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

__all__ = [
    "account_from_row",
    "account_timeline",
    "decision_values",
    "iter_accounts",
    "load_account",
    "record_decision",
    "rotate_keys",
]

account_t = table_of(AccountRow)
decision_t = table_of(Decision)


def account_from_row(row: Row[Any] | Any, cipher: DataCipher) -> Account:
    """A decrypted ``Account`` from an ``account`` row."""
    dec = cipher.decrypt
    return Account(
        account_id=row.account_id,
        debtor_id=row.debtor_id,
        name=dec(row.name_enc) or "",
        phone=dec(row.phone_enc),
        email=dec(row.email_enc),
        address_line1=dec(row.address_line1_enc),
        address_line2=dec(row.address_line2_enc),
        city=row.city,
        region=row.region,
        postal_code=row.postal_code,
        country=row.country,
        timezone=row.timezone,
        locale=row.locale,
        email_type=row.email_type,
        currency=row.currency,
        balance=row.balance,
        due_date=row.due_date,
        creditor=row.creditor,
        reference=row.reference,
        consent_sms=row.consent_sms,
        consent_voice=row.consent_voice,
        consent_email=row.consent_email,
        segment=row.segment,
        status=row.status,
        created_at=row.created_at,
        phone_zones=stored_phone_zones(row.phone_zones),
    )


def load_account(conn: Connection, cipher: DataCipher, account_id: str) -> Account | None:
    row = conn.execute(sa.select(account_t).where(account_t.c.account_id == account_id)).first()
    return None if row is None else account_from_row(row, cipher)


def iter_accounts(
    engine: Engine, cipher: DataCipher, *, status: str | None = "open", batch: int = 1000
) -> Iterator[Account]:
    """Every account (by default the open ones), in ``account_id`` order, paged by key so
    memory stays flat however large the portfolio."""
    after = ""
    while True:
        query = sa.select(account_t).where(account_t.c.account_id > after)
        if status is not None:
            query = query.where(account_t.c.status == status)
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(account_t.c.account_id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield account_from_row(row, cipher)
        after = rows[-1].account_id


def decision_values(record: DecisionRecord, *, occurrence_id: int | None = None) -> dict[str, Any]:
    """The ``decision`` row of one record; ``record.to`` is stored masked, never in clear."""
    to = record.to
    masked = mask_phone(to) if to and to.startswith("+") else _mask_any(to)
    return {
        "occurrence_id": occurrence_id,
        "time": record.time,
        "local_time": record.local_time,
        "account_id": record.account,
        "debtor_id": record.debtor,
        "stage": record.stage,
        "step": record.step,
        "channel": record.channel,
        "kind": record.kind,
        "decision": str(record.decision),
        "reason": record.reason,
        "until": record.until,
        "message_id": record.message_id,
        "to_masked": masked,
        "subject": record.subject,
    }


def record_decision(
    conn: Connection, record: DecisionRecord, *, occurrence_id: int | None = None
) -> int:
    """Insert one decision; ``record.to`` is stored masked, never in clear."""
    result = conn.execute(
        decision_t.insert().values(decision_values(record, occurrence_id=occurrence_id))
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _mask_any(to: str | None) -> str | None:
    from orchestrator.core.crypto import mask_email

    if not to:
        return None
    if "@" in to:
        return mask_email(to)
    return "***"  # a postal address or anything else: never stored


def forward_deliveries(conn: Connection, account_id: str) -> list[Any]:
    """The account's delivery events that moved their send forward, in the order they
    came (docs/http.md). A callback that would move a send back (a late ``sent`` after
    ``delivered``) is acknowledged and stored for audit, but it changed nothing: shown
    among the others it would read as if the message had gone back in flight."""
    send_t, delivery_t = table_of(Send), table_of(DeliveryEvent)
    rows = conn.execute(
        sa.select(delivery_t.c.send_id, delivery_t.c.time, delivery_t.c.status,
                  send_t.c.channel, send_t.c.message_id)
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
    conn: Connection, cipher: DataCipher, account_id: str, *, today: date
) -> dict[str, Any] | None:
    """The ``account show --json`` object (docs/cli.md), or ``None`` for an unknown id."""
    row = conn.execute(sa.select(account_t).where(account_t.c.account_id == account_id)).first()
    if row is None:
        return None
    promise_t, payment_t = table_of(Promise), table_of(Payment)
    plan_t, instalment_t = table_of(InstalmentPlan), table_of(InstalmentRow)
    opt_t, event_t = table_of(OptOut), table_of(AccountEvent)

    promises = conn.execute(
        sa.select(promise_t)
        .where(promise_t.c.account_id == account_id)
        .order_by(promise_t.c.made_at, promise_t.c.id)
    ).all()
    plans = conn.execute(
        sa.select(plan_t)
        .where(plan_t.c.account_id == account_id)
        .order_by(plan_t.c.created_at, plan_t.c.id)
    ).all()
    instalments: dict[int, list[Any]] = {p.id: [] for p in plans}
    if plans:
        for inst in conn.execute(
            sa.select(instalment_t)
            .where(instalment_t.c.plan_id.in_(list(instalments)))
            .order_by(instalment_t.c.due, instalment_t.c.id)
        ):
            instalments[inst.plan_id].append(inst)
    payments = conn.execute(
        sa.select(payment_t)
        .where(payment_t.c.account_id == account_id)
        .order_by(payment_t.c.paid_at, payment_t.c.id)
    ).all()
    opt_rows = conn.execute(
        sa.select(opt_t)
        .where(
            sa.or_(
                opt_t.c.account_id == account_id,
                sa.and_(opt_t.c.account_id.is_(None), opt_t.c.debtor_id == row.debtor_id),
            )
        )
        .order_by(opt_t.c.created_at, opt_t.c.id)
    ).all()
    phones = cipher.contact_indexes(row.phone_enc, row.phone_index, "phone")
    contact = {"sms": phones, "voice": phones,
               "email": cipher.contact_indexes(row.email_enc, row.email_index, "email")}
    opt_outs = sorted(
        {
            o.channel
            for o in opt_rows
            if o.revoked_at is None
            and (
                o.contact_index is None
                or o.account_id == account_id
                or o.contact_index in contact.get(o.channel, ())
            )
        }
    )
    decisions = conn.execute(
        sa.select(decision_t)
        .where(decision_t.c.account_id == account_id)
        .order_by(decision_t.c.time, decision_t.c.id)
    ).all()

    events: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(at: datetime, type_: str, channel: Any, status: Any, message_id: Any) -> None:
        events.append(
            (
                at,
                len(events),
                {
                    "time": iso_utc(at),
                    "type": type_,
                    "channel": channel,
                    "status": status,
                    "message_id": message_id,
                },
            )
        )

    for d in forward_deliveries(conn, account_id):
        add(d.time, "delivery", d.channel, d.status, d.message_id)
    for e in conn.execute(sa.select(event_t).where(event_t.c.account_id == account_id)):
        detail = e.detail or {}
        add(e.time, e.type, e.channel, detail.get("status") or detail.get("kind"),
            detail.get("message_id"))
        if e.type == "inbound_sms" and detail.get("body"):
            # The person's own words, for people to read (what was not a keyword above all).
            events[-1][2]["text"] = _readable(cipher, detail["body"])
    for o in opt_rows:
        add(o.created_at, "opt_out", o.channel, None, None)
        if o.revoked_at is not None:
            add(o.revoked_at, "opt_in", o.channel, None, None)
    for p in payments:
        add(p.paid_at, "payment", None, None, None)
    for pr in promises:
        add(pr.made_at, "promise", None, pr.state, None)
    for pl in plans:
        add(pl.created_at, "plan", None, pl.state, None)
    events.sort(key=lambda item: (item[0], item[1]))

    shown: dict[str, Any] = {
        "account_id": row.account_id,
        "debtor_id": row.debtor_id,
        "status": row.status,
        "stage": row.stage,
        "dpd": _dpd(row.due_date, today),
        "balance": f"{row.balance:.2f}",
        "promises": [
            {"amount": f"{p.amount:.2f}", "due": p.due.isoformat(), "state": p.state,
             "made_at": iso_utc(p.made_at)}
            for p in promises
        ],
        "payments": [
            {"amount": f"{p.amount:.2f}", "paid_at": iso_utc(p.paid_at)} for p in payments
        ],
        "opt_outs": opt_outs,
        "decisions": [
            {
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
            for d in decisions
        ],
        "events": [item[2] for item in events],
    }
    if row.stage is not None:  # since when, and owing what then (docs/cli.md)
        shown["stage_entered_at"] = iso_utc(row.stage_entered_at)
        shown["balance_at_stage_entry"] = (None if row.balance_at_stage_entry is None
                                           else f"{row.balance_at_stage_entry:.2f}")
    if plans:  # payment plans: shown where there are any (docs/cli.md)
        shown["plans"] = [
            {"created_at": iso_utc(p.created_at), "state": p.state,
             "ended_at": iso_utc(p.ended_at),
             "instalments": [
                 {"due": i.due.isoformat(), "amount": f"{i.amount:.2f}",
                  "paid": f"{i.paid:.2f}", "state": i.state}
                 for i in instalments[p.id]]}
            for p in plans
        ]
    return shown


def rotate_keys(
    engine: Engine,
    cipher: DataCipher,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> int:
    """Re-encrypt every token under the first key and recompute every blind index with
    the current index key, in one transaction. Returns the number of rows rewritten."""
    now = now or datetime.now(UTC)
    index_map: dict[str, str] = {}  # old index -> current index, for sends and opt-outs
    done = 0
    with engine.begin() as conn:
        for table_name, columns in ENCRYPTED_COLUMNS.items():
            table = AccountRow.metadata.tables[table_name]
            pk = next(iter(table.primary_key.columns))
            after = ""
            update = (
                table.update()
                .where(pk == sa.bindparam("b_pk"))
                .values(
                    {
                        c: sa.bindparam(c)
                        for c in (*columns, "phone_index", "email_index", "personal_digest")
                    }
                )
            )
            while True:
                rows = conn.execute(
                    sa.select(table).where(pk > after).order_by(pk).limit(batch)
                ).all()
                if not rows:
                    break
                params = []
                for r in rows:
                    clear = {c: cipher.decrypt(getattr(r, c)) for c in columns}
                    values: dict[str, Any] = {"b_pk": getattr(r, pk.name)}
                    values.update({c: cipher.rotate(getattr(r, c)) for c in columns})
                    for kind, col in (("phone", "phone_enc"), ("email", "email_enc")):
                        current = cipher.index(clear[col], kind)
                        values[f"{kind}_index"] = current
                        if current:
                            for old in cipher.index_candidates(clear[col], kind):
                                index_map[old] = current
                            old_stored = getattr(r, f"{kind}_index")
                            if old_stored:
                                index_map[old_stored] = current
                    personal = (
                        [clear.get(f"{f}_enc") for f in ("name", "phone", "email")]
                        + [clear.get("address_line1_enc"), clear.get("address_line2_enc")]
                        if table_name == "account"
                        else [clear.get("name_enc"), clear.get("phone_enc"), clear.get("email_enc")]
                    )
                    values["personal_digest"] = cipher.digest(personal)
                    params.append(values)
                conn.execute(update, params)
                done += len(params)
                after = getattr(rows[-1], pk.name)
                if progress:
                    progress(done)
        _remap(conn, table_of(Send), "to_index", index_map)
        _remap(conn, table_of(OptOut), "contact_index", index_map)
        from orchestrator.store.tables import AuditLog

        conn.execute(
            table_of(AuditLog)
            .insert()
            .values(
                time=now,
                actor="cli",
                action="keys.rotated",
                object_type="database",
                object_id=None,
                detail={"rows": done},
            )
        )
    return done


def _remap(conn: Connection, table: sa.Table, column: str, index_map: dict[str, str]) -> None:
    changes = {old: new for old, new in index_map.items() if old != new}
    if not changes:
        return
    col = table.c[column]
    stmt = (
        table.update().where(col == sa.bindparam("b_old")).values({column: sa.bindparam("b_new")})
    )
    conn.execute(stmt, [{"b_old": old, "b_new": new} for old, new in changes.items()])
