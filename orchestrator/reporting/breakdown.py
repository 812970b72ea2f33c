"""``outreach report --by DIM``: the KPIs per segment, experiment arm, step, template, local
hour or local weekday of the period's decisions (docs/cli.md).

A group's **accounts** are the accounts with a decision of the group in the period (for
``hour`` and ``weekday``: a ``sent`` decision, by the local hour and weekday of the send
in the debtor's zone, never UTC). An account with decisions in two groups counts in
both, as an account that rolls counts in both stages. Sends, deliveries, clicks and
decisions go to the group of their decision. What follows a send goes:

- by **segment** and **variant** (groups of accounts): every outcome of a group's
  account in the period counts for the group: a delivered send or a conversation
  (contact), its promises, payments, opt-outs and complaints, a roll to the next stage,
  and its balance at its first stage's entry (the recovery rate's denominator). This is
  what an experiment compares: everything that happened to the accounts of each arm.
- by **step**, **template**, **hour** and **weekday** (groups of sends): contact is a
  delivered send of the group; a promise, payment, opt-out or complaint counts for the
  group of the last delivered send to the account before it (none before it: no group).
  There is no roll or recovery rate (a stage's, not a send's).

Every count rate carries its Wilson 95% interval (``ci``). By variant, each arm of an
experiment other than its baseline (the arm named ``champion``, else the arm with the
most accounts) gets ``versus``: per rate, the difference against the baseline with
Newcombe's 95% interval, whether it is significant (the interval excludes 0) and the
accounts an arm needs to detect a difference that size; and per currency, the difference
of the amount recovered per account with a bootstrap 95% interval (``stats``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.config.models import CHAMPION, Config
from orchestrator.core.state import REACHED
from orchestrator.reporting.groups import Group, Rate
from orchestrator.reporting.stats import (
    bootstrap_mean_difference,
    newcombe,
    sample_size_per_arm,
    wilson,
)
from orchestrator.store.tables import (
    AccountEvent,
    Decision,
    OptOut,
    Payment,
    Promise,
    Send,
    table_of,
)

DIMENSIONS = ("segment", "variant", "step", "template", "hour", "weekday")
# Dimensions that group accounts: every outcome of an account counts for its groups.
ACCOUNT_DIMENSIONS = frozenset({"segment", "variant"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # ISO 1..7
# The rates an arm is compared on against its experiment's baseline.
COMPARED = ("delivery_rate", "contact_rate", "promise_rate", "kept_rate", "payment_rate")

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Population:
    """What the stage count knows of each account, which the breakdown reuses."""

    currency: Mapping[str, str]
    entry_balance: Mapping[str, Decimal]  # at its first stage's entry in the period
    rolled: Set[str]
    payments: Mapping[str, list[tuple[datetime, Decimal]]]


@dataclass
class DimGroup(Group):
    """The counts of a stage, plus the accounts that paid and how much each paid."""

    paid: set[str] = field(default_factory=set)
    paid_by_account: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add_payment(self, account_id: str, currency: str, amount: Decimal) -> None:
        self.paid.add(account_id)
        self.recovered[currency] += amount
        self.paid_by_account[account_id] += amount

    def count_rates(self) -> dict[str, Rate]:
        rates = self.rates()
        rates["payment_rate"] = Rate(len(self.paid), len(self.accounts))
        return rates

    def amounts(self, currency: str, currency_of: Mapping[str, str]) -> list[float]:
        """The amount each account of ``currency`` paid in the period, in account order."""
        return [
            float(self.paid_by_account.get(a, 0))
            for a in sorted(self.accounts)
            if currency_of.get(a) == currency
        ]

    def to_breakdown_json(self, by_account: bool, currency_of: Mapping[str, str]) -> dict[str, Any]:
        out = self.to_json()
        if not by_account:
            for key in ("rolled", "roll_rate", "balance_at_entry", "recovery_rate"):
                del out[key]
        out["paid_accounts"] = len(self.paid)
        for name, rate in self.count_rates().items():
            if by_account or name != "roll_rate":
                out[name] = _with_ci(rate)
        out["recovered_per_account"] = {
            cur: Rate(self.recovered.get(cur, Decimal(0)).quantize(Decimal("0.01")), n).to_json()
            for cur, n in sorted(_by_currency(self.accounts, currency_of).items())
        }
        return out


def _with_ci(rate: Rate) -> dict[str, Any]:
    found = wilson(int(rate.numerator), int(rate.denominator))
    ci = None if found is None else found.to_json()["ci"]
    return {**rate.to_json(), "ci": ci}


def _by_currency(accounts: Set[str], currency_of: Mapping[str, str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for account_id in accounts:
        if account_id in currency_of:
            counts[currency_of[account_id]] += 1
    return counts


@dataclass(frozen=True)
class _Dimension:
    """How decisions are grouped: the SQL columns read, and the group key they make."""

    name: str
    columns: tuple[Any, ...]
    key: Callable[[tuple[Any, ...]], Key]
    sent_only: bool = False

    @property
    def by_account(self) -> bool:
        return self.name in ACCOUNT_DIMENSIONS


def _dimension(conn: Connection, config: Config, by: str) -> _Dimension:
    d = table_of(Decision)
    if by == "segment":
        return _Dimension(by, (d.c.segment,), lambda raw: (raw[0],))
    if by == "variant":
        return _Dimension(by, (d.c.experiment, d.c.variant), lambda raw: (raw[0], raw[1]))
    if by == "step":
        return _Dimension(by, (d.c.step,), lambda raw: (raw[0],))
    if by == "template":
        templates = template_of_step(config)
        return _Dimension(by, (d.c.step,), lambda raw: (templates.get(raw[0]),))
    if by == "hour":  # 'YYYY-MM-DDTHH:MM:SS+HH:MM': the debtor's clock
        hour = sa.func.substr(d.c.local_time, sa.literal_column("12"), sa.literal_column("2"))
        return _Dimension(by, (hour,), lambda raw: (_int(raw[0]),), sent_only=True)
    if by == "weekday":
        return _Dimension(by, (_iso_weekday(conn, d.c.local_time),), _weekday, sent_only=True)
    raise ValueError(f"unknown dimension {by!r}: one of {', '.join(DIMENSIONS)}")


def template_of_step(config: Config) -> dict[str, str]:
    """The template of each step and trigger of the configuration, by its id (the steps
    of experiment arms included)."""
    return {step.id: step.template for step in config.steps()}


def _iso_weekday(conn: Connection, local_time: Any) -> Any:
    day = sa.func.substr(local_time, sa.literal_column("1"), sa.literal_column("10"))
    if conn.dialect.name == "sqlite":  # '0' is Sunday
        return sa.func.strftime(sa.literal_column("'%w'"), day)
    return sa.extract("isodow", sa.cast(day, sa.Date))


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _weekday(raw: tuple[Any, ...]) -> Key:
    """ISO 1 (Monday) to 7: SQLite's ``%w`` counts from Sunday, 0; PostgreSQL's
    ``isodow`` is ISO already."""
    found = _int(raw[0])
    return (None if found is None else found or 7,)


class _Groups(dict[Key, DimGroup]):
    def of(self, key: Key) -> DimGroup:
        found = self.get(key)
        if found is None:
            found = self[key] = DimGroup("-" if all(k is None for k in key) else str(key[-1]))
        return found


def count_breakdown(
    conn: Connection,
    config: Config,
    population: Population,
    by: str,
    in_period: Any,
    window: tuple[datetime, datetime],
) -> dict[str, Any]:
    """``{"by": DIM, "groups": [...]}`` for the decisions ``in_period`` (a condition on
    the decision table) and the events in ``window`` (``start <= time < end``)."""
    dim = _dimension(conn, config, by)
    groups = _Groups()
    d = table_of(Decision)
    where = sa.and_(in_period, d.c.decision == "sent") if dim.sent_only else in_period
    _count_decisions(conn, dim, groups, where)
    _count_sends(conn, dim, groups, in_period)
    if dim.by_account:
        _count_account_outcomes(conn, groups, population, in_period, window)
    else:
        _count_touch_outcomes(conn, dim, groups, population, in_period, window)
    return {"by": by, "groups": _groups_json(dim, groups, population)}


def _count_decisions(conn: Connection, dim: _Dimension, groups: _Groups, where: Any) -> None:
    """Decisions by group, decision and reason, and each group's accounts."""
    d = table_of(Decision)
    cols, width = dim.columns, len(dim.columns)
    for row in conn.execute(
        sa.select(*cols, d.c.decision, d.c.reason, sa.func.count())
        .where(where)
        .group_by(*cols, d.c.decision, d.c.reason)
    ):
        group = groups.of(dim.key(tuple(row[:width])))
        decision, reason, count = row[width:]
        group.decisions[decision] += count
        if reason:
            group.decisions[f"{decision}:{reason}"] += count
    for row in conn.execute(sa.select(*cols, d.c.account_id).where(where).distinct()):
        groups.of(dim.key(tuple(row[:width]))).accounts.add(row[width])


