"""The planner: from DPD, stages, steps and triggers to step occurrences.

Pure: (account state, rules, local day or trigger event) → ``Occurrence`` values. Each
occurrence carries a key unique per account and step (the local day for cadence steps,
the event's key for triggers), so storing it under a unique constraint plans it once.

DPD is the debtor's local date (primary zone) minus the due date (docs/configuration.md).
``every: Nd`` fires on the stage DPDs lo, lo+N, lo+2N and so on. Trigger instants
follow docs/configuration.md (``triggers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from orchestrator.config.models import Kind, Stage, Step, Trigger, TriggerEvent
from orchestrator.core.besttime import HourBook, choose_hour, permitted_hours
from orchestrator.core.experiments import stage_steps
from orchestrator.core.hours import local_datetime, local_day_start
from orchestrator.core.segments import balance_at, segment_of

if TYPE_CHECKING:
    from orchestrator.core.rules import AccountRules
    from orchestrator.core.state import AccountState, TriggerFire


@dataclass(frozen=True)
class Occurrence:
    account_id: str
    step_id: str
    key: str
    stage: str | None
    channel: str
    template: str
    kind: Kind
    planned_at: datetime
    expires_at: datetime
    trigger: TriggerFire | None = None
    segment: str | None = None
    experiment: str | None = None
    variant: str | None = None
    priority: str = ""  # the policy's order (``core.priority``): smaller goes first

    @property
    def unique_key(self) -> tuple[str, str, str]:
        return (self.account_id, self.step_id, self.key)


def dpd_on(due_date: date, local_day: date) -> int:
    return (local_day - due_date).days


def current_stage(state: AccountState, rules: AccountRules, now: datetime) -> Stage | None:
    day = now.astimezone(rules.zones.primary).date()
    return rules.cadences.stage_for(dpd_on(state.account.due_date, day))


@dataclass(frozen=True)
class StageMark:
    """Where an account stands in the cadences, as ``account show`` and reports tell it."""

    stage: str | None
    entered_at: datetime | None  # the first instant of the stage's first local day
    balance_at_entry: Decimal | None


def stage_mark(state: AccountState, rules: AccountRules, now: datetime) -> StageMark | None:
    """The account's stage on its local day at ``now``, entered at the start of the day
    its DPD reached the stage's lower bound, with the balance it had then: today's plus
    what was paid since (payments are what moves a balance between imports). A closed
    account stays in the stage it closed in (its last payment's); ``None`` when that is
    unknown (closed with no payment: imported paid)."""
    if state.closed:
        if not state.payments:
            return None
        now = max(at for at, _ in state.payments)
    stage = current_stage(state, rules, now)
    if stage is None:
        return StageMark(None, None, None)
    entered = local_day_start(
        state.account.due_date + timedelta(days=stage.dpd[0]), rules.zones.primary
    )
    return StageMark(stage.id, entered, balance_at(state, entered))


def segment_on(state: AccountState, rules: AccountRules, local_day: date) -> str | None:
    """The account's segment on its local day (``core.segments``); ``None`` without
    segment rules, or when none holds."""
    segments = rules.config.segments
    if not segments.segments:
        return None
    day_start = local_day_start(local_day, rules.zones.primary)
    return segment_of(segments, state, day_start, dpd_on(state.account.due_date, local_day))


def priority_on(
    state: AccountState, rules: AccountRules, local_day: date, segment: str | None
) -> str:
    """The account's priority key on its local day (``core.priority``)."""
    keys = rules.config.policy.priority
    if not keys:
        return ""
    from orchestrator.core.priority import priority_key

    day_start = local_day_start(local_day, rules.zones.primary)
    return priority_key(keys, state, segment, dpd_on(state.account.due_date, local_day), day_start)


def planned_time(
    timed: Step | Trigger,
    state: AccountState,
    rules: AccountRules,
    day: date,
    segment: str | None,
    key: str,
    *,
    not_before: datetime | None = None,
) -> datetime:
    """When on local ``day`` a step or trigger is planned: its ``at``, the policy's
    preferred time, or under ``at: best`` the hour ``core.besttime`` picks among the
    day's permitted hours (from ``not_before`` on), else ``at_default``."""
    zone = rules.zones.primary
    fixed = timed.fixed_at
    if fixed is not None:
        return local_datetime(day, fixed, zone)
    fallback = local_datetime(day, timed.at_default or rules.preferred_time, zone)
    if not timed.best:
        return fallback
    channel = timed.channel
    hours = permitted_hours(
        day,
        zone,
        rules.hours_for(channel),
        rules.zones.candidates,
        rules.holidays_for(channel),
        timed.window,
    )
    if not_before is not None:
        hours = tuple(h for h in hours if local_datetime(day, time(h), zone) >= not_before)
    hour = choose_hour(
        hours,
        state.hours if state.hours is not None else _NOTHING_LEARNED,
        debtor=state.account.debtor_id,
        segment=segment,
        channel=channel,
        settings=rules.config.policy.best_time,
        step=timed.id,
        key=key,
    )
    return fallback if hour is None else local_datetime(day, time(hour), zone)


_NOTHING_LEARNED = HourBook()


def _step_fires(step: Step, stage: Stage, dpd: int) -> bool:
    if step.on_dpd is not None:
        return dpd in step.on_dpd
    if step.every is not None:
        n = max(step.every.amount, 1) if step.every.unit == "d" else 1
        return (dpd - stage.dpd[0]) % n == 0
    return False


def plan_day(state: AccountState, rules: AccountRules, local_day: date) -> list[Occurrence]:
    """Occurrences of cadence steps (and ``stage_entered`` triggers) on ``local_day``."""
    account = state.account
    dpd = dpd_on(account.due_date, local_day)
    stage = rules.cadences.stage_for(dpd)
    if stage is None:
        return []
    zone = rules.zones.primary
    experiment = rules.config.experiments.for_stage(stage.id, local_day)
    arm = stage_steps(experiment, stage, account.debtor_id)
    firing = [step for step in arm.steps if _step_fires(step, stage, dpd)]
    out: list[Occurrence] = []
    if firing:  # most days no step fires: the segment and priority are not needed then
        segment = segment_on(state, rules, local_day)
        priority = priority_on(state, rules, local_day, segment)
        for step in firing if stage.admits(segment) else []:
            if not step.admits(segment):
                continue
            planned = planned_time(step, state, rules, local_day, segment, local_day.isoformat())
            out.append(
                Occurrence(
                    account_id=account.account_id,
                    step_id=step.id,
                    key=local_day.isoformat(),
                    stage=stage.id,
                    channel=step.channel,
                    template=step.template,
                    kind=step.kind,
                    planned_at=planned,
                    expires_at=planned + step.expires.delta,
                    segment=segment,
                    experiment=arm.experiment,
                    variant=arm.variant,
                    priority=priority,
                )
            )
    if dpd == stage.dpd[0]:
        from orchestrator.core.state import TriggerFire

        entry = local_datetime(local_day, rules.preferred_time, zone)
        fire = TriggerFire(
            TriggerEvent.stage_entered, entry, f"{stage.id}@{local_day}", day=local_day
        )
        for trigger in rules.cadences.triggers:
            if trigger.on == TriggerEvent.stage_entered:
                out.extend(plan_trigger(state, rules, trigger, fire, stage_id=stage.id))
    return out


def plan_trigger(
    state: AccountState,
    rules: AccountRules,
    trigger: Trigger,
    fire: TriggerFire,
    *,
    stage_id: str | None = None,
) -> list[Occurrence]:
    """The occurrence of one trigger for one event (docs/configuration.md)."""
    zone = rules.zones.primary
    if stage_id is None:
        stage = current_stage(state, rules, fire.time)
        stage_id = stage.id if stage else None
    if trigger.stages is not None and stage_id not in trigger.stages:
        return []
    event_day = fire.time.astimezone(zone).date()
    segment = segment_on(state, rules, event_day)
    if not trigger.admits(segment):
        return []
    if trigger.on in (TriggerEvent.promise_due, TriggerEvent.instalment_due) and fire.day:
        ref_day = fire.day
    else:
        ref_day = event_day
    offset = trigger.offset.delta if trigger.offset.unit == "d" else timedelta(0)
    if trigger.at is not None:
        planned = planned_time(
            trigger, state, rules, ref_day + offset, segment, fire.key, not_before=fire.time
        )
    elif trigger.offset.amount == 0 and trigger.on not in (
        TriggerEvent.promise_due,
        TriggerEvent.instalment_due,
    ):
        planned = fire.time
    else:
        planned = local_datetime(ref_day + offset, rules.preferred_time, zone)
    if trigger.offset.unit != "d":
        planned = planned + trigger.offset.delta
    planned = max(planned, fire.time)
    return [
        Occurrence(
            account_id=state.account.account_id,
            step_id=trigger.id,
            key=fire.key,
            stage=stage_id,
            channel=trigger.channel,
            template=trigger.template,
            kind=trigger.effective_kind,
            planned_at=planned,
            expires_at=planned + trigger.expires.delta,
            trigger=fire,
            segment=segment,
            priority=priority_on(state, rules, event_day, segment),
        )
    ]


def plan_fire(state: AccountState, rules: AccountRules, fire: TriggerFire) -> list[Occurrence]:
    """Every trigger of the cadences listening to this event."""
    out: list[Occurrence] = []
    for trigger in rules.cadences.triggers:
        if trigger.on == fire.event:
            out.extend(plan_trigger(state, rules, trigger, fire))
    return out
