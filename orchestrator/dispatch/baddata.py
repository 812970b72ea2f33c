"""One account's bad data stops that account, never the others.

The edges check what comes in (``orchestrator.core.bounds``), but values can still reach the
tables past them: rows written before the checks existed, or by hand in SQL. One such
value used to stop everyone: a promise due 0001-01-01 made ``date - 2 days`` overflow in
the planner, the planning round gave up, and no account was planned at all.

So the runner catches an error around each account's replay, planning, judging and
rendering, and turns it into a ``failed`` decision with reason ``bad_data`` for that
account (its occurrence's, or, at planning, the account's own with no step, channel or
kind), with one log line carrying the account id, the exception's type and where it was
raised: never its message, which may quote personal data. The others go on as usual
(``replay_accounts`` sets the accounts whose facts cannot be read or replayed apart).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.fernet import InvalidToken
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DataError, SQLAlchemyError

from orchestrator.core.crypto import DataCipher
from orchestrator.core.records import DecisionKind, DecisionRecord, Reason, iso_local
from orchestrator.core.rules import AccountRules
from orchestrator.store.besttime import load_book
from orchestrator.store.replay import (
    NO_FACTS,
    Facts,
    Replayed,
    attach_contacts,
    attach_notices,
    attach_placements,
    load_facts,
    replay,
)

__all__ = ["PLANNING", "is_bad_data", "note", "planning_failed", "replay_accounts"]

log = logging.getLogger("outreach.baddata")

PLANNING = "planning"  # the step of a decision recording that an account could not be planned


def is_bad_data(exc: Exception) -> bool:
    """Whether ``exc`` can be one account's data's doing, to be recorded for it alone.

    Database errors and a token that no key opens are not: they fail every account alike
    (a database gone, a wrong key) and still stop the round, loudly. A value the driver
    cannot read (PostgreSQL's ``infinity`` in a date column) is a row's, though."""
    if isinstance(exc, DataError):
        return True
    return not isinstance(exc, SQLAlchemyError | InvalidToken)


def note(account_id: str, exc: Exception, phase: str) -> None:
    """The one log line of an account skipped for bad data: its id, the exception's type
    and the place it was raised (file, line, function), never its message."""
    where = None
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f"{Path(last.filename).name}:{last.lineno} {last.name}"
    log.warning(
        "account skipped: bad data",
        extra={
            "account_id": account_id,
            "error": type(exc).__name__,
            "phase": phase,
            "where": where,
        },
    )


def planning_failed(
    account_id: str, debtor_id: str, now: datetime, zone: ZoneInfo
) -> DecisionRecord:
    """The decision of an account that could not be planned: no step of a stage or trigger,
    channel or kind applies (``null`` in the record), so ``step`` says what failed."""
    return DecisionRecord(
        time=now,
        local_time=iso_local(now, zone),
        account=account_id,
        debtor=debtor_id,
        stage=None,
        step=PLANNING,
        channel=None,
        kind=None,
        decision=DecisionKind.failed,
        reason=Reason.bad_data,
    )


def replay_accounts(
    conn: Connection,
    rows: Sequence[Row[Any]],
    now: datetime,
    cipher: DataCipher,
    rules_for: Callable[..., AccountRules],
    *,
    sealed: bool = False,
) -> tuple[dict[str, Replayed], dict[str, Exception]]:
    """Each account's state at ``now``, and apart, the accounts whose facts could not
    be read or replayed (bad data), with their errors: they fail alone. ``sealed``:
    personal fields decrypted only where read (``accounts.account_from_row``)."""
    bad: dict[str, Exception] = {}
    loaded = _load_facts(conn, rows, now, cipher, bad)
    replayed: dict[str, Replayed] = {}
    for r in rows:
        if r.account_id in bad:
            continue
        try:
            facts = loaded.get(r.account_id, NO_FACTS)
            replayed[r.account_id] = replay(r, cipher, rules_for, facts, now, sealed=sealed)
        except Exception as exc:
            if not is_bad_data(exc):
                raise
            bad[r.account_id] = exc
    reading = [a for a, rep in replayed.items() if rep.rules.config.segments.reads_contacts]
    if reading:  # only where a segment rule reads the messages sent and their receipts
        attach_contacts(conn, replayed, reading, now)
    if replayed:  # the accounts placed with an agency: our collection stops
        attach_placements(conn, replayed, list(replayed), now)
    noticed = [a for a, rep in replayed.items() if rep.rules.validation_notice is not None]
    if noticed:  # only where the US validation notice applies: whether it has gone
        attach_notices(conn, replayed, noticed, now)
    learning = [rep.state for rep in replayed.values() if rep.rules.config.uses_best_time]
    if learning:  # only where a step is planned ``at: best``: what it has learned
        book = load_book(conn, [state.account.debtor_id for state in learning])
        for state in learning:
            state.hours = book
    return replayed, bad


def _load_facts(
    conn: Connection,
    rows: Sequence[Row[Any]],
    now: datetime,
    cipher: DataCipher,
    bad: dict[str, Exception],
) -> dict[str, Facts]:
    """The facts of these accounts in one read, as usual; when that read fails on a
    value (SQLite hands back whatever was written, a date that is none), one account
    at a time, so that only the account with that value fails (into ``bad``)."""
    try:
        return load_facts(conn, rows, now, cipher)
    except Exception as exc:
        if not is_bad_data(exc):
            raise
        if len(rows) == 1:
            bad[rows[0].account_id] = exc
            return {}
    loaded: dict[str, Facts] = {}
    for row in rows:
        loaded.update(_load_facts(conn, [row], now, cipher, bad))
    return loaded