def _reached(in_period: Any) -> Any:
    d, s = table_of(Decision), table_of(Send)
    return sa.and_(in_period, d.c.decision == "sent", s.c.status.in_(sorted(REACHED)))


def _count_sends(conn: Connection, dim: _Dimension, groups: _Groups, in_period: Any) -> None:
    """Sends by group and delivery status; by send, the accounts a delivered send
    reached."""
    d, s = table_of(Decision), table_of(Send)
    cols, width = dim.columns, len(dim.columns)
    for row in conn.execute(
        sa.select(
            *cols, s.c.status, sa.func.count(), sa.func.sum(sa.func.coalesce(s.c.segments, 1))
        )
        .select_from(d.outerjoin(s, s.c.message_id == d.c.message_id))
        .where(in_period, d.c.decision == "sent")
        .group_by(*cols, s.c.status)
    ):
        group = groups.of(dim.key(tuple(row[:width])))
        status, count, segments = row[width:]
        group.sends += count
        group.segments += int(segments or 0)
        if status in REACHED:
            group.delivered += count
            group.clicked += count if status == "clicked" else 0
    if dim.by_account:
        return
    for row in conn.execute(
        sa.select(*cols, d.c.account_id)
        .distinct()
        .select_from(d.join(s, s.c.message_id == d.c.message_id))
        .where(_reached(in_period))
    ):
        groups.of(dim.key(tuple(row[:width]))).contacted.add(row[width])


