"""``outreach report``: the KPIs collections teams steer by (docs/cli.md).

Per stage (delinquency bucket) and per channel over a period of dates, from what the
database holds: decisions, sends and their delivery status, clicks, conversations,
promises, payments, opt-outs and complaints. Each rate carries its numerator and
denominator so anyone can check it by hand. The definitions (docs/cli.md):

- **accounts in stage**: open accounts whose DPD reached the stage's range on some day
  of the period (DPD counted on the debtor's local date, as the engine does); an
  account that moved from M1 to M2 in the period counts in both.
- **sends**: ``sent`` decisions; **delivery rate**: sends whose delivery status
  reached the person (delivered, answered, voicemail, opened, clicked) / sends.
- **contact rate**: accounts with a delivered send or a conversation / accounts.
- **click rate**: sends whose payment link was followed / delivered sends.
- **promise rate**: accounts that made a promise / accounts; **kept rate**: kept /
  (kept + broken) promises made in the period (pending ones are not yet counted).
- **recovery rate**: amount paid in the stage / balance at stage entry, per currency,
  never summed across. For the stage an account is in, the balance planning stored when
  it entered it; for the stages before, today's balance plus every payment since (a
  balance changed by a later import, fees added, skews only these).
- **roll rate**: accounts that entered the next stage in the period / accounts.
- Per channel, **contact rate** is over the accounts the channel was tried on, and
  promises (with their kept rate) go to the channel of the last touch before them.
- **cost**: sends x the channel's ``cost`` in channels.yaml (an SMS: per segment).

The period is whole dates, ``since`` to ``until`` inclusive; instants are cut at UTC
midnight, stage days at the debtor's local midnight. The report reads no personal
data: zones come from the explicit zone and the address, never the (encrypted) phone.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.config.models import Config, Stage
from orchestrator.core.zones import place_zones
from orchestrator.store.tables import (
    AccountEvent,
    AccountRow,
    Decision,
    OptOut,
    Payment,
    Promise,
    Send,
    table_of,
)

# Delivery statuses that mean the message reached the person (or their voicemail).
REACHED = frozenset({"delivered", "answered", "machine", "opened", "clicked"})
DECISIONS = ("sent", "deferred", "suppressed", "blocked", "skipped", "failed", "ambiguous")


@dataclass(frozen=True)
class Rate:
    numerator: int | Decimal
    denominator: int | Decimal

    @property
    def value(self) -> float | None:
        return float(self.numerator) / float(self.denominator) if self.denominator else None

    def to_json(self) -> dict[str, Any]:
        return {"numerator": _num(self.numerator), "denominator": _num(self.denominator),
                "value": None if self.value is None else round(self.value, 6)}

    def __str__(self) -> str:
        return "-" if self.value is None else f"{self.value:.1%}"


def _num(value: int | Decimal) -> int | str:
    return str(value) if isinstance(value, Decimal) else value


@dataclass
class Group:
    """The counts of one stage, one channel, or everything."""

    name: str
    accounts: set[str] = field(default_factory=set)
    sends: int = 0
    delivered: int = 0
    clicked: int = 0
    segments: int = 0
    contacted: set[str] = field(default_factory=set)
    promise_accounts: set[str] = field(default_factory=set)
    promises: int = 0
    kept: int = 0
    broken: int = 0
    rolled: set[str] = field(default_factory=set)
    recovered: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    at_entry: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    opt_outs: int = 0
    complaints: int = 0
    decisions: Counter[str] = field(default_factory=Counter)

    def rates(self) -> dict[str, Rate]:
        return {
            "delivery_rate": Rate(self.delivered, self.sends),
            "contact_rate": Rate(len(self.contacted), len(self.accounts)),
            "click_rate": Rate(self.clicked, self.delivered),
            "promise_rate": Rate(len(self.promise_accounts), len(self.accounts)),
            "kept_rate": Rate(self.kept, self.kept + self.broken),
            "roll_rate": Rate(len(self.rolled), len(self.accounts)),
        }

    def recovery(self) -> dict[str, Rate]:
        return {cur: Rate(self.recovered.get(cur, Decimal(0)), total)
                for cur, total in sorted(self.at_entry.items())}

    def to_json(self, unit_cost: Decimal | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accounts": len(self.accounts),
            "sends": self.sends,
            "delivered": self.delivered,
            "clicked": self.clicked,
            "contacted": len(self.contacted),
            "promises": self.promises,
            "promise_accounts": len(self.promise_accounts),
            "kept": self.kept,
            "broken": self.broken,
            "rolled": len(self.rolled),
            "recovered": {c: str(v) for c, v in sorted(self.recovered.items())},
            "balance_at_entry": {c: str(v) for c, v in sorted(self.at_entry.items())},
            "recovery_rate": {c: r.to_json() for c, r in self.recovery().items()},
            "opt_outs": self.opt_outs,
            "complaints": self.complaints,
            "failed": self.decisions["failed"],
            "ambiguous": self.decisions["ambiguous"],
            "decisions": dict(sorted(self.decisions.items())),
        }
        out.update({k: r.to_json() for k, r in self.rates().items()})
        if unit_cost is not None:
            out["unit_cost"] = str(unit_cost)
            out["cost"] = str((unit_cost * self.segments).quantize(Decimal("0.01")))
        return out


@dataclass(frozen=True)
class _Account:
    account_id: str
    due: date
    balance: Decimal
    currency: str
    zone: ZoneInfo
    closed_on: date | None
    stage: str | None = None  # as planning last found it
    balance_at_stage_entry: Decimal | None = None


def _window(since: date, until: date) -> tuple[datetime, datetime]:
    return (datetime.combine(since, time(), UTC),
            datetime.combine(until + timedelta(days=1), time(), UTC))


def activity_span(conn: Connection) -> tuple[date, date] | None:
    """The first and last dates (UTC) with a decision: the default report period."""
    t = table_of(Decision)
    first, last = conn.execute(sa.select(sa.func.min(t.c.time), sa.func.max(t.c.time))).one()
    if first is None:
        return None
    return _aware(first).date(), _aware(last).date()  # type: ignore[union-attr]


def build_report(conn: Connection, config: Config, since: date, until: date) -> dict[str, Any]:
    """The KPIs over ``since``..``until`` (inclusive dates) as one JSON-ready dict."""
    if until < since:
        raise ValueError(f"--until {until} is before --since {since}")
    start, end = _window(since, until)
    stages = sorted(config.cadences.stages, key=lambda s: s.dpd[0])
    policy = config.policy.timezone
    accounts = _load_accounts(conn, policy)
    payments = _load_payments(conn)

    by_stage = {s.id: Group(s.id) for s in stages}
    by_channel: dict[str, Group] = {c: Group(c) for c in config.channels}
    total = Group("all")

    # Accounts in each stage over the period, their balance at entry and their rolls.
    # In the total, an account counts once, with its balance at its first stage's entry.
    for acc in accounts.values():
        paid = payments.get(acc.account_id, ())
        for i, stage in enumerate(stages):
            first = _first_day(acc, stage, since, until)
            if first is None or (acc.closed_on is not None and acc.closed_on < first):
                continue
            group = by_stage[stage.id]
            group.accounts.add(acc.account_id)
            entry = datetime.combine(acc.due + timedelta(days=stage.dpd[0]), time(),
                                     acc.zone)
            balance = _balance_at_entry(acc, stage, entry, paid)
            group.at_entry[acc.currency] += balance
            if acc.account_id not in total.accounts:
                total.accounts.add(acc.account_id)
                total.at_entry[acc.currency] += balance
            if i + 1 < len(stages):
                next_day = acc.due + timedelta(days=stages[i + 1].dpd[0])
                if since <= next_day <= until and (
                        acc.closed_on is None or acc.closed_on >= next_day):
                    group.rolled.add(acc.account_id)
                    total.rolled.add(acc.account_id)

    def stage_on(account_id: str, at: datetime) -> Group | None:
        acc = accounts.get(account_id)
        if acc is None:
            return None
        dpd = (at.astimezone(acc.zone).date() - acc.due).days
        for stage in stages:
            if stage.contains(dpd):
                return by_stage[stage.id]
        return None

    def groups(stage: str | None, channel: str | None) -> list[Group]:
        found = [total]
        if stage in by_stage:
            found.append(by_stage[stage])
        if channel is not None:
            found.append(by_channel.setdefault(channel, Group(channel)))
        return found

    # Payments: recovered in the stage the account was in when it paid.
    for account_id, paid in payments.items():
        owner = accounts.get(account_id)
        for at, amount in paid:
            if owner is None or not start <= at < end:
                continue
            for g in _present(total, stage_on(account_id, at)):
                g.recovered[owner.currency] += amount

    # Decisions by stage, channel and reason (in SQL: a million rows stay in the database).
    d, s = table_of(Decision), table_of(Send)
    in_period = _between(conn, d.c.time, start, end)
    daily: dict[str, Counter[str]] = defaultdict(Counter)
    day = _day(conn, d.c.time)
    rows = conn.execute(
        sa.select(d.c.stage, d.c.channel, d.c.decision, d.c.reason, day, sa.func.count())
        .where(in_period).group_by(d.c.stage, d.c.channel, d.c.decision, d.c.reason, day))
    for stage_id, channel, decision, reason, on, count in rows:
        for g in groups(stage_id, channel):
            g.decisions[decision] += count
            if reason:
                g.decisions[f"{decision}:{reason}"] += count
        day_key = str(on)[:10]
        daily[day_key][decision] += count
        if decision == "sent":
            daily[day_key][f"sent:{channel}"] += count
    tried = conn.execute(  # a decision with no channel (bad_data) tried none
        sa.select(d.c.channel, d.c.account_id)
        .where(in_period, d.c.channel.is_not(None)).distinct())
    for channel, account_id in tried:
        by_channel.setdefault(channel, Group(channel)).accounts.add(account_id)

    # Sends by delivery status, then the accounts a delivered send reached.
    sent = sa.and_(in_period, d.c.decision == "sent")
    for stage_id, channel, status, count, segments in conn.execute(
            sa.select(d.c.stage, d.c.channel, s.c.status, sa.func.count(),
                      sa.func.sum(sa.func.coalesce(s.c.segments, 1)))
            .select_from(d.outerjoin(s, s.c.message_id == d.c.message_id))
            .where(sent).group_by(d.c.stage, d.c.channel, s.c.status)):
        for g in groups(stage_id, channel):
            g.sends += count
            g.segments += int(segments or 0)
            if status in REACHED:
                g.delivered += count
                g.clicked += count if status == "clicked" else 0
    reached = sa.and_(sent, s.c.status.in_(sorted(REACHED)))
    for stage_id, channel, account_id in conn.execute(
            sa.select(d.c.stage, d.c.channel, d.c.account_id).distinct()
            .select_from(d.join(s, s.c.message_id == d.c.message_id)).where(reached)):
        for g in groups(stage_id, channel):
            if g is by_channel.get(channel) or account_id in g.accounts:
                g.contacted.add(account_id)

    e = table_of(AccountEvent)
    touches: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    events = conn.execute(
        sa.select(e.c.account_id, e.c.type, e.c.channel, e.c.time)
        .where(e.c.time >= start, e.c.time < end,
               e.c.type.in_(("conversation", "complaint"))))
    for account_id, type_, channel, at in events:
        in_stage = stage_on(account_id, at)
        if type_ == "complaint":
            for g in _present(total, in_stage):
                g.complaints += 1
            continue
        touches[account_id].append((at, channel or "-"))
        for g in _present(total, in_stage):
            if account_id in g.accounts:
                g.contacted.add(account_id)
        if channel in by_channel:
            by_channel[channel].contacted.add(account_id)
            by_channel[channel].accounts.add(account_id)

    # Promises made in the period: by stage, and by the channel of the last touch (a
    # delivered send or a conversation) before each.
    p = table_of(Promise)
    promised = sa.select(p.c.account_id).where(p.c.made_at >= start, p.c.made_at < end)
    for account_id, at, channel in conn.execute(
            sa.select(d.c.account_id, d.c.time, d.c.channel)
            .select_from(d.join(s, s.c.message_id == d.c.message_id))
            .where(reached, d.c.account_id.in_(promised))):
        touches[account_id].append((at, channel))
    for ts in touches.values():
        ts.sort()
    for account_id, made_at, state in conn.execute(
            sa.select(p.c.account_id, p.c.made_at, p.c.state)
            .where(p.c.made_at >= start, p.c.made_at < end).order_by(p.c.made_at)):
        in_stage = stage_on(account_id, made_at)
        touched = touches.get(account_id, [])
        before = bisect.bisect_right(touched, (made_at, "\uffff"))
        channel_group = by_channel.get(touched[before - 1][1]) if before else None
        for g in _present(total, in_stage, channel_group):
            g.promises += 1
            g.promise_accounts.add(account_id)
            g.kept += state == "kept"
            g.broken += state == "broken"

    o = table_of(OptOut)
    for account_id, channel, at in conn.execute(
            sa.select(o.c.account_id, o.c.channel, o.c.created_at)
            .where(o.c.created_at >= start, o.c.created_at < end)):
        in_stage = stage_on(account_id, at) if account_id else None
        for g in _present(total, in_stage, by_channel.get(channel)):
            g.opt_outs += 1

    costs = {name: cfg.cost for name, cfg in config.channels.items()}
    return {
        "period": {"since": since.isoformat(), "until": until.isoformat()},
        "stages": [{"stage": s.id, "dpd": list(s.dpd), **by_stage[s.id].to_json()}
                   for s in stages],
        "channels": [{"channel": name, **g.to_json(costs.get(name))}
                     for name, g in sorted(by_channel.items())],
        "total": total.to_json(),
        "daily": [{"date": day, **dict(sorted(counts.items()))}
                  for day, counts in sorted(daily.items())],
    }


def _present(*groups: Group | None) -> list[Group]:
    return [g for g in groups if g is not None]


def _first_day(acc: _Account, stage: Stage, since: date, until: date) -> date | None:
    """The first day of the period the account spent in ``stage``, if any."""
    lo, hi = stage.dpd
    first = max(since, acc.due + timedelta(days=lo))
    last = until if hi is None else min(until, acc.due + timedelta(days=hi))
    return first if first <= last else None


def _between(conn: Connection, column: Any, start: datetime, end: datetime) -> Any:
    """``start <= column < end``. On SQLite, when the period holds most of the rows, the
    index on the column is bypassed: a plain scan is about twice as fast then."""
    if conn.dialect.name == "sqlite":
        row = conn.execute(sa.select(sa.func.min(column), sa.func.max(column))).one()
        first, last = _aware(row[0]), _aware(row[1])
        if first is not None and last is not None and (end - start) * 2 >= last - first:
            column = sa.func.coalesce(column, column)  # an expression: no index
    return sa.and_(column >= start, column < end)


def _day(conn: Connection, column: Any) -> Any:
    if conn.dialect.name == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS' UTC text
        return sa.func.substr(column, 1, 10)
    return sa.cast(sa.func.timezone(sa.literal_column("'UTC'"), column), sa.Date)


def _balance_at_entry(acc: _Account, stage: Stage, entry: datetime,
                      paid: Iterable[tuple[datetime, Decimal]]) -> Decimal:
    """The balance when the account entered ``stage``: as stored at entry for the stage
    planning last found it in; else rebuilt from today's balance and the payments since."""
    if acc.stage == stage.id and acc.balance_at_stage_entry is not None:
        return acc.balance_at_stage_entry
    return acc.balance + sum((a for t, a in paid if t >= entry), Decimal(0))


