"""Recovery on start: sends a crash left in doubt are recorded ``ambiguous``.

A batch is recorded ``sending`` before its adapters are called and settled after them,
so a worker that died in between leaves its sends ``sending``: the provider may or may
not have taken them. They are never sent again blindly: each is recorded ``ambiguous``
(reason ``interrupted``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.core.crypto import DataCipher
from orchestrator.core.records import DecisionKind, DecisionRecord, Reason, iso_local
from orchestrator.dispatch.connector import DUE
from orchestrator.dispatch.decider import Decider
from orchestrator.store.accounts import account_from_row, decision_values
from orchestrator.store.tables import AccountRow, Decision, OccurrenceRow, Send, table_of

__all__ = ["recover"]

account_t = table_of(AccountRow)
decision_t = table_of(Decision)
occurrence_t = table_of(OccurrenceRow)
send_t = table_of(Send)


def recover(
    db: sa.Engine,
    decider: Decider,
    cipher: DataCipher,
    worker: str,
    now: datetime,
    *,
    stale: timedelta,
) -> int:
    """Sends ``worker`` left ``sending`` (it crashed mid-send), and anyone's ``sending``
    older than ``stale``, become ``ambiguous`` — recorded, never re-sent; the worker's
    own leases are released. Returns how many became ambiguous."""
    stuck_q = sa.select(occurrence_t).where(
        occurrence_t.c.state == "sending",
        sa.or_(occurrence_t.c.claimed_by == worker, occurrence_t.c.updated_at < now - stale),
    )
    with db.begin() as conn:
        conn.execute(
            occurrence_t.update()
            .where(occurrence_t.c.claimed_by == worker, occurrence_t.c.state.in_(DUE))
            .values(lease_until=None)
        )
        stuck = conn.execute(stuck_q).all()
        for occ_row in stuck:
            row = conn.execute(
                sa.select(account_t).where(account_t.c.account_id == occ_row.account_id)
            ).one()
            rules = decider.rules(account_from_row(row, cipher))
            message_id = conn.execute(
                sa.select(send_t.c.message_id).where(send_t.c.occurrence_id == occ_row.id)
            ).scalar()
            record = DecisionRecord(
                time=now,
                local_time=iso_local(now, rules.zones.primary),
                account=occ_row.account_id,
                debtor=row.debtor_id,
                stage=occ_row.stage,
                step=occ_row.step_id,
                channel=occ_row.channel,
                kind=occ_row.kind,
                decision=DecisionKind.ambiguous,
                reason=Reason.interrupted,
                message_id=message_id,
                segment=occ_row.segment,
                experiment=occ_row.experiment,
                variant=occ_row.variant,
            )
            conn.execute(decision_t.insert(), [decision_values(record, occurrence_id=occ_row.id)])
            conn.execute(
                occurrence_t.update()
                .where(occurrence_t.c.id == occ_row.id)
                .values(state="ambiguous", lease_until=None, updated_at=now)
            )
            conn.execute(
                send_t.update()
                .where(send_t.c.occurrence_id == occ_row.id)
                .values(status="ambiguous", status_at=now)
            )
    return len(stuck)