@dataclass(frozen=True)
class _Event:
    account_id: str
    at: datetime
    kind: str  # promise | payment | opt_out | complaint
    state: str | None = None  # a promise's
    amount: Decimal = Decimal(0)  # a payment's


def _events(
    conn: Connection, population: Population, window: tuple[datetime, datetime]
) -> Iterator[_Event]:
    """Promises made, payments, opt-outs (of an account) and complaints in the window."""
    start, end = window
    p, o, e = table_of(Promise), table_of(OptOut), table_of(AccountEvent)
    for account_id, made_at, state in conn.execute(
        sa.select(p.c.account_id, p.c.made_at, p.c.state).where(
            p.c.made_at >= start, p.c.made_at < end
        )
    ):
        yield _Event(account_id, made_at, "promise", state=state)
    for account_id, paid in population.payments.items():
        for at, amount in paid:
            if start <= at < end:
                yield _Event(account_id, at, "payment", amount=amount)
    for account_id, at in conn.execute(
        sa.select(o.c.account_id, o.c.created_at).where(
            o.c.created_at >= start, o.c.created_at < end, o.c.account_id.is_not(None)
        )
    ):
        yield _Event(account_id, at, "opt_out")
    for account_id, at in conn.execute(
        sa.select(e.c.account_id, e.c.time).where(
            e.c.time >= start, e.c.time < end, e.c.type == "complaint"
        )
    ):
        yield _Event(account_id, at, "complaint")


def _apply(group: DimGroup, event: _Event, currency: str | None) -> None:
    if event.kind == "promise":
        group.promises += 1
        group.promise_accounts.add(event.account_id)
        group.kept += event.state == "kept"
        group.broken += event.state == "broken"
    elif event.kind == "payment":
        if currency is not None:
            group.add_payment(event.account_id, currency, event.amount)
    elif event.kind == "opt_out":
        group.opt_outs += 1
    else:
        group.complaints += 1


def _count_account_outcomes(
    conn: Connection,
    groups: _Groups,
    population: Population,
    in_period: Any,
    window: tuple[datetime, datetime],
) -> None:
    """Every outcome of an account in the period, in each group it belongs to."""
    d, s, e = table_of(Decision), table_of(Send), table_of(AccountEvent)
    member_of: dict[str, list[DimGroup]] = defaultdict(list)
    for group in groups.values():
        for account_id in group.accounts:
            member_of[account_id].append(group)
    contacted = set(
        conn.execute(
            sa.select(d.c.account_id)
            .distinct()
            .select_from(d.join(s, s.c.message_id == d.c.message_id))
            .where(_reached(in_period))
        ).scalars()
    )
    start, end = window
    contacted.update(
        conn.execute(
            sa.select(e.c.account_id)
            .distinct()
            .where(e.c.time >= start, e.c.time < end, e.c.type == "conversation")
        ).scalars()
    )
    for account_id in contacted:
        for group in member_of.get(account_id, ()):
            group.contacted.add(account_id)
    for event in _events(conn, population, window):
        for group in member_of.get(event.account_id, ()):
            _apply(group, event, population.currency.get(event.account_id))
    for group in groups.values():
        group.rolled = group.accounts & population.rolled
        for account_id in group.accounts:
            if account_id in population.entry_balance:
                currency = population.currency[account_id]
                group.at_entry[currency] += population.entry_balance[account_id]


