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
- **cost**: sends x the channel's ``cost`` in channels.yaml (an SMS: per segment), in
  the channel's ``currency``.
- **recovered per day**: the total's payments by UTC date and currency, every date of
  the period (zero when none), for the trend chart.
- **comparison**: the total's figures against the period of the same length just before
  (``since - n days`` to ``since - 1``), counted the same way.

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
from orchestrator.core.state import REACHED
from orchestrator.core.zones import place_zones
from orchestrator.reporting.breakdown import DIMENSIONS, Population, count_breakdown
from orchestrator.reporting.cases import case_figures
from orchestrator.reporting.groups import Group
from orchestrator.reporting.heatmap import answer_heatmap
from orchestrator.reporting.sources import source_figures
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

DECISIONS = ("sent", "deferred", "suppressed", "blocked", "skipped", "failed", "ambiguous")


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
    return (
        datetime.combine(since, time(), UTC),
        datetime.combine(until + timedelta(days=1), time(), UTC),
    )


def activity_span(conn: Connection) -> tuple[date, date] | None:
    """The first and last dates (UTC) with a decision: the default report period."""
    t = table_of(Decision)
    first, last = conn.execute(sa.select(sa.func.min(t.c.time), sa.func.max(t.c.time))).one()
    if first is None:
        return None
    return _aware(first).date(), _aware(last).date()  # type: ignore[union-attr]


def build_report(
    conn: Connection,
    config: Config,
    since: date,
    until: date,
    by: str | None = None,
    *,
    now: datetime | None = None,
    heatmap: bool = False,
    compare: bool = True,
) -> dict[str, Any]:
    """The KPIs over ``since``..``until`` (inclusive dates) as one JSON-ready dict; with
    ``by`` (one of ``breakdown.DIMENSIONS``), also ``by`` and the ``groups`` of that
    dimension (``breakdown``); with ``heatmap``, also the share of sends answered by
    channel, local weekday and hour (``heatmap``: what the HTML report draws). Cases open
    and overdue are counted at the end of the period, or at ``now`` if that is earlier.
    With ``compare``, also the ``comparison`` with the period of the same length before."""
    if until < since:
        raise ValueError(f"--until {until} is before --since {since}")
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}: one of {', '.join(DIMENSIONS)}")
    start, end = _window(since, until)
    stages = sorted(config.cadences.stages, key=lambda s: s.dpd[0])
    tally = _Tally(
        stages,
        _load_accounts(conn, config.policy.timezone),
        # The last stage has no next one to roll to: its roll rate is "-", not 0%.
        {s.id: Group(s.id, rolls=s is not stages[-1]) for s in stages},
        {c: Group(c) for c in config.channels},
    )
    payments = _load_payments(conn)
    _count_stages(tally, payments, since, until)
    _count_payments(tally, payments, start, end)
    in_period = _between(conn, table_of(Decision).c.time, start, end)
    daily = _count_decisions(conn, tally, in_period)
    _count_sends(conn, tally, in_period)
    touches = _count_conversations(conn, tally, start, end)
    _count_promises(conn, tally, touches, in_period, start, end)
    _count_opt_outs(conn, tally, start, end)
    report = _report_json(tally, config, since, until, daily)
    report["recovered_daily"] = _recovered_daily(tally, payments, since, until)
    if compare:
        days = (until - since).days + 1
        before = build_report(
            conn, config, since - timedelta(days=days), since - timedelta(days=1), compare=False
        )
        report["comparison"] = comparison(report, before)
    report["sources"] = source_figures(conn, start, end)
    report |= case_figures(
        conn,
        stage_of=lambda account_id, at: getattr(tally.stage_on(account_id, at), "name", None),
        stages=[s.id for s in stages],
        in_period=in_period,
        start=start,
        end=end,
        as_of=end if now is None else min(end, now),
    )
    if by is not None:
        population = Population(
            {a.account_id: a.currency for a in tally.accounts.values()},
            tally.entry_balance,
            tally.total.rolled,
            payments,
        )
        report |= count_breakdown(conn, config, population, by, in_period, (start, end))
    if heatmap:
        report["heatmap"] = answer_heatmap(conn, start, end, config.policy.best_time)
    return report


