"""An inbound text's effect in the database (docs/http.md): what the live server
does with ``STOP``, ``START`` and ``HELP``, as ``simulate`` does it (``events``).

Each provider message id is acted on once (``facts.first_inbound``). The text is recorded
on every account reached at the number (``inbound_sms`` events, the body encrypted, for
people to read). An opt-out stops SMS to every account at that number, whichever debtor
it belongs to: the person holding the phone asked; ``START`` undoes it. Under the policy's
``opt_out_scope: automated`` the gate lets it stop prerecorded calls too. A revocation in
the person's own words ("stop calling me") stops texts and calls whatever the scope. A
text that is no keyword makes a task for a person under the policy's ``tasks:`` rules (a
hardship task if it holds a hardship phrase, else an inbound reply task). The replies
(the opt-out confirmation, at most once per number in ``CONFIRMATION_WINDOW``, and the
help text) answer the person's own message, so hours and limits do not hold them back;
each is recorded as a ``sent`` decision (kind ``notice``) and a send under the lowest
account at the number, and counts toward limits like any text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from orchestrator.config.models import AUTOMATED_CHANNELS, Kind, TaskPolicy
from orchestrator.core.crypto import DataCipher
from orchestrator.core.keywords import (
    CONFIRMATION_WINDOW,
    HELP_REPLY,
    OPT_OUT_CONFIRMATION,
    InboundKind,
    classify_inbound,
    reply_text,
)
from orchestrator.core.records import DecisionKind, DecisionRecord, iso_local
from orchestrator.core.tasks import hardship_phrase
from orchestrator.dispatch.decider import Decider, message_id_for
from orchestrator.store import audit, facts, tasks
from orchestrator.store.accounts import account_from_row, record_decision

__all__ = ["handle_inbound"]


def handle_inbound(
    conn: Connection,
    decider: Decider,
    cipher: DataCipher,
    phone: str,
    body: str,
    now: datetime,
    *,
    message_sid: str,
) -> list[str]:
    """Record an inbound text from ``phone`` and act on its keyword; returns the replies
    to send back (already recorded). A message id seen before (a provider's retry, or a
    captured START replayed after a later STOP) changes nothing and gets no reply."""
    if not facts.first_inbound(conn, provider_id=message_sid, channel="sms", at=now):
        return []
    policy = decider.config.policy
    rows = facts.accounts_by_phone(conn, cipher, phone)
    what = classify_inbound(body, policy.revocations)
    indexes = cipher.index_candidates(phone, "phone")
    for row in rows:
        facts.record_event(
            conn,
            account_id=row.account_id,
            type_="inbound_sms",
            at=now,
            channel="sms",
            detail={"kind": str(what), "body": cipher.encrypt(body)},
        )
    if what == InboundKind.other:
        _make_tasks(conn, policy.tasks, rows, body, message_sid, now)
    if what in (InboundKind.opt_out, InboundKind.revocation):
        # In their own words, the person may mean calls or texts: both stop.
        channels = AUTOMATED_CHANNELS if what == InboundKind.revocation else {"sms"}
        for debtor in sorted({r.debtor_id for r in rows}):
            for channel in sorted(channels):
                facts.opt_out(
                    conn,
                    debtor_id=debtor,
                    account_id=None,
                    channel=channel,
                    contact_index=indexes[0] if indexes else None,
                    source="inbound_sms",
                    at=now,
                    about=[r.account_id for r in rows if r.debtor_id == debtor],
                )
        if (
            rows
            and policy.opt_out_confirmation
            and not facts.replied_since(
                conn, [r.account_id for r in rows], OPT_OUT_CONFIRMATION, now - CONFIRMATION_WINDOW
            )
        ):
            return [_reply(conn, decider, cipher, rows[0], phone, OPT_OUT_CONFIRMATION, now)]
    elif what == InboundKind.opt_in:
        for channel in sorted(policy.opt_out_channels("sms")):
            if facts.opt_in(conn, contact_indexes=indexes, channel=channel, at=now):
                _audit_opt_in(conn, rows, channel, now)
    elif what == InboundKind.help and rows:
        return [_reply(conn, decider, cipher, rows[0], phone, HELP_REPLY, now)]
    return []


def _make_tasks(
    conn: Connection, policy: TaskPolicy, rows: list[Any], body: str, sid: str, now: datetime
) -> None:
    """A text that is no keyword: a hardship task if it holds a hardship phrase, else an
    inbound reply task (each under its rule, if the policy has one)."""
    hardship = hardship_phrase(body, policy.hardship_phrases) is not None
    rule = policy.rules.hardship if hardship else policy.rules.inbound_reply
    if rule is None:
        return
    for row in rows:
        tasks.create_task(conn, rule, account_id=row.account_id, now=now, message_id=sid)


def _audit_opt_in(conn: Connection, rows: list[Any], channel: str, now: datetime) -> None:
    """START revoked opt-outs of ``channel``: one audit entry per account at the number."""
    for row in rows:
        audit.write(
            conn,
            now=now,
            actor="inbound_sms",
            action="opt_out.revoked",
            object_type="opt_out",
            object_id=channel,
            account_id=row.account_id,
            detail={"channel": channel},
        )


def _reply(
    conn: Connection,
    decider: Decider,
    cipher: DataCipher,
    row: Any,
    phone: str,
    step: str,
    now: datetime,
) -> str:
    text = reply_text(step, decider.config.creditor(row.creditor), row.locale)
    zone = decider.rules(account_from_row(row, cipher)).zones.primary
    message_id = message_id_for(row.account_id, step, now.isoformat())
    record_decision(
        conn,
        DecisionRecord(
            time=now,
            local_time=iso_local(now, zone),
            account=row.account_id,
            debtor=row.debtor_id,
            stage=None,
            step=step,
            channel="sms",
            kind=str(Kind.notice),
            decision=DecisionKind.sent,
            message_id=message_id,
            to=phone,
            text=text,
        ),
    )
    facts.record_reply_send(
        conn,
        message_id=message_id,
        account_id=row.account_id,
        debtor_id=row.debtor_id,
        to_index=row.phone_index,
        at=now,
    )
    return text