def _load_accounts(conn: Connection, policy: Any) -> dict[str, _Account]:
    a, p = table_of(AccountRow), table_of(Payment)
    last_paid = dict(conn.execute(
        sa.select(p.c.account_id, sa.func.max(p.c.paid_at)).group_by(p.c.account_id)).all())
    found = {}
    for row in conn.execute(sa.select(
            a.c.account_id, a.c.due_date, a.c.balance, a.c.currency, a.c.status,
            a.c.timezone, a.c.country, a.c.region, a.c.updated_at, a.c.stage,
            a.c.balance_at_stage_entry)):
        zone = place_zones(row.timezone, row.country, row.region, policy).primary
        closed_on = None
        if row.status == "closed":
            when = _aware(last_paid.get(row.account_id) or row.updated_at)
            closed_on = when.astimezone(zone).date() if when else None
        found[row.account_id] = _Account(row.account_id, row.due_date, row.balance,
                                         row.currency, zone, closed_on, row.stage,
                                         row.balance_at_stage_entry)
    return found


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # a MAX() over SQLite text skips the column's type
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _load_payments(conn: Connection) -> dict[str, list[tuple[datetime, Decimal]]]:
    p = table_of(Payment)
    found: dict[str, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for account_id, paid_at, amount in conn.execute(
            sa.select(p.c.account_id, p.c.paid_at, p.c.amount)):
        found[account_id].append((paid_at, amount))
    return found


# --- presentation ----------------------------------------------------------------------


def rate_text(rate: Mapping[str, Any]) -> str:
    value = rate["value"]
    return "-" if value is None else f"{value:.1%}"


def money_text(amounts: Mapping[str, str], sep: str = ", ") -> str:
    return sep.join(f"{cur} {Decimal(v):,.2f}" for cur, v in amounts.items()) or "-"


def recovery_text(rates: Mapping[str, Mapping[str, Any]], sep: str = ", ") -> str:
    return sep.join(f"{cur} {rate_text(r)}" for cur, r in rates.items()) or "-"


STAGE_ACTIVITY: tuple[tuple[str, Any], ...] = (
    ("accts", lambda g: str(g["accounts"])),
    ("sends", lambda g: str(g["sends"])),
    ("deliv.", lambda g: rate_text(g["delivery_rate"])),
    ("contact", lambda g: rate_text(g["contact_rate"])),
    ("click", lambda g: rate_text(g["click_rate"])),
    ("promise", lambda g: rate_text(g["promise_rate"])),
    ("kept", lambda g: rate_text(g["kept_rate"])),
    ("roll", lambda g: rate_text(g["roll_rate"])),
)
STAGE_OUTCOME: tuple[tuple[str, Any], ...] = (
    ("recovered", lambda g: money_text(g["recovered"])),
    ("recovery", lambda g: recovery_text(g["recovery_rate"])),
    ("opt-outs", lambda g: str(g["opt_outs"])),
    ("complaints", lambda g: str(g["complaints"])),
    ("failed", lambda g: str(g["failed"])),
    ("ambiguous", lambda g: str(g["ambiguous"])),
)
STAGE_COLUMNS = STAGE_ACTIVITY + STAGE_OUTCOME
CHANNEL_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("accts", lambda g: str(g["accounts"])),
    ("sends", lambda g: str(g["sends"])),
    ("deliv.", lambda g: rate_text(g["delivery_rate"])),
    ("contact", lambda g: rate_text(g["contact_rate"])),
    ("click", lambda g: rate_text(g["click_rate"])),
    ("prom.", lambda g: str(g["promises"])),
    ("kept", lambda g: rate_text(g["kept_rate"])),
    ("opt-outs", lambda g: str(g["opt_outs"])),
    ("cost", lambda g: g.get("cost") or "-"),
)
# Rate columns, with the report key holding their numerator and denominator.
RATE_KEYS = {"deliv.": "delivery_rate", "contact": "contact_rate", "click": "click_rate",
             "promise": "promise_rate", "kept": "kept_rate", "roll": "roll_rate"}