@dataclass
class _Tally:
    """The groups being counted (by stage, by channel, in all) and the accounts that
    place an event in its stage."""

    stages: list[Stage]  # by their first DPD
    accounts: dict[str, _Account]
    by_stage: dict[str, Group]
    by_channel: dict[str, Group]
    total: Group = field(default_factory=lambda: Group("all"))
    # Each account's balance at its first stage's entry in the period (as in the total).
    entry_balance: dict[str, Decimal] = field(default_factory=dict)

    def stage_on(self, account_id: str, at: datetime) -> Group | None:
        """The group of the stage the account was in at ``at`` (on its local date)."""
        acc = self.accounts.get(account_id)
        if acc is None:
            return None
        dpd = (at.astimezone(acc.zone).date() - acc.due).days
        for stage in self.stages:
            if stage.contains(dpd):
                return self.by_stage[stage.id]
        return None

    def groups(self, stage: str | None, channel: str | None) -> list[Group]:
        """The groups a decision of ``stage`` on ``channel`` counts in."""
        found = [self.total]
        if stage in self.by_stage:
            found.append(self.by_stage[stage])
        if channel is not None:
            found.append(self.channel(channel))
        return found

    def channel(self, name: str) -> Group:
        """The group of a channel, made for one the configuration no longer names."""
        return self.by_channel.setdefault(name, Group(name))


def _count_stages(
    tally: _Tally, payments: Mapping[str, list[tuple[datetime, Decimal]]], since: date, until: date
) -> None:
    """Accounts in each stage over the period, their balance at entry and their rolls.
    In the total, an account counts once, with its balance at its first stage's entry."""
    stages, total = tally.stages, tally.total
    for acc in tally.accounts.values():
        paid = payments.get(acc.account_id, ())
        for i, stage in enumerate(stages):
            first = _first_day(acc, stage, since, until)
            if first is None or (acc.closed_on is not None and acc.closed_on < first):
                continue
            group = tally.by_stage[stage.id]
            group.accounts.add(acc.account_id)
            entry = datetime.combine(acc.due + timedelta(days=stage.dpd[0]), time(), acc.zone)
            balance = _balance_at_entry(acc, stage, entry, paid)
            group.at_entry[acc.currency] += balance
            if acc.account_id not in total.accounts:
                total.accounts.add(acc.account_id)
                total.at_entry[acc.currency] += balance
                tally.entry_balance[acc.account_id] = balance
            if i + 1 < len(stages):
                next_day = acc.due + timedelta(days=stages[i + 1].dpd[0])
                if since <= next_day <= until and (
                    acc.closed_on is None or acc.closed_on >= next_day
                ):
                    group.rolled.add(acc.account_id)
                    total.rolled.add(acc.account_id)


def _count_payments(
    tally: _Tally,
    payments: Mapping[str, list[tuple[datetime, Decimal]]],
    start: datetime,
    end: datetime,
) -> None:
    """Payments: recovered in the stage the account was in when it paid."""
    for account_id, paid in payments.items():
        owner = tally.accounts.get(account_id)
        for at, amount in paid:
            if owner is None or not start <= at < end:
                continue
            for g in _present(tally.total, tally.stage_on(account_id, at)):
                g.recovered[owner.currency] += amount


def _count_decisions(conn: Connection, tally: _Tally, in_period: Any) -> dict[str, Counter[str]]:
    """Decisions by stage, channel and reason (in SQL: a million rows stay in the
    database), and the accounts each channel was tried on. Returns the counts by day."""
    d = table_of(Decision)
    daily: dict[str, Counter[str]] = defaultdict(Counter)
    day = _day(conn, d.c.time)
    rows = conn.execute(
        sa.select(d.c.stage, d.c.channel, d.c.decision, d.c.reason, day, sa.func.count())
        .where(in_period)
        .group_by(d.c.stage, d.c.channel, d.c.decision, d.c.reason, day)
    )
    for stage_id, channel, decision, reason, on, count in rows:
        for g in tally.groups(stage_id, channel):
            g.decisions[decision] += count
            if reason:
                g.decisions[f"{decision}:{reason}"] += count
        day_key = str(on)[:10]
        daily[day_key][decision] += count
        if decision == "sent":
            daily[day_key][f"sent:{channel}"] += count
    tried = conn.execute(  # a decision with no channel (bad_data) tried none
        sa.select(d.c.channel, d.c.account_id).where(in_period, d.c.channel.is_not(None)).distinct()
    )
    for channel, account_id in tried:
        tally.channel(channel).accounts.add(account_id)
    return daily


def _reached(in_period: Any) -> Any:
    """Sends in the period whose delivery status reached the person."""
    d, s = table_of(Decision), table_of(Send)
    return sa.and_(in_period, d.c.decision == "sent", s.c.status.in_(sorted(REACHED)))


