"""Typed configuration (docs/configuration.md): the models every other module reads.

Loading YAML with line numbers, ``${ENV}`` interpolation and cross-file checks live in
``orchestrator.config.loading``; this module only says what a valid configuration is.
Every model forbids unknown keys: a typo must not silently change behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

CHANNELS = ("sms", "voice", "email", "letter")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Kind(StrEnum):
    collection = "collection"
    service = "service"
    notice = "notice"


class TriggerEvent(StrEnum):
    promise_made = "promise_made"
    promise_due = "promise_due"
    promise_broken = "promise_broken"
    promise_kept = "promise_kept"
    instalment_due = "instalment_due"
    payment_received = "payment_received"
    stage_entered = "stage_entered"
    plan_made = "plan_made"  # a payment plan agreed (its confirmation)
    plan_broken = "plan_broken"  # an instalment missed past its grace: the plan is broken


class PauseEvent(StrEnum):
    conversation = "conversation"
    complaint = "complaint"
    dispute = "dispute"
    promise_made = "promise_made"
    payment = "payment"


_DURATION = re.compile(r"^\s*([+-]?)(\d+)\s*([dhm])\s*$")


@dataclass(frozen=True, order=True)
class Duration:
    """``Nd``, ``Nh`` or ``Nm``. Days stay days: a ``7d`` window is calendar days, not 168h."""

    amount: int
    unit: Literal["d", "h", "m"]

    @property
    def delta(self) -> timedelta:
        if self.unit == "d":
            return timedelta(days=self.amount)
        if self.unit == "h":
            return timedelta(hours=self.amount)
        return timedelta(minutes=self.amount)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    @classmethod
    def parse(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if not isinstance(value, str):
            raise ValueError(f"invalid duration {value!r}: expected Nd, Nh or Nm (e.g. 7d)")
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"invalid duration {value!r}: expected Nd, Nh or Nm (e.g. 7d)")
        sign = -1 if m.group(1) == "-" else 1
        return cls(sign * int(m.group(2)), m.group(3))  # type: ignore[arg-type]


def _parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 10:00 as sexagesimal 600: accept it as minutes.
        hours, minutes = divmod(value, 60)
        if 0 <= hours < 24:
            return time(hours, minutes)
    if isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}", value.strip()):
        hh, mm = (int(x) for x in value.strip().split(":"))
        if hh == 24 and mm == 0:
            return time(23, 59, 59, 999999)
        if 0 <= hh < 24 and 0 <= mm < 60:
            return time(hh, mm)
    raise ValueError(f'invalid time of day {value!r}: expected "HH:MM" (00:00-24:00)')


# What the YAML holds, for the JSON Schemas of the files (``outreach config schema``):
# the parsers above take strings, not the objects they return.
_DURATION_SCHEMA = {
    "type": "string",
    "pattern": r"^\s*[+-]?\d+\s*[dhm]\s*$",
    "description": "Nd, Nh or Nm (e.g. 7d)",
}
_TIME_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*([01]\d|2[0-3]):[0-5]\d\s*$|^\s*24:00\s*$"},
        {"type": "integer", "minimum": 0, "maximum": 1439},  # YAML 1.1's 10:00 (minutes)
    ],
    "description": 'a time of day, "HH:MM" (00:00-24:00)',
}
DurationField = Annotated[
    Duration,
    BeforeValidator(Duration.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
TimeOfDay = Annotated[
    time,
    BeforeValidator(_parse_time),
    PlainSerializer(lambda t: t.strftime("%H:%M")),
    WithJsonSchema(_TIME_SCHEMA),
]


BEST = "best"  # ``at: best``: the hour each debtor answers most (``core.besttime``)


def _parse_at(value: Any) -> time | str:
    if isinstance(value, str) and value.strip() == BEST:
        return BEST
    return _parse_time(value)


def _parse_window(value: Any) -> tuple[time, time]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, str) and value.count("-") == 1:
        start, end = (_parse_time(part.strip()) for part in value.split("-"))
        if start < end:
            return start, end
    raise ValueError(f'invalid window {value!r}: expected "HH:MM-HH:MM" with start before end')


AtField = Annotated[
    time | str,
    BeforeValidator(_parse_at),
    PlainSerializer(lambda t: t if isinstance(t, str) else t.strftime("%H:%M")),
    WithJsonSchema(
        {
            "anyOf": [_TIME_SCHEMA, {"const": BEST}],
            "description": 'a time of day "HH:MM", or "best": the hour this debtor answers most',
        }
    ),
]
WindowField = Annotated[
    tuple[time, time],
    BeforeValidator(_parse_window),
    PlainSerializer(lambda w: f"{w[0].strftime('%H:%M')}-{w[1].strftime('%H:%M')}"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*\d{2}:\d{2}\s*-\s*\d{2}:\d{2}\s*$",
            "description": 'local hours "HH:MM-HH:MM" an "at: best" send may be planned in',
        }
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


# --- cadences.yaml -----------------------------------------------------------------------


class SegmentFilter(Strict):
    """``segments: [ids]`` (only accounts in one of these) or ``except_segments: [ids]``
    (all but these; an account in no segment is in none of them)."""

    segments: list[str] | None = None
    except_segments: list[str] | None = None

    def admits(self, segment: str | None) -> bool:
        if self.segments is not None and segment not in self.segments:
            return False
        return not (self.except_segments is not None and segment in self.except_segments)


class Timed(SegmentFilter):
    """When in the local day a step or trigger is planned: ``at: "HH:MM"``, or ``at:
    best``: the hour this debtor has answered most on the channel (``core.besttime``),
    inside ``window`` and the permitted hours, else ``at_default``."""

    at: AtField | None = None
    window: WindowField | None = None
    at_default: TimeOfDay | None = None

    @model_validator(mode="after")
    def _best_only(self) -> Timed:
        if self.at != BEST:
            for name in ("window", "at_default"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies only with at: best")
        return self

    @property
    def best(self) -> bool:
        return self.at == BEST

    @property
    def fixed_at(self) -> time | None:
        """The time of day ``at`` gives, ``None`` for none or ``best``."""
        return self.at if isinstance(self.at, time) else None


class Step(Timed):
    id: str
    channel: str
    template: str
    on_dpd: list[int] | None = None
    every: DurationField | None = None
    kind: Kind = Kind.collection
    expires: DurationField = Duration(1, "d")


class Stage(SegmentFilter):
    id: str
    dpd: tuple[int, int | None]
    steps: list[Step] = Field(default_factory=list)

    def contains(self, dpd: int) -> bool:
        lo, hi = self.dpd
        return dpd >= lo and (hi is None or dpd <= hi)


class Trigger(Timed):
    id: str
    on: TriggerEvent
    offset: DurationField = Duration(0, "d")
    channel: str
    template: str
    kind: Kind | None = None
    expires: DurationField = Duration(1, "d")
    stages: list[str] | None = None  # extension: fire only while the account is in these

    @property
    def effective_kind(self) -> Kind:
        """Collection for promise_broken, plan_broken and stage_entered, else service
        (docs/configuration.md)."""
        if self.kind is not None:
            return self.kind
        if self.on in (
            TriggerEvent.promise_broken,
            TriggerEvent.plan_broken,
            TriggerEvent.stage_entered,
        ):
            return Kind.collection
        return Kind.service


class Cadences(Strict):
    stages: list[Stage] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)

    def stage_for(self, dpd: int) -> Stage | None:
        for stage in self.stages:
            if stage.contains(dpd):
                return stage
        return None


# --- segments.yaml -----------------------------------------------------------------------


def _one_or_many(value: Any) -> Any:
    """``currency: USD`` as ``[USD]``: a single value where a list is expected."""
    return [value] if isinstance(value, str) else value


Names = Annotated[
    list[str],
    BeforeValidator(_one_or_many),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]
Count = Annotated[int, Field(ge=0)]


class SegmentWhen(Strict):
    """The conditions of one segment rule; all that are given must hold (none: always).

    Amounts and scores are compared as decimals; counts are over the ``within`` window
    before the day (promises made, kept and broken; payments). Behaviour is read as it
    stood at the start of the debtor's local day, so a segment holds for a whole day."""

    balance_min: Decimal | None = None
    balance_max: Decimal | None = None
    currency: Names | None = None
    creditor: Names | None = None
    product: Names | None = None
    imported: Names | None = None  # the ``segment`` column of the accounts file
    risk_score_min: Decimal | None = None
    risk_score_max: Decimal | None = None
    dpd_min: int | None = None
    dpd_max: int | None = None
    promises_made_min: Count | None = None
    promises_made_max: Count | None = None
    promises_kept_min: Count | None = None
    promises_kept_max: Count | None = None
    promises_broken_min: Count | None = None
    promises_broken_max: Count | None = None
    payments_min: Count | None = None
    payments_max: Count | None = None
    days_since_conversation_min: Count | None = None
    days_since_conversation_max: Count | None = None
    # Whole days since the last contact that reached the person (a delivery receipt,
    # an answered call, an opened email) or the last conversation.
    days_since_contact_min: Count | None = None
    days_since_contact_max: Count | None = None
    # Responded (a call answered by the person, a link followed) / reached, over the
    # contacts sent within ``within``; an account with none reached has no share.
    responsiveness_min: Decimal | None = Field(default=None, ge=0, le=1)
    responsiveness_max: Decimal | None = Field(default=None, ge=0, le=1)
    within: DurationField = Duration(90, "d")

    @cached_property
    def reads_contacts(self) -> bool:
        return any(
            v is not None
            for v in (
                self.days_since_contact_min,
                self.days_since_contact_max,
                self.responsiveness_min,
                self.responsiveness_max,
            )
        )

    @cached_property
    def counts_behaviour(self) -> bool:
        """Some condition counts promises or payments in the window."""
        return any(
            v is not None
            for v in (
                self.promises_made_min,
                self.promises_made_max,
                self.promises_kept_min,
                self.promises_kept_max,
                self.promises_broken_min,
                self.promises_broken_max,
                self.payments_min,
                self.payments_max,
            )
        )

    @cached_property
    def always(self) -> bool:
        """No condition at all: every account matches."""
        return not self.model_dump(exclude_none=True, exclude={"within"})


