"""Which due sends go first when a limit or a budget cannot take them all (``policy.yaml``
``priority``), and the budgets themselves.

``priority_key`` turns the policy's keys into one string per occurrence, worked out when
it is planned: sorting by it (then by planned time, account, step) is the order in which
``simulate`` and the daemon give due sends their turn. Without ``priority`` every key is
``""``: the oldest planned first, as before.

A ``BudgetBook`` counts the sends of each budget's current window (whole hours or days
of the budget's clock) and says when one is full: the send is deferred to the next
window, reason ``budget``. Pure: ``simulate`` keeps one for the run, the daemon fills
one from the database at each claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.config.models import Budget, Policy, PriorityKey
from orchestrator.core.hours import local_day_start
from orchestrator.core.segments import balance_at, behaviour
from orchestrator.core.state import AccountState

_BROKEN_WINDOW = timedelta(days=90)
_BALANCE_DIGITS = 20  # 18 digits and 2 decimals: the largest balance a column holds
_DPD_OFFSET = 100_000


def _part(
    key: PriorityKey, state: AccountState, segment: str | None, dpd: int, day_start: datetime
) -> str:
    if key.by == "segment":
        listed = key.segments or []
        return f"{listed.index(segment) if segment in listed else len(listed):04d}"
    if key.by == "promise_broken":
        broken = behaviour(state, day_start - _BROKEN_WINDOW, day_start).promises_broken
        return "0" if broken else "1"
    if key.by == "balance":
        cents = int(balance_at(state, day_start) * 100)
        cents = max(0, min(cents, 10**_BALANCE_DIGITS - 1))
        value = 10**_BALANCE_DIGITS - 1 - cents if key.descending else cents
        return f"{value:0{_BALANCE_DIGITS}d}"
    shifted = max(0, min(dpd + _DPD_OFFSET, 2 * _DPD_OFFSET))
    return f"{2 * _DPD_OFFSET - shifted if key.descending else shifted:06d}"


def priority_key(
    keys: list[PriorityKey],
    state: AccountState,
    segment: str | None,
    dpd: int,
    day_start: datetime,
) -> str:
    """The occurrence's place in the policy's order: smaller goes first."""
    if not keys:
        return ""
    return "|".join(_part(key, state, segment, dpd, day_start) for key in keys)


def window_of(budget: Budget, now: datetime, default_zone: str) -> tuple[datetime, datetime]:
    """The budget's window holding ``now``: [start, end) on its clock, in UTC."""
    zone = ZoneInfo(budget.zone or default_zone)
    local = now.astimezone(zone)
    if budget.window.unit == "d":
        day = local.date()
        epoch = day.toordinal() - (day.toordinal() % max(budget.window.amount, 1))
        start_day = day.fromordinal(epoch)
        start = local_day_start(start_day, zone)
        return start.astimezone(UTC), local_day_start(
            start_day + budget.window.delta, zone
        ).astimezone(UTC)
    step = max(budget.window.amount, 1) * (60 if budget.window.unit == "h" else 1)
    minutes = local.hour * 60 + local.minute
    begin = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        minutes=minutes - minutes % step
    )
    start = begin.astimezone(UTC)
    return start, start + timedelta(minutes=step)


@dataclass
class BudgetBook:
    """Sends counted per budget and window."""

    policy: Policy
    spent: dict[tuple[str, datetime], int] = field(default_factory=dict)

    @property
    def budgets(self) -> list[Budget]:
        return self.policy.budgets

    def full(self, channel: str, now: datetime) -> tuple[str, datetime] | None:
        """The first budget of this channel with no room left now, and when its next
        window starts; ``None`` when every one has room."""
        for budget in self.budgets:
            if channel not in budget.channels:
                continue
            start, end = window_of(budget, now, self.policy.timezone.default)
            if self.spent.get((budget.id, start), 0) >= budget.max:
                return budget.id, end
        return None

    def spend(self, channel: str, now: datetime) -> None:
        for budget in self.budgets:
            if channel in budget.channels:
                start, _ = window_of(budget, now, self.policy.timezone.default)
                self.spent[(budget.id, start)] = self.spent.get((budget.id, start), 0) + 1

    def load(self, counts: Mapping[tuple[str, datetime], int]) -> None:
        """The counts the database holds now (the daemon, at each claim)."""
        self.spent = dict(counts)


__all__ = ["BudgetBook", "priority_key", "window_of"]
