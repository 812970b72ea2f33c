"""An account's segment (``segments.yaml``): the first rule whose conditions all hold.

Pure: the account's state and the start of the debtor's local day in, a segment id (or
``None``: no rule matched) out. Behaviour is read as it stood at that instant, so an
account has one segment a day, the same whether the daemon plans it at midnight or at
noon after a payment, and the same in ``simulate``: a payment or a broken promise moves
the account from the next local day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from orchestrator.config.models import Segments, SegmentWhen
from orchestrator.core.state import AccountState


@dataclass(frozen=True)
class Behaviour:
    """What a rule's behaviour conditions count, over its ``within`` window."""

    promises_made: int
    promises_kept: int
    promises_broken: int
    payments: int


_NOTHING = Behaviour(0, 0, 0, 0)


def balance_at(state: AccountState, instant: datetime) -> Decimal:
    """The balance at ``instant``: today's plus what was paid since."""
    if not state.payments:  # most accounts have none: no generator to run
        return state.account.balance
    paid_since = sum((amount for at, amount in state.payments if at >= instant), Decimal(0))
    return state.account.balance + paid_since


def behaviour(state: AccountState, start: datetime, end: datetime) -> Behaviour:
    """Promises made, kept and broken, and payments, with ``start <= time < end``."""
    if not state.promises and not state.payments:  # most accounts: nothing to count
        return _NOTHING

    def inside(at: datetime | None) -> bool:
        return at is not None and start <= at < end

    promises = state.promises
    return Behaviour(
        promises_made=sum(1 for p in promises if inside(p.made_at)),
        promises_kept=sum(1 for p in promises if p.state == "kept" and inside(p.kept_at)),
        promises_broken=sum(1 for p in promises if p.state == "broken" and inside(p.broken_at)),
        payments=sum(1 for at, _ in state.payments if inside(at)),
    )


def days_since_conversation(state: AccountState, day_start: datetime) -> int | None:
    """Whole days from the last conversation before ``day_start`` to it; ``None``: never."""
    times = [e.time for e in state.events if e.type == "conversation" and e.time < day_start]
    if not times:
        return None
    return (day_start - max(times)).days


def days_since_contact(state: AccountState, day_start: datetime) -> int | None:
    """Whole days from the last contact that reached the person, or the last
    conversation, before ``day_start``; ``None``: neither ever."""
    times = [t for c in state.contacts if (t := c.reached_at(day_start)) is not None]
    times += [e.time for e in state.events if e.type == "conversation" and e.time < day_start]
    if not times:
        return None
    return (day_start - max(times)).days


def responsiveness(state: AccountState, start: datetime, end: datetime) -> Decimal | None:
    """Responded / reached over the contacts sent in [start, end), as known at ``end``;
    ``None`` when none of them reached the person."""
    reached = responded = 0
    for contact in state.contacts:
        if start <= contact.time < end and contact.reached_at(end) is not None:
            reached += 1
            responded += contact.responded(end)
    return None if reached == 0 else Decimal(responded) / Decimal(reached)


def _contacts_hold(when: SegmentWhen, state: AccountState, day_start: datetime) -> bool:
    if not when.reads_contacts:
        return True
    lo, hi = when.days_since_contact_min, when.days_since_contact_max
    if lo is not None or hi is not None:
        days = days_since_contact(state, day_start)
        if days is None:
            if hi is not None:
                return False
        elif not _within(days, lo, hi):
            return False
    lo_r, hi_r = when.responsiveness_min, when.responsiveness_max
    if lo_r is None and hi_r is None:
        return True
    share = responsiveness(state, day_start - when.within.delta, day_start)
    return share is not None and _within(share, lo_r, hi_r)


def _within(
    value: Decimal | int | None, lo: Decimal | int | None, hi: Decimal | int | None
) -> bool:
    if lo is None and hi is None:
        return True
    if value is None:
        return False
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _listed(value: str | None, names: list[str] | None) -> bool:
    return names is None or (value is not None and value in names)


def _account_holds(when: SegmentWhen, state: AccountState, day_start: datetime, dpd: int) -> bool:
    account = state.account
    if not (
        _listed(account.currency, when.currency)
        and _listed(account.creditor, when.creditor)
        and _listed(account.product, when.product)
        and _listed(account.segment, when.imported)
        and _within(dpd, when.dpd_min, when.dpd_max)
        and _within(account.risk_score, when.risk_score_min, when.risk_score_max)
    ):
        return False
    if when.balance_min is None and when.balance_max is None:
        return True
    return _within(balance_at(state, day_start), when.balance_min, when.balance_max)


def _behaviour_holds(
    when: SegmentWhen,
    state: AccountState,
    day_start: datetime,
    seen_by_window: dict[timedelta, Behaviour] | None = None,
) -> bool:
    if when.counts_behaviour:
        window = when.within.delta
        cache = {} if seen_by_window is None else seen_by_window
        seen = cache.get(window)
        if seen is None:
            seen = cache[window] = behaviour(state, day_start - window, day_start)
        if not (
            _within(seen.promises_made, when.promises_made_min, when.promises_made_max)
            and _within(seen.promises_kept, when.promises_kept_min, when.promises_kept_max)
            and _within(seen.promises_broken, when.promises_broken_min, when.promises_broken_max)
            and _within(seen.payments, when.payments_min, when.payments_max)
        ):
            return False
    lo, hi = when.days_since_conversation_min, when.days_since_conversation_max
    if lo is None and hi is None:
        return True
    days = days_since_conversation(state, day_start)
    if days is None:  # never: as long ago as can be
        return hi is None
    return _within(days, lo, hi)


def holds(
    when: SegmentWhen,
    state: AccountState,
    day_start: datetime,
    dpd: int,
    seen_by_window: dict[timedelta, Behaviour] | None = None,
) -> bool:
    """Whether every condition given in ``when`` holds for the account at ``day_start``
    (``seen_by_window``: the behaviour counts of the rules tried before, by window)."""
    return (
        _account_holds(when, state, day_start, dpd)
        and _behaviour_holds(when, state, day_start, seen_by_window)
        and _contacts_hold(when, state, day_start)
    )


def segment_of(
    segments: Segments, state: AccountState, day_start: datetime, dpd: int
) -> str | None:
    """The id of the first rule that holds, or ``None``."""
    seen_by_window: dict[timedelta, Behaviour] = {}
    for rule in segments.segments:
        if rule.when.always or holds(rule.when, state, day_start, dpd, seen_by_window):
            return rule.id
    return None