def _count_sends(conn: Connection, tally: _Tally, in_period: Any) -> None:
    """Sends by delivery status, then the accounts a delivered send reached."""
    d, s = table_of(Decision), table_of(Send)
    sent = sa.and_(in_period, d.c.decision == "sent")
    for stage_id, channel, status, count, segments in conn.execute(
        sa.select(
            d.c.stage,
            d.c.channel,
            s.c.status,
            sa.func.count(),
            sa.func.sum(sa.func.coalesce(s.c.segments, 1)),
        )
        .select_from(d.outerjoin(s, s.c.message_id == d.c.message_id))
        .where(sent)
        .group_by(d.c.stage, d.c.channel, s.c.status)
    ):
        for g in tally.groups(stage_id, channel):
            g.sends += count
            g.segments += int(segments or 0)
            if status in REACHED:
                g.delivered += count
                g.clicked += count if status == "clicked" else 0
    for stage_id, channel, account_id in conn.execute(
        sa.select(d.c.stage, d.c.channel, d.c.account_id)
        .distinct()
        .select_from(d.join(s, s.c.message_id == d.c.message_id))
        .where(_reached(in_period))
    ):
        for g in tally.groups(stage_id, channel):
            if g is tally.by_channel.get(channel) or account_id in g.accounts:
                g.contacted.add(account_id)


def _count_conversations(
    conn: Connection, tally: _Tally, start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, str]]]:
    """Complaints, and conversations as contacts. Returns the conversations as touches:
    ``(time, channel)`` by account."""
    e = table_of(AccountEvent)
    touches: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    events = conn.execute(
        sa.select(e.c.account_id, e.c.type, e.c.channel, e.c.time).where(
            e.c.time >= start, e.c.time < end, e.c.type.in_(("conversation", "complaint"))
        )
    )
    for account_id, type_, channel, at in events:
        in_stage = tally.stage_on(account_id, at)
        if type_ == "complaint":
            for g in _present(tally.total, in_stage):
                g.complaints += 1
            continue
        touches[account_id].append((at, channel or "-"))
        for g in _present(tally.total, in_stage):
            if account_id in g.accounts:
                g.contacted.add(account_id)
        if channel in tally.by_channel:
            tally.by_channel[channel].contacted.add(account_id)
            tally.by_channel[channel].accounts.add(account_id)
    return touches


def _count_promises(
    conn: Connection,
    tally: _Tally,
    touches: dict[str, list[tuple[datetime, str]]],
    in_period: Any,
    start: datetime,
    end: datetime,
) -> None:
    """Promises made in the period: by stage, and by the channel of the last touch (a
    delivered send or a conversation) before each."""
    d, s, p = table_of(Decision), table_of(Send), table_of(Promise)
    promised = sa.select(p.c.account_id).where(p.c.made_at >= start, p.c.made_at < end)
    for account_id, at, channel in conn.execute(
        sa.select(d.c.account_id, d.c.time, d.c.channel)
        .select_from(d.join(s, s.c.message_id == d.c.message_id))
        .where(_reached(in_period), d.c.account_id.in_(promised))
    ):
        touches[account_id].append((at, channel))
    for ts in touches.values():
        ts.sort()
    for account_id, made_at, state in conn.execute(
        sa.select(p.c.account_id, p.c.made_at, p.c.state)
        .where(p.c.made_at >= start, p.c.made_at < end)
        .order_by(p.c.made_at)
    ):
        in_stage = tally.stage_on(account_id, made_at)
        touched = touches.get(account_id, [])
        before = bisect.bisect_right(touched, (made_at, "\uffff"))
        channel_group = tally.by_channel.get(touched[before - 1][1]) if before else None
        for g in _present(tally.total, in_stage, channel_group):
            g.promises += 1
            g.promise_accounts.add(account_id)
            g.kept += state == "kept"
            g.broken += state == "broken"


def _count_opt_outs(conn: Connection, tally: _Tally, start: datetime, end: datetime) -> None:
    """Opt-outs by stage and channel (a debtor-wide one has no account: no stage)."""
    o = table_of(OptOut)
    for account_id, channel, at in conn.execute(
        sa.select(o.c.account_id, o.c.channel, o.c.created_at).where(
            o.c.created_at >= start, o.c.created_at < end
        )
    ):
        in_stage = tally.stage_on(account_id, at) if account_id else None
        for g in _present(tally.total, in_stage, tally.by_channel.get(channel)):
            g.opt_outs += 1


def _report_json(
    tally: _Tally, config: Config, since: date, until: date, daily: Mapping[str, Counter[str]]
) -> dict[str, Any]:
    costs = {name: cfg.cost for name, cfg in config.channels.items()}
    cost_currency = {name: cfg.currency for name, cfg in config.channels.items()}
    return {
        "period": {"since": since.isoformat(), "until": until.isoformat()},
        "stages": [
            {"stage": s.id, "dpd": list(s.dpd), **tally.by_stage[s.id].to_json()}
            for s in tally.stages
        ],
        "channels": [
            {"channel": name, **g.to_json(costs.get(name), cost_currency.get(name))}
            for name, g in sorted(tally.by_channel.items())
        ],
        "total": tally.total.to_json(),
        "daily": [
            {"date": day, **dict(sorted(counts.items()))} for day, counts in sorted(daily.items())
        ],
    }