class SegmentRule(Strict):
    id: str
    when: SegmentWhen = Field(default_factory=SegmentWhen)
    description: str | None = None


class Segments(Strict):
    segments: list[SegmentRule] = Field(default_factory=list)

    @cached_property
    def ids(self) -> frozenset[str]:
        return frozenset(rule.id for rule in self.segments)

    @cached_property
    def reads_contacts(self) -> bool:
        """Some rule reads the messages sent and their receipts: the engine keeps them."""
        return any(rule.when.reads_contacts for rule in self.segments)


# --- experiments.yaml --------------------------------------------------------------------

HOLDOUT = "holdout"  # the variant of an experiment's holdout
CHAMPION = "champion"  # the arm the report and simulate compare the others with


class Arm(Strict):
    """One arm: its share of the debtors, and the steps that replace the stage's own
    (none: the stage's own steps, the champion)."""

    id: str
    share: float = Field(ge=0, le=1)
    steps: list[Step] | None = None


class Experiment(Strict):
    id: str
    stage: str
    salt: str
    start: date | None = None  # local dates, inclusive; outside them: the champion
    end: date | None = None
    holdout: float = Field(default=0.0, ge=0, le=1)
    arms: list[Arm] = Field(default_factory=list)

    def active_on(self, day: date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


class Experiments(Strict):
    experiments: list[Experiment] = Field(default_factory=list)

    def for_stage(self, stage_id: str, day: date) -> Experiment | None:
        """The experiment running on the stage that day (the first listed)."""
        for experiment in self.experiments:
            if experiment.stage == stage_id and experiment.active_on(day):
                return experiment
        return None


# --- policy.yaml -------------------------------------------------------------------------


class HoursWindow(Strict):
    start: TimeOfDay
    end: TimeOfDay
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None


HoursSpec = HoursWindow | Literal["any"]


class HolidayRule(Strict):
    country: str | None = None  # default: the account's own country
    region: str | None = None
    channels: list[str] = Field(default_factory=lambda: list(CHANNELS))


class Limit(Strict):
    id: str
    channels: list[str]
    max: int = Field(ge=0)
    window: DurationField
    scope: Literal["account", "debtor"] = "account"
    # Count the contacts collection agencies report (``agency_contact`` events) as well
    # as our own sends: a cap on the institution and its agencies combined (China).
    agency_contacts: bool = False


class Pause(Strict):
    id: str
    after: PauseEvent
    channels: list[str]
    days: int = Field(ge=1)


class PromiseBounds(Strict):
    """What a promise to pay may be: the REST API (422) and scenario files refuse any
    other, with the bound it breaks. A pending promise suppresses collection, so without
    bounds a $1 promise due in 2062 silenced an account for 36 years.

    ``max_days_ahead``: the due date at most this many days after the day the promise is
    made (the debtor's local day), and not before it. ``min_amount`` (in the account's
    currency) and ``min_share_of_balance`` (0.02 is 2% of the balance when it is made):
    the amount must reach both, unless it pays the whole balance."""

    max_days_ahead: int = Field(default=30, ge=0, le=3660)
    min_amount: Decimal | None = Field(default=None, ge=0)
    min_share_of_balance: Decimal | None = Field(default=None, ge=0, le=1)


class PlanBounds(Strict):
    """What a payment plan may be (refused as promises are, with the bound it breaks).

    ``max_instalments``: how many. ``max_days_between``: the longest wait from the day the
    plan is agreed to its first instalment, and between two instalments (a month is at
    most 31 days; a little more lets a due date move off a weekend). ``min_instalment`` (in
    the account's currency): each instalment at least this, except a last one that pays
    the rest of the balance."""

    max_instalments: int = Field(default=60, ge=1, le=360)
    max_days_between: int = Field(default=35, ge=1, le=366)
    min_instalment: Decimal | None = Field(default=None, ge=0)


def _share(value: Any) -> Any:
    """``"30%"`` or ``0.30``: a share, as a Decimal (its bounds are the field's)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1].strip()
        try:
            share = Decimal(number) / 100
            if share.is_finite():
                return share
        except ArithmeticError:
            pass
        raise ValueError(f'expected a percentage like "30%" or a share like 0.30, got {value!r}')
    if isinstance(value, float):
        return Decimal(str(value))
    return value


# A share of a balance, written "30%" or 0.30.
Share = Annotated[
    Decimal,
    BeforeValidator(_share),
    PlainSerializer(lambda d: f"{d * 100:f}%", return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$"},
                {"type": "number", "minimum": 0, "maximum": 1},
            ]
        }
    ),
]


class SettlementBounds(Strict):
    """The most any creditor may waive in a settlement, as a share of the balance: a cap
    on the authority ``creditors.yaml`` gives (``settlement.max_discount``), so that no
    creditor's file can offer more. Caps only tighten: the smallest of the policy's and
    of every overlay that sets one applies. ``0%``: no settlement is offered."""

    max_discount: Share | None = None

    @field_validator("max_discount")
    @classmethod
    def _share(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not 0 <= value < 1:
            raise ValueError(f"max_discount must be from 0% to below 100%, got {value:.2%}")
        return value


class PriorityKey(Strict):
    """One key of the order in which due sends take a limit's or a budget's room:
    ``segment`` (the ``segments`` listed first, in that order, then the rest),
    ``promise_broken`` (a debtor who broke a promise in the last 90 days first),
    ``balance`` or ``dpd`` (highest first; ``descending: false`` for lowest first)."""

    by: Literal["segment", "promise_broken", "balance", "dpd"]
    segments: list[str] | None = None
    descending: bool = True


class Budget(Strict):
    """At most ``max`` sends of these channels in each ``window`` (whole hours or days
    of the clock in ``zone``, default the policy's default zone), over all debtors: what
    a dialer's capacity or a day's SMS spend allows. A send beyond it is deferred
    (reason ``budget``) to the next window."""

    id: str
    channels: list[str]
    max: int = Field(ge=0)
    window: DurationField = Duration(1, "d")
    zone: str | None = None


class BestTime(Strict):
    """How ``at: best`` learns each debtor's hour (``core.besttime``; docs/configuration.md).

    A send counts as answered when, within ``attribution`` of it, the call was picked up,
    the link clicked, a reply came, or a conversation, promise or payment was recorded.
    Each hour's answer rate is a Beta posterior: the debtor's own sends at that hour
    (and ``neighbour_weight`` of those an hour either side) over a prior whose mean is the
    segment's rate at that hour (itself shrunk toward the portfolio's by
    ``segment_weight`` sends) and whose weight is ``prior_weight`` sends."""

    method: Literal["thompson", "mean"] = "thompson"
    explore: float = Field(default=0.05, ge=0, le=1)
    prior_weight: float = Field(default=2.0, gt=0)
    segment_weight: float = Field(default=20.0, gt=0)
    neighbour_weight: float = Field(default=0.5, ge=0, le=1)
    attribution: DurationField = Duration(6, "h")
    seed: str = "best-time"

    @field_validator("attribution")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if value.delta <= timedelta(0) or value.delta > timedelta(days=7):
            raise ValueError("attribution: expected a duration above 0 and at most 7d")
        return value


class ValidationNotice(Strict):
    """The US validation notice (Reg F 1006.34): sent once to every account it applies to,
    before any collection send; the validation period starts ``assumed_receipt`` after it
    is sent and lasts ``period`` (docs/configuration.md, ``validation_notice``)."""

    channel: Literal["letter", "email"] = "letter"
    template: str = "validation_notice"
    assumed_receipt: DurationField = Duration(5, "d")
    period: DurationField = Duration(30, "d")

    @field_validator("assumed_receipt", "period")
    @classmethod
    def _in_days(cls, value: Duration) -> Duration:
        if value.unit != "d" or value.amount < 0 or value.amount > 366:
            raise ValueError("expected whole days from 0d to 366d")
        return value


class Overlay(Strict):
    """Extra rules for a jurisdiction or a policy profile: limits and pauses accumulate,
    hours intersect, holidays add. Promise and plan bounds are terms, not protections:
    each key an overlay gives replaces the policy's (a country's own currency and
    practice), in the order the overlays apply (country, region, creditor profile)."""

    hours: dict[str, HoursSpec] | None = None
    limits: list[Limit] = Field(default_factory=list)
    pauses: list[Pause] = Field(default_factory=list)
    holidays: HolidayRule | None = None
    promises: PromiseBounds | None = None
    plans: PlanBounds | None = None
    # A cap on settlement discounts here (the smallest cap that applies wins).
    settlements: SettlementBounds | None = None
    # The validation notice for the accounts of this place or profile (the last overlay
    # that sets one wins over the base policy's).
    validation_notice: ValidationNotice | None = None


ZoneSource = Literal["explicit", "address", "phone"]


def _all_zone_sources() -> list[ZoneSource]:
    return ["explicit", "address", "phone"]


def _default_hours() -> dict[str, HoursSpec]:
    return {"default": HoursWindow(start=time(8), end=time(21))}


class TimezonePolicy(Strict):
    default: str = "America/New_York"
    sources: list[ZoneSource] = Field(default_factory=_all_zone_sources)


class Suppression(Strict):
    promise_grace: DurationField = Duration(1, "d")
    after_kept: DurationField = Duration(14, "d")


CASE_CATEGORIES = [
    "harassment",
    "wrong_person",
    "amount_disputed",
    "identity_theft",
    "hardship",
    "other",
]
_CASE_CATEGORY = r"^[a-z][a-z0-9_]{0,49}$"


class CaseSla(Strict):
    """How long a case may wait: to be acknowledged, and to be resolved, from its
    opening. With ``working_days``, a ``Nd`` counts working days (not Saturday, Sunday
    or a public holiday of the account's country) and ends at midnight in the policy's
    default zone; ``Nh``/``Nm`` are always elapsed time."""

    acknowledge: DurationField = Duration(1, "d")
    resolve: DurationField = Duration(15, "d")
    working_days: bool = True

    @field_validator("acknowledge", "resolve")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if value.amount <= 0:
            raise ValueError(f"{value}: a deadline must be after the opening")
        return value


class CasePolicy(Strict):
    """Complaints and disputes as cases: the categories a case may have (the one given
    to a case opened by an event that names none: ``default_category``) and the SLA."""

    categories: list[Annotated[str, Field(pattern=_CASE_CATEGORY)]] = Field(
        default_factory=lambda: list(CASE_CATEGORIES), min_length=1
    )
    default_category: str = "other"
    sla: CaseSla = Field(default_factory=CaseSla)

    @model_validator(mode="after")
    def _default_is_listed(self) -> CasePolicy:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("cases.categories: a category is listed twice")
        if self.default_category not in self.categories:
            raise ValueError(
                f"cases.default_category {self.default_category!r} is not one of cases.categories"
            )
        return self


_TASK_TYPE = r"^[a-z][a-z0-9_]{0,39}$"


class TaskRule(Strict):
    """What a rule's task is: its ``type`` (one open task per account and type), its
    ``priority`` (1 first) and how long after its creation it is due."""

    type: Annotated[str, Field(pattern=_TASK_TYPE)]
    priority: int = Field(default=3, ge=1, le=9)
    due: DurationField = Duration(1, "d")

    @field_validator("due")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if value.amount <= 0:
            raise ValueError(f"{value}: a task is due after its creation")
        return value


class UnreachedRule(TaskRule):
    """An account in one of ``stages`` with no delivered contact in ``days`` days."""

    stages: list[str] = Field(min_length=1)
    days: int = Field(ge=1, le=365)


class TaskRules(Strict):
    """The events that make a task for a person (none listed: no task). ``hardship``
    and ``inbound_reply`` are read from an inbound text: a hardship phrase makes a
    hardship task, any other text that is no keyword an inbound reply task."""

    inbound_reply: TaskRule | None = None
    hardship: TaskRule | None = None
    case_opened: TaskRule | None = None
    promises_broken: TaskRule | None = None
    plan_broken: TaskRule | None = None
    unreached: UnreachedRule | None = None
    callback: TaskRule | None = None


class TaskPolicy(Strict):
    """The work queue: the rules that create tasks, and the hardship phrases (per
    language; a phrase of any language is matched, case-insensitively)."""

    rules: TaskRules = Field(default_factory=TaskRules)
    hardship_phrases: dict[str, list[Annotated[str, Field(min_length=2, max_length=100)]]] = Field(
        default_factory=dict
    )
    promises_broken: int = Field(default=2, ge=1, le=20)  # how many broken make a task


class ContentRule(Strict):
    """A lint rule: templates of these channels (and locales) must contain one of ``any_of``
    (case-insensitive, in the rendered text). ``when: debt_collector`` applies the rule only
    to messages of creditors with ``debt_collector: true`` (the Reg F disclosure)."""

    id: str
    channels: list[str]
    any_of: list[str]
    locales: list[str] | None = None
    when: Literal["always", "debt_collector"] = "always"
    message: str | None = None


# Channels that reach a person through an automated system (texts, prerecorded calls):
# what an opt-out stops under ``opt_out_scope: automated`` (the FCC's revoke-all rule).
AUTOMATED_CHANNELS = frozenset({"sms", "voice"})


def _default_revocation_phrases() -> dict[str, list[str]]:
    """Sentences in which people ask not to be contacted; matched inside any text that is
    not a keyword (``orchestrator.core.keywords``). Ops extend them in ``policy.yaml``."""
    return {
        "en": [
            "stop calling",
            "stop texting",
            "stop messaging",
            "stop contacting",
            "stop sending",
            "dont call",
            "do not call",
            "dont text",
            "do not text",
            "dont contact",
            "do not contact",
            "dont message",
            "do not message",
            "no more calls",
            "no more texts",
            "no more messages",
            "remove me",
            "remove my number",
            "take me off",
            "leave me alone",
            "opt me out",
            "unsubscribe me",
            "cease and desist",
        ],
        "zh": [
            "不要再打",
            "别再打",
            "不要打电话",
            "别打电话",
            "不要给我打",
            "别给我打",
            "不要再发",
            "别再发",
            "不要发短信",
            "别发短信",
            "不要再联系",
            "别再联系",
            "不要联系我",
            "别联系我",
            "退订",
            "取消订阅",
            "拒收",
        ],
    }


class Policy(Strict):
    timezone: TimezonePolicy = Field(default_factory=TimezonePolicy)
    preferred_time: TimeOfDay = time(10, 0)
    hours: dict[str, HoursSpec] = Field(default_factory=_default_hours)
    holidays: HolidayRule | None = None
    limits: list[Limit] = Field(default_factory=list)
    pauses: list[Pause] = Field(default_factory=list)
    jurisdictions: dict[str, Overlay] = Field(default_factory=dict)
    profiles: dict[str, Overlay] = Field(default_factory=dict)  # chosen per creditor
    suppression: Suppression = Field(default_factory=Suppression)
    promises: PromiseBounds = Field(default_factory=PromiseBounds)
    plans: PlanBounds = Field(default_factory=PlanBounds)
    settlements: SettlementBounds = Field(default_factory=SettlementBounds)
    content: list[ContentRule] = Field(default_factory=list)
    forbidden: list[str] = Field(default_factory=list)  # extra forbidden phrases for lint
    opt_out_confirmation: bool = True
    # Which due sends go first when a limit or a budget has room for some only (after
    # that: the oldest planned, then by account). Empty: the oldest planned first.
    priority: list[PriorityKey] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    # What an SMS opt-out (STOP) stops: ``sms`` only, or ``automated``: texts and
    # prerecorded calls alike, and a voice opt-out texts too (revoke-all). Counsel decides.
    opt_out_scope: Literal["sms", "automated"] = "sms"
    revocation_phrases: dict[str, list[str]] = Field(default_factory=_default_revocation_phrases)
    best_time: BestTime = Field(default_factory=BestTime)
    cases: CasePolicy = Field(default_factory=CasePolicy)
    tasks: TaskPolicy = Field(default_factory=TaskPolicy)
    # The US validation notice for every account (an overlay may set it for some only).
    validation_notice: ValidationNotice | None = None

    @field_validator("revocation_phrases")
    @classmethod
    def _over_the_built_in_lists(cls, given: dict[str, list[str]]) -> dict[str, list[str]]:
        """A language given in ``policy.yaml`` replaces that language's built-in list;
        the other languages keep theirs (``[]`` switches one off)."""
        return {**_default_revocation_phrases(), **given}

    def opt_out_channels(self, channel: str) -> frozenset[str]:
        """The channels an opt-out of ``channel`` stops."""
        if self.opt_out_scope == "automated" and channel in AUTOMATED_CHANNELS:
            return AUTOMATED_CHANNELS
        return frozenset({channel})

    @cached_property
    def revocations(self) -> tuple[str, ...]:
        """Every language's revocation phrases, for ``classify_inbound``."""
        return tuple(p for phrases in self.revocation_phrases.values() for p in phrases)


# --- channels.yaml -----------------------------------------------------------------------


class RetryPolicy(Strict):
    attempts: int = Field(default=3, ge=1)
    backoff: DurationField = Duration(1, "m")
    max_backoff: DurationField = Duration(15, "m")
    jitter: bool = True


class ChannelConfig(BaseModel):
    """One channel: which adapter delivers it, plus that adapter's own settings.

    Adapter-specific keys are checked by the adapter's own settings model at load time.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    adapter: str
    rate: str | None = None  # e.g. 10/s
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # What one send costs (an SMS: one segment), for `outreach report`, in `currency`
    # (ISO 4217); the report shows each channel's cost in its own currency, unconverted.
    cost: Decimal | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# --- creditors.yaml ----------------------------------------------------------------------


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _working_week() -> tuple[Weekday, ...]:
    return ("mon", "tue", "wed", "thu", "fri")


class AgentHours(Strict):
    """When a creditor's agents answer the phone: from ``start`` to ``end`` on ``days``,
    in ``timezone`` (default: the policy's ``timezone.default``)."""

    start: TimeOfDay
    end: TimeOfDay
    days: tuple[Weekday, ...] = Field(default_factory=_working_week, min_length=1)
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> AgentHours:
        if self.end <= self.start:
            raise ValueError("agent_hours: end must be after start")
        return self


class PlanFrequency(StrEnum):
    weekly = "weekly"
    biweekly = "biweekly"
    monthly = "monthly"


class PlanOffers(Strict):
    """The instalment plans a creditor lets debtors choose themselves on the e-bill page
    (``/p/<token>``): from 2 to ``max_instalments`` equal instalments (the last one pays
    the rest), each at least ``min_instalment`` (in the account's currency), at one of
    the ``frequencies``, the first due within ``first_payment_within`` of the day the
    plan is chosen. Offers outside the policy's ``plans:`` bounds are never shown, nor any
    while a plan runs or after more than ``reoffers`` broken plans."""

    max_instalments: int = Field(default=6, ge=2, le=360)
    min_instalment: Decimal | None = Field(default=None, ge=0)
    frequencies: tuple[PlanFrequency, ...] = Field(
        default=(PlanFrequency.monthly,), min_length=1, max_length=3
    )
    first_payment_within: DurationField = Duration(14, "d")
    # How many times plans are offered again after one is broken (1: once): an account
    # with more broken plans than this is offered none (it may still pay or promise).
    reoffers: int = Field(default=1, ge=0, le=100)

    @field_validator("first_payment_within")
    @classmethod
    def _days(cls, value: Duration) -> Duration:
        if value.unit != "d" or not 0 <= value.amount <= 366:
            raise ValueError("first_payment_within must be 0d to 366d")
        return value


class SettlementWaives(StrEnum):
    balance = "balance"  # a share of the whole balance
    interest_and_fees = "interest_and_fees"  # only interest and fees: principal is paid in full


class SettlementOffers(Strict):
    """The settlement a creditor lets debtors accept themselves on the e-bill page: pay
    less than the balance by a date, the rest waived. ``max_discount`` is the creditor's
    authority, a share of the balance (``"30%"``); ``waives``: what may be reduced, the
    whole ``balance`` or only ``interest_and_fees`` (减免: the principal is paid in full,
    so an account without its breakdown is offered none). Offered to accounts in one of
    ``stages`` (none: any) at least ``min_days_past_due`` overdue, with no plan running,
    promise pending, dispute or settlement made before; due ``pay_within`` of the day it
    is accepted. The policy's ``settlements.max_discount`` caps it."""

    max_discount: Share

    @field_validator("max_discount")
    @classmethod
    def _share(cls, value: Decimal) -> Decimal:
        if not 0 < value < 1:
            raise ValueError(f"max_discount must be above 0% and below 100%, got {value:.2%}")
        return value

    waives: SettlementWaives = SettlementWaives.balance
    stages: tuple[str, ...] | None = Field(default=None, min_length=1)
    min_days_past_due: int = Field(default=0, ge=0, le=36500)
    pay_within: DurationField = Duration(14, "d")
    min_amount: Decimal | None = Field(default=None, ge=0)  # never settle below this

    @field_validator("pay_within")
    @classmethod
    def _days(cls, value: Duration) -> Duration:
        if value.unit != "d" or not 0 <= value.amount <= 366:
            raise ValueError("pay_within must be 0d to 366d")
        return value


class Creditor(Strict):
    name: str
    phone: str
    bank_account: str = ""
    pay_url: str = ""
    letter_deadline: DurationField = Duration(10, "d")
    address: str | None = None
    email: str | None = None
    complaints: str | None = None  # complaint channel shown in letters
    licence: str | None = None  # e.g. a California licence number for letters
    debt_collector: bool = False  # add the Reg F debt-collector disclosure
    policy: str | None = None  # name of a policy.yaml profile that applies to its accounts
    # Pressing 2 on a call: transferred to this line within agent_hours, else a callback task.
    agent_phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    agent_hours: AgentHours | None = None
    # The e-bill page: the plans its debtors may choose themselves (none: no e-bill page,
    # the pay link goes straight to ``pay_url``).
    plans: PlanOffers | None = None
    # The settlement its debtors may accept on the e-bill page (none: none offered).
    settlement: SettlementOffers | None = None


# What a placement file may hold of an account (``agencies``): the agreement names some.
PlacementField = Literal[
    "account_id",
    "reference",
    "creditor",
    "balance",
    "currency",
    "due_date",
    "stage",
    "name",
    "phone",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
]
PERSONAL_PLACEMENT_FIELDS = ("name", "phone", "email", "address_line1", "address_line2")


class Agency(Strict):
    """A collection agency accounts are placed with (``outreach placements place``)."""

    name: str
    # The fields its agreement lets us give it, in the placement file's column order.
    fields: list[PlacementField] = Field(min_length=1)
    dir: str = "var/placements"  # where its placement files are written

    @field_validator("fields")
    @classmethod
    def _once_each(cls, fields: list[str]) -> list[str]:
        twice = sorted({f for f in fields if fields.count(f) > 1})
        if twice:
            raise ValueError(f"{twice[0]!r} is listed twice")
        return fields

    # The e-bill page: the plans its debtors may choose themselves (none: no e-bill page,
    # the pay link goes straight to ``pay_url``).
    plans: PlanOffers | None = None


class Creditors(Strict):
    creditors: dict[str, Creditor] = Field(default_factory=dict)
    # Collection agencies (委外), by id: ``outreach placements place --agency ID``.
    agencies: dict[str, Agency] = Field(default_factory=dict)


# --- everything --------------------------------------------------------------------------


# --- webhooks.yaml -----------------------------------------------------------------------

_SUBSCRIPTION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class WebhookSubscription(Strict):
    """One receiver (a CRM): where to post, which events, and the name of the environment
    variable holding its ``whsec_`` secret (never the secret itself)."""

    id: str = Field(pattern=_SUBSCRIPTION_ID)
    url: str = Field(pattern=r"^https?://[^\s/]+")
    events: list[str] = Field(min_length=1)
    secret_env: str = Field(pattern=_ENV_NAME)


def _webhook_retry() -> RetryPolicy:
    return RetryPolicy(attempts=10, backoff=Duration(1, "m"), max_backoff=Duration(1, "h"))


class Webhooks(Strict):
    """``webhooks.yaml``: the subscriptions, and how each delivery is tried: ``retry``
    (attempts before it is dead-lettered, exponential backoff) and ``timeout`` (seconds
    one post may take)."""

    subscriptions: list[WebhookSubscription] = Field(default_factory=list)
    retry: RetryPolicy = Field(default_factory=_webhook_retry)
    timeout: float = Field(default=10.0, gt=0, le=120)


class Config(Strict):
    cadences: Cadences = Field(default_factory=Cadences)
    policy: Policy = Field(default_factory=Policy)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    creditors: Creditors = Field(default_factory=Creditors)
    segments: Segments = Field(default_factory=Segments)
    experiments: Experiments = Field(default_factory=Experiments)
    webhooks: Webhooks = Field(default_factory=Webhooks)

    def creditor(self, key: str | None) -> Creditor | None:
        if key is None:
            return next(iter(self.creditors.creditors.values()), None)
        return self.creditors.creditors.get(key)

    @cached_property
    def uses_best_time(self) -> bool:
        """Some step or trigger is planned ``at: best``: the engine keeps what it learns."""
        return any(step.best for step in self.steps())

    def steps(self) -> Iterator[Step | Trigger]:
        """Every step that can be planned: the stages', the triggers', the experiment
        arms'."""
        for stage in self.cadences.stages:
            yield from stage.steps
        yield from self.cadences.triggers
        for experiment in self.experiments.experiments:
            for arm in experiment.arms:
                yield from arm.steps or []

    def step(self, step_id: str) -> Step | Trigger | None:
        return next((step for step in self.steps() if step.id == step_id), None)
