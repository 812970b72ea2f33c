"""What a simulated strategy reached: KPIs per segment or per experiment arm, from the
decisions of a run and the events its response model made (``simulate --by``).

The figures mean what the report's mean (docs/cli.md), over the simulated period: an
account counts in every group it had a decision in; **reach** is accounts with a sent
contact (a simulated send is delivered), **contact** accounts with a conversation or a
promise (right-party contact), **promise** and **payment** accounts that made one, and
the amount recovered per account. For an experiment's arms, each against the champion
with the 95% interval of the difference (Newcombe for rates, a bootstrap for amounts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from orchestrator.config.models import CHAMPION, Kind
from orchestrator.core.records import DecisionKind, DecisionRecord
from orchestrator.reporting.stats import (
    bootstrap_mean_difference,
    newcombe,
    sample_size_per_arm,
    wilson,
)

if TYPE_CHECKING:
    from orchestrator.simulation.simulate import Scenario

DIMENSIONS = ("segment", "variant")
RATES = ("reach", "contact", "promise", "payment")

Key = tuple[str | None, ...]


@dataclass
class Tally:
    accounts: set[str] = field(default_factory=set)
    reached: set[str] = field(default_factory=set)
    contacted: set[str] = field(default_factory=set)
    promised: set[str] = field(default_factory=set)
    paid: set[str] = field(default_factory=set)
    recovered: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def rate_sets(self) -> dict[str, set[str]]:
        return {
            "reach": self.reached,
            "contact": self.contacted,
            "promise": self.promised,
            "payment": self.paid,
        }

    def amounts(self, currency: str, currency_of: dict[str, str]) -> list[float]:
        """Recovered per account of the group in ``currency`` (0 for those that paid
        none): amounts of two currencies are never added."""
        return [
            float(self.recovered.get(a, Decimal(0)))
            for a in sorted(self.accounts)
            if currency_of.get(a) == currency
        ]

    def to_json(self, currency_of: dict[str, str]) -> dict[str, Any]:
        n = len(self.accounts)
        out: dict[str, Any] = {"accounts": n}
        for name, members in self.rate_sets().items():
            found = wilson(len(members), n)
            out[name] = None if found is None else found.to_json()
        per: dict[str, Any] = {}
        for cur in sorted({currency_of.get(a, "") for a in self.accounts}):
            values = self.amounts(cur, currency_of)
            per[cur] = round(sum(values) / len(values), 2)
        out["recovered_per_account"] = per
        return out


def _key(record: DecisionRecord, by: str) -> Key | None:
    if by == "segment":
        return (record.segment,)
    if record.experiment is None:
        return None
    return (record.experiment, record.variant)


def tally(
    records: Iterable[DecisionRecord],
    events: Sequence[tuple[datetime, str, str, dict[str, Any]]],
    by: str,
) -> dict[Key, Tally]:
    """Each group's counts: its accounts from the decisions, their outcomes from the
    events (conversation, promise, payment) of the run."""
    groups: dict[Key, Tally] = defaultdict(Tally)
    member_of: dict[str, set[Key]] = defaultdict(set)
    for record in records:
        key = _key(record, by)
        if key is None:
            continue
        group = groups[key]
        group.accounts.add(record.account)
        member_of[record.account].add(key)
        if record.decision == DecisionKind.sent and record.kind != Kind.notice:
            group.reached.add(record.account)
    for _, account, kind, data in events:
        for key in member_of.get(account, ()):
            group = groups[key]
            if kind in ("conversation", "promise", "settlement"):
                group.contacted.add(account)
            if kind in ("promise", "settlement"):  # a settlement is a promise to pay
                group.promised.add(account)
            elif kind == "payment":
                group.paid.add(account)
                group.recovered[account] += Decimal(str(data["amount"]))
    return dict(groups)


def _versus(arm: Tally, base: Tally, currency_of: dict[str, str]) -> dict[str, Any]:
    n, m = len(arm.accounts), len(base.accounts)
    out: dict[str, Any] = {}
    for name, members in arm.rate_sets().items():
        k, j = len(members), len(base.rate_sets()[name])
        diff = newcombe(k, n, j, m)
        out[name] = (
            None
            if diff is None
            else {**diff.to_json(), "sample_size_per_arm": sample_size_per_arm(k / n, j / m)}
        )
    recovered: dict[str, Any] = {}
    for cur in sorted({currency_of.get(a, "") for a in arm.accounts | base.accounts}):
        found = bootstrap_mean_difference(
            arm.amounts(cur, currency_of), base.amounts(cur, currency_of)
        )
        recovered[cur] = None if found is None else found.to_json()
    out["recovered_per_account"] = recovered
    return out


def summary(groups: dict[Key, Tally], by: str, currency_of: dict[str, str]) -> dict[str, Any]:
    """The groups as JSON: for arms, the champion first and each other arm against it."""
    rows: list[dict[str, Any]] = []
    for key in sorted(groups, key=lambda k: tuple((v is None, v or "") for v in k)):
        row: dict[str, Any] = (
            {"segment": key[0]} if by == "segment" else {"experiment": key[0], "variant": key[1]}
        )
        row |= groups[key].to_json(currency_of)
        if by == "variant" and key[1] != CHAMPION:
            base = groups.get((key[0], CHAMPION))
            if base is not None:
                row["versus_champion"] = _versus(groups[key], base, currency_of)
        rows.append(row)
    if by == "variant":
        rows.sort(key=lambda r: (r["experiment"] or "", r["variant"] != CHAMPION))
    return {"by": by, "groups": rows}


def print_summary(data: dict[str, Any], console: Any) -> None:
    """The summary as a terminal table: each rate with its interval; for an arm, its
    difference against the champion, or "not significant yet"."""
    from rich.table import Table

    by = data["by"]
    table = Table(title=f"simulated KPIs by {by}")
    for name in ("group", "accounts", *RATES, "recovered/acct"):
        table.add_column(name, justify="left" if name == "group" else "right")
    for row in data["groups"]:
        label = row["segment"] if by == "segment" else f"{row['experiment']}: {row['variant']}"
        cells = [str(label if label is not None else "-"), str(row["accounts"])]
        for name in RATES:
            cells.append(_rate_cell(row[name], (row.get("versus_champion") or {}).get(name)))
        cells.append(_amount_cell(row, row.get("versus_champion")))
        table.add_row(*cells)
    console.print(table)


def _rate_cell(rate: dict[str, Any] | None, versus: dict[str, Any] | None) -> str:
    if rate is None:
        return "-"
    low, high = rate["ci"]
    text = f"{rate['value']:.1%} [{low:.1%}, {high:.1%}]"
    if versus is None:
        return text
    d_low, d_high = versus["ci"]
    if not versus["significant"]:
        return f"{text}\nvs champion {versus['difference']:+.1%}: not significant yet"
    return f"{text}\nvs champion {versus['difference']:+.1%} [{d_low:+.1%}, {d_high:+.1%}]"


def _amount_cell(row: dict[str, Any], versus: dict[str, Any] | None) -> str:
    lines = []
    against = (versus or {}).get("recovered_per_account") or {}
    for cur, per in row["recovered_per_account"].items():
        text = f"{per:,.2f} {cur}"
        found = against.get(cur)
        if found is not None and not found["significant"]:
            text += " (not significant yet)"
        elif found is not None:
            low, high = found["ci"]
            text += f" {found['difference']:+,.2f} [{low:+,.2f}, {high:+,.2f}]"
        lines.append(text)
    return "\n".join(lines) or "-"


def simulate_summary(scenario: Scenario, by: str) -> tuple[dict[str, Any], list[DecisionRecord]]:
    """Run the scenario in this process; its KPIs by ``by`` and its decisions."""
    from orchestrator.simulation.simulate import Simulation, canonical

    sim = Simulation(scenario)
    records = list(canonical(sim.run()))
    currency_of = {a.account_id: a.currency for a in scenario.accounts}
    return summary(tally(records, sim.applier.timeline, by), by, currency_of), records