def reason_rows(report: Mapping[str, Any]) -> list[tuple[str, list[int], int]]:
    """``decision:reason`` rows with a count per stage and in all, most frequent first."""
    keys = [k for k in report["total"]["decisions"] if ":" in k or k == "sent"]
    rows = []
    for key in keys:
        counts = [s["decisions"].get(key, 0) for s in report["stages"]]
        rows.append((key, counts, report["total"]["decisions"][key]))
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def print_report(report: Mapping[str, Any], console: Any) -> None:
    """Rich tables: by stage (activity, then outcome), by channel, decisions by reason."""
    from rich import box
    from rich.table import Table

    def new_table(title: str, first: str, columns: Any) -> Table:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column(first, no_wrap=True)
        for name in columns:
            table.add_column(name, justify="right", no_wrap=True)
        return table

    period = report["period"]
    outcome = dict(STAGE_OUTCOME) | {
        "recovered": lambda g: money_text(g["recovered"], "\n"),
        "recovery": lambda g: recovery_text(g["recovery_rate"], "\n"),
    }
    for title, columns in ((f"by stage, {period['since']} to {period['until']}",
                            STAGE_ACTIVITY),
                           ("by stage: money and risk", tuple(outcome.items()))):
        table = new_table(title, "stage", (name for name, _ in columns))
        for group in report["stages"]:
            table.add_row(group["stage"], *(fn(group) for _, fn in columns))
        table.add_row("all", *(fn(report["total"]) for _, fn in columns), style="bold")
        console.print(table)
    channels = new_table("by channel", "channel", (name for name, _ in CHANNEL_COLUMNS))
    for group in report["channels"]:
        channels.add_row(group["channel"], *(fn(group) for _, fn in CHANNEL_COLUMNS))
    console.print(channels)
    reasons = new_table("decisions by reason", "decision:reason",
                        [*(group["stage"] for group in report["stages"]), "all"])
    for key, counts, all_count in reason_rows(report):
        reasons.add_row(key, *(str(c) for c in counts), str(all_count))
    console.print(reasons)