def _count_touch_outcomes(
    conn: Connection,
    dim: _Dimension,
    groups: _Groups,
    population: Population,
    in_period: Any,
    window: tuple[datetime, datetime],
) -> None:
    """Each promise, payment, opt-out and complaint for the group of the last delivered
    send to its account before it."""
    events = list(_events(conn, population, window))
    if not events:
        return
    d, s = table_of(Decision), table_of(Send)
    width = len(dim.columns)
    touched: dict[str, list[tuple[datetime, Key]]] = defaultdict(list)
    for row in conn.execute(
        sa.select(d.c.account_id, d.c.time, *dim.columns)
        .select_from(d.join(s, s.c.message_id == d.c.message_id))
        .where(_reached(in_period), d.c.account_id.in_(_event_accounts(window)))
    ):
        touched[row[0]].append((row[1], dim.key(tuple(row[2 : 2 + width]))))
    times: dict[str, list[datetime]] = {}
    for account_id, touches in touched.items():
        touches.sort(key=lambda touch: touch[0])
        times[account_id] = [at for at, _ in touches]
    for event in events:
        before = bisect.bisect_right(times.get(event.account_id, []), event.at)
        if before:
            key = touched[event.account_id][before - 1][1]
            _apply(groups.of(key), event, population.currency.get(event.account_id))


def _event_accounts(window: tuple[datetime, datetime]) -> Any:
    """The accounts with a promise, payment, opt-out or complaint in the window (SQL)."""
    start, end = window
    p, pay, o, e = table_of(Promise), table_of(Payment), table_of(OptOut), table_of(AccountEvent)
    return sa.union(
        sa.select(p.c.account_id).where(p.c.made_at >= start, p.c.made_at < end),
        sa.select(pay.c.account_id).where(pay.c.paid_at >= start, pay.c.paid_at < end),
        sa.select(o.c.account_id).where(
            o.c.created_at >= start, o.c.created_at < end, o.c.account_id.is_not(None)
        ),
        sa.select(e.c.account_id).where(e.c.time >= start, e.c.time < end, e.c.type == "complaint"),
    )


# --- JSON ------------------------------------------------------------------------------------


def _order(key: Key) -> tuple[Any, ...]:
    """None last, then values in their natural order."""
    return tuple((k is None, k if k is not None else 0) for k in key)


def _key_json(by: str, key: Key) -> dict[str, Any]:
    if by == "variant":
        return {"experiment": key[0], "variant": key[1]}
    if by == "weekday":
        return {"weekday": None if key[0] is None else WEEKDAYS[key[0] - 1]}
    return {by: key[0]}


def baseline_of(arms: Mapping[str | None, DimGroup]) -> str | None:
    """The arm named ``champion``, else the one with the most accounts (by name on a
    tie)."""
    if CHAMPION in arms:
        return CHAMPION
    return min(arms, key=lambda v: (-len(arms[v].accounts), v or ""))


def _groups_json(dim: _Dimension, groups: _Groups, population: Population) -> list[dict[str, Any]]:
    found = []
    baselines: dict[Any, str | None] = {}
    if dim.name == "variant":
        arms: dict[Any, dict[str | None, DimGroup]] = defaultdict(dict)
        for (experiment, variant), group in groups.items():
            if experiment is not None:
                arms[experiment][variant] = group
        baselines = {experiment: baseline_of(a) for experiment, a in arms.items()}
    for key in sorted(groups, key=_order):
        group = groups[key]
        out = _key_json(dim.name, key)
        if dim.name == "variant":
            experiment, variant = key
            out["baseline"] = experiment is not None and baselines[experiment] == variant
        out |= group.to_breakdown_json(dim.by_account, population.currency)
        if dim.name == "variant" and key[0] is not None and not out["baseline"]:
            base = baselines[key[0]]
            out["versus"] = compare(group, groups[(key[0], base)], base, population.currency)
        found.append(out)
    if dim.name == "variant":  # each experiment's baseline first
        found.sort(
            key=lambda g: (g["experiment"] is None, g["experiment"] or "", not g["baseline"])
        )
    return found


def compare(
    arm: DimGroup, base: DimGroup, base_name: str | None, currency_of: Mapping[str, str]
) -> dict[str, Any]:
    """An arm against its baseline: per rate, ``arm - baseline`` with Newcombe's interval
    and the sample size an arm needs for the difference seen; per currency, the
    difference of the amount recovered per account with a bootstrap interval."""
    out: dict[str, Any] = {"variant": base_name}
    arm_rates, base_rates = arm.count_rates(), base.count_rates()
    for name in COMPARED:
        a, b = arm_rates[name], base_rates[name]
        diff = newcombe(int(a.numerator), int(a.denominator), int(b.numerator), int(b.denominator))
        if diff is None or a.value is None or b.value is None:
            out[name] = None
            continue
        out[name] = {**diff.to_json(), "sample_size_per_arm": sample_size_per_arm(a.value, b.value)}
    currencies = sorted(
        set(_by_currency(arm.accounts, currency_of)) | set(_by_currency(base.accounts, currency_of))
    )
    recovered = {}
    for cur in currencies:
        found = bootstrap_mean_difference(
            arm.amounts(cur, currency_of), base.amounts(cur, currency_of)
        )
        recovered[cur] = None if found is None else found.to_json()
    out["recovered_per_account"] = recovered
    return out
