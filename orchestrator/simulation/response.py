"""A response model for ``simulate --response-model FILE``: what people do after a
contact, so that a strategy can be tried before it goes live.

For each ``sent`` decision (notices excepted) the model gives, by the account's segment,
the channel, and the local hour and weekday of the send, the probability that the
contact leads to a payment of the balance, to a promise (kept with probability
``keep``), or to a conversation (a reply, a call answered by the person), at most one of
the three. The draw for a message is seeded by the model's ``seed`` and the message id
alone, so a run is reproducible, and the same whether the portfolio is split across
processes or not.

It is an assumption to reason with, not a forecast: the figures a run reports follow
from the rates written in the file.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.config.loading import load_model_file
from orchestrator.config.models import CHANNELS, WEEKDAYS, Kind
from orchestrator.core.hours import local_datetime
from orchestrator.core.records import DecisionKind, DecisionRecord
from orchestrator.core.state import AccountState
from orchestrator.simulation.events import ScenarioEvent

Probability = float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rates(_Strict):
    """Per delivered contact: the chance of each outcome (they exclude each other)."""

    pay: Probability | None = Field(default=None, ge=0, le=1)
    promise: Probability | None = Field(default=None, ge=0, le=1)
    reply: Probability | None = Field(default=None, ge=0, le=1)
    keep: Probability | None = Field(default=None, ge=0, le=1)  # a promise is kept


class Rule(Rates):
    """Rates for the contacts it matches; what it does not give comes from ``default``."""

    segments: list[str] | None = None
    channels: list[str] | None = None
    variants: list[str] | None = None
    hours: tuple[int, int] | None = None  # local hours [from, to), e.g. [17, 21]
    days: list[str] | None = None  # local weekdays, mon..sun

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if name not in CHANNELS:
                raise ValueError(f"unknown channel {name!r} (one of {', '.join(CHANNELS)})")
        return value

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if name not in WEEKDAYS:
                raise ValueError(f"unknown weekday {name!r} (mon..sun)")
        return value

    @field_validator("hours")
    @classmethod
    def _hour_range(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] < value[1] <= 24:
            raise ValueError(f"hours {list(value)}: expected [from, to] with 0 <= from < to <= 24")
        return value

    def matches(self, record: DecisionRecord, local: datetime) -> bool:
        return (
            (self.segments is None or record.segment in self.segments)
            and (self.channels is None or record.channel in self.channels)
            and (self.variants is None or record.variant in self.variants)
            and (self.hours is None or self.hours[0] <= local.hour < self.hours[1])
            and (self.days is None or WEEKDAYS[local.weekday()] in self.days)
        )


class PreferredHours(_Strict):
    """Hidden preferred hours (what ``at: best`` should find): each debtor prefers one of
    ``windows`` (local hours [from, to), drawn by the model's seed and the debtor id),
    or none (``1 - share`` of them); a contact's rates are multiplied by ``inside`` at
    the debtor's preferred hours and by ``outside`` at the others."""

    windows: list[tuple[int, int]] = Field(min_length=1)
    share: Probability = Field(default=1.0, ge=0, le=1)
    inside: float = Field(default=2.0, ge=0)
    outside: float = Field(default=1.0, ge=0)

    @field_validator("windows")
    @classmethod
    def _hour_ranges(cls, value: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for lo, hi in value:
            if not 0 <= lo < hi <= 24:
                raise ValueError(f"window [{lo}, {hi}]: expected 0 <= from < to <= 24")
        return value

    def factor(self, seed: int, debtor: str, hour: int) -> float:
        rng = random.Random(f"{seed}\x1fhours\x1f{debtor}")
        if rng.random() >= self.share:
            return 1.0
        lo, hi = self.windows[rng.randrange(len(self.windows))]
        return self.inside if lo <= hour < hi else self.outside


class ResponseModel(_Strict):
    seed: int = 0
    default: Rates = Field(default_factory=Rates)
    rules: list[Rule] = Field(default_factory=list)
    promise_days: int = Field(default=7, ge=1, le=60)  # a promise is due this many days on
    # The chance, each local day, that an account is paid in full with no contact at all
    # (self-cure): what a holdout is compared with.
    daily_pay: Probability = Field(default=0.0, ge=0, le=1)
    preferred_hours: PreferredHours | None = None

    def self_cure(self, state: AccountState, day: date) -> list[ScenarioEvent]:
        """A payment of the balance at local noon of ``day``, with ``daily_pay``'s chance."""
        if self.daily_pay <= 0 or state.closed:
            return []
        account = state.account.account_id
        if random.Random(f"{self.seed}\x1f{account}\x1f{day}").random() >= self.daily_pay:
            return []
        at = local_datetime(day, time(12), state.zones.primary)
        data = {"amount": state.account.balance, "payment_id": f"r-{account}-{day}"}
        return [ScenarioEvent(at, account, "payment", data)]

    def rates(self, record: DecisionRecord, local: datetime) -> tuple[float, float, float, float]:
        """(pay, promise, reply, keep) for this contact: the first matching rule over
        ``default``, each rate it leaves out from ``default`` (0 when neither gives it;
        ``keep`` 0.7)."""
        rule = next((r for r in self.rules if r.matches(record, local)), None)

        def pick(name: str, fallback: float) -> float:
            given = getattr(rule, name) if rule is not None else None
            if given is None:
                given = getattr(self.default, name)
            return fallback if given is None else float(given)

        pay, promise, reply = pick("pay", 0.0), pick("promise", 0.0), pick("reply", 0.0)
        if self.preferred_hours is not None:
            f = self.preferred_hours.factor(self.seed, record.debtor, local.hour)
            pay, promise, reply = (min(1.0, x * f) for x in (pay, promise, reply))
            total = pay + promise + reply
            if total > 1:  # the three exclude each other: scaled to a sum of 1
                pay, promise, reply = pay / total, promise / total, reply / total
        return pay, promise, reply, pick("keep", 0.7)

    def respond(self, record: DecisionRecord, state: AccountState) -> list[ScenarioEvent]:
        """The events that follow a decision: none unless it is a sent contact."""
        if record.decision != DecisionKind.sent or record.kind == Kind.notice:
            return []
        if state.closed or not record.message_id or record.channel is None:
            return []
        zone = state.zones.primary
        local = record.time.astimezone(zone)
        pay, promise, reply, keep = self.rates(record, local)
        rng = random.Random(f"{self.seed}\x1f{record.message_id}")
        u = rng.random()
        account, at = state.account.account_id, record.time
        key = record.message_id
        balance = state.account.balance
        if u < pay:
            data: dict[str, Any] = {"amount": balance, "payment_id": f"r-{key}"}
            return [ScenarioEvent(at + timedelta(hours=4), account, "payment", data)]
        if u < pay + promise:
            talk = at + timedelta(hours=1)
            due = local.date() + timedelta(days=self.promise_days)
            events = [
                ScenarioEvent(talk, account, "conversation", {"channel": record.channel}),
                ScenarioEvent(talk, account, "promise", {"amount": balance, "due": due}),
            ]
            if rng.random() < keep:
                paid_at = local_datetime(due - timedelta(days=1), time(12), zone)
                data = {"amount": balance, "payment_id": f"r-{key}"}
                events.append(ScenarioEvent(paid_at, account, "payment", data))
            return events
        if u < pay + promise + reply:
            talk = at + timedelta(hours=1)
            return [ScenarioEvent(talk, account, "conversation", {"channel": record.channel})]
        return []


def load_response_model(path: Path) -> ResponseModel:
    """The model in ``path`` (YAML), or ``ConfigError`` naming the file, line and key."""
    return load_model_file(path, ResponseModel, "response model")