def _recovered_daily(
    tally: _Tally,
    payments: Mapping[str, list[tuple[datetime, Decimal]]],
    since: date,
    until: date,
) -> list[dict[str, Any]]:
    """``[{"date": "2026-03-03", "recovered": {"USD": "40.00"}}, ...]``: what the total
    counts as recovered, by UTC date, every date of the period, each currency present in
    the period on every date (``0.00`` when nothing was paid)."""
    start, end = _window(since, until)
    by_day: dict[date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for account_id, paid in payments.items():
        owner = tally.accounts.get(account_id)
        for at, amount in paid:
            if owner is not None and start <= at < end:
                by_day[at.astimezone(UTC).date()][owner.currency] += amount
    currencies = sorted({c for day in by_day.values() for c in day})
    return [
        {
            "date": (since + timedelta(days=i)).isoformat(),
            "recovered": {
                c: str(by_day[since + timedelta(days=i)][c].quantize(Decimal("0.01")))
                for c in currencies
            },
        }
        for i in range((until - since).days + 1)
    ]


COMPARED = ("accounts", "sends", "delivery_rate", "contact_rate", "promise_rate", "kept_rate")


def comparison(report: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """This period's total against ``before``'s: counts and rates, then the amount
    recovered and the recovery rate per currency (in either period). A change is
    ``None`` where either side has no value; a rate's change is in rate units (0.05 is
    5 percentage points)."""
    now, then = report["total"], before["total"]
    rows: list[dict[str, Any]] = []
    for key in COMPARED:
        a, b = now[key], then[key]
        if isinstance(a, dict):
            a, b = a["value"], b["value"]
        change = None if a is None or b is None else round(a - b, 6)
        rows.append({"metric": key, "current": a, "previous": b, "change": change})
    for cur in sorted(set(now["recovered"]) | set(then["recovered"]) | set(now["recovery_rate"])):
        a, b = Decimal(now["recovered"].get(cur, "0")), Decimal(then["recovered"].get(cur, "0"))
        rows.append(
            {
                "metric": "recovered",
                "currency": cur,
                "current": str(a),
                "previous": str(b),
                "change": str(a - b),
            }
        )
        ra = now["recovery_rate"].get(cur, {}).get("value")
        rb = then["recovery_rate"].get(cur, {}).get("value")
        rows.append(
            {
                "metric": "recovery_rate",
                "currency": cur,
                "current": ra,
                "previous": rb,
                "change": None if ra is None or rb is None else round(ra - rb, 6),
            }
        )
    return {"previous": dict(before["period"]), "rows": rows}


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


def _balance_at_entry(
    acc: _Account, stage: Stage, entry: datetime, paid: Iterable[tuple[datetime, Decimal]]
) -> Decimal:
    """The balance when the account entered ``stage``: as stored at entry for the stage
    planning last found it in; else rebuilt from today's balance and the payments since."""
    if acc.stage == stage.id and acc.balance_at_stage_entry is not None:
        return acc.balance_at_stage_entry
    return acc.balance + sum((a for t, a in paid if t >= entry), Decimal(0))


def _load_accounts(conn: Connection, policy: Any) -> dict[str, _Account]:
    a, p = table_of(AccountRow), table_of(Payment)
    last_paid = dict(
        conn.execute(
            sa.select(p.c.account_id, sa.func.max(p.c.paid_at)).group_by(p.c.account_id)
        ).all()
    )
    found = {}
    for row in conn.execute(
        sa.select(
            a.c.account_id,
            a.c.due_date,
            a.c.balance,
            a.c.currency,
            a.c.status,
            a.c.timezone,
            a.c.country,
            a.c.region,
            a.c.updated_at,
            a.c.stage,
            a.c.balance_at_stage_entry,
        )
    ):
        zone = place_zones(row.timezone, row.country, row.region, policy).primary
        closed_on = None
        if row.status == "closed":
            when = _aware(last_paid.get(row.account_id) or row.updated_at)
            closed_on = when.astimezone(zone).date() if when else None
        found[row.account_id] = _Account(
            row.account_id,
            row.due_date,
            row.balance,
            row.currency,
            zone,
            closed_on,
            row.stage,
            row.balance_at_stage_entry,
        )
    return found


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    stamp: datetime = (
        datetime.fromisoformat(value)
        if isinstance(value, str)  # SQLite's
        else value
    )  # MAX() over text skips the column's type
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _load_payments(conn: Connection) -> dict[str, list[tuple[datetime, Decimal]]]:
    p = table_of(Payment)
    found: dict[str, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for account_id, paid_at, amount in conn.execute(
        sa.select(p.c.account_id, p.c.paid_at, p.c.amount)
    ):
        found[account_id].append((paid_at, amount))
    return found
