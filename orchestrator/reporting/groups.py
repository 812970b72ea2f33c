"""The counts of one group of the report (a stage, a channel, or everything) and the
rates they make, each rate with its numerator and denominator so anyone can check it by
hand (the definitions are in ``kpis``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# Delivery statuses that mean the message reached the person (or their voicemail).


@dataclass(frozen=True)
class Rate:
    numerator: int | Decimal
    denominator: int | Decimal

    @property
    def value(self) -> float | None:
        return float(self.numerator) / float(self.denominator) if self.denominator else None

    def to_json(self) -> dict[str, Any]:
        return {
            "numerator": _num(self.numerator),
            "denominator": _num(self.denominator),
            "value": None if self.value is None else round(self.value, 6),
        }

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
    rolls: bool = True  # False for the last stage: there is no stage to roll to

    def rates(self) -> dict[str, Rate]:
        return {
            "delivery_rate": Rate(self.delivered, self.sends),
            "contact_rate": Rate(len(self.contacted), len(self.accounts)),
            "click_rate": Rate(self.clicked, self.delivered),
            "promise_rate": Rate(len(self.promise_accounts), len(self.accounts)),
            "kept_rate": Rate(self.kept, self.kept + self.broken),
            "roll_rate": Rate(len(self.rolled), len(self.accounts) if self.rolls else 0),
        }

    def recovery(self) -> dict[str, Rate]:
        return {
            cur: Rate(self.recovered.get(cur, Decimal(0)), total)
            for cur, total in sorted(self.at_entry.items())
        }

    def to_json(
        self, unit_cost: Decimal | None = None, cost_currency: str | None = None
    ) -> dict[str, Any]:
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
            out["cost_currency"] = cost_currency
        return out
