"""The gate: the one place that decides whether a send may happen now.

``evaluate`` is a pure function of (occurrence, account state, send history, rules, now)
returning ``Allow``, ``Defer(until, reason)`` or ``Deny(decision, reason)``. The daemon and
``simulate`` both call it; there is no simulation-only branch.

Order of judgement: does the occurrence still apply (stage, trigger condition) → account
suppression (paid, cease, opt-out, placement, dispute, promise, plan) → the US validation notice not
yet sent (collection only, ``core.validation``) → contact rules (consent,
contact present and valid) → timing (permitted hours and holidays in every candidate zone,
pauses, limits), combined into the first instant every timing rule accepts → expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.config.models import HOLDOUT, Kind, TriggerEvent
from orchestrator.core.hours import first_permitted
from orchestrator.core.limiter import limit_free_at, pause_free_at
from orchestrator.core.phones import phone_facts
from orchestrator.core.planner import Occurrence, current_stage
from orchestrator.core.records import DecisionKind, Reason, limit_reason, pause_reason
from orchestrator.core.rules import AccountRules
from orchestrator.core.state import AccountState, SendHistory
from orchestrator.core.validation import is_notice, pending


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Deny:
    decision: DecisionKind
    reason: str


Verdict = Allow | Defer | Deny

_MAX_ROUNDS = 64


def still_applies(
    occ: Occurrence, state: AccountState, now: datetime, rules: AccountRules
) -> Deny | None:
    """Is the occurrence still what it was planned for? (stage, trigger condition; the
    validation notice: still not sent, still required)"""
    if is_notice(occ):
        if state.notice_sent_at is not None or rules.validation_notice is None:
            return Deny(DecisionKind.skipped, Reason.not_applicable)
        return None
    if occ.trigger is None:
        stage = current_stage(state, rules, now)
        if stage is None or stage.id != occ.stage:
            return Deny(DecisionKind.skipped, Reason.stage_changed)
        return None
    fire = occ.trigger
    event = fire.event
    if event in (TriggerEvent.promise_due, TriggerEvent.promise_made):
        promise = state.promise(fire.promise_id)
        if promise is None or promise.state != "pending":
            return Deny(DecisionKind.skipped, Reason.not_applicable)
    elif event == TriggerEvent.promise_broken:
        promise = state.promise(fire.promise_id)
        if promise is None or promise.state != "broken":
            return Deny(DecisionKind.skipped, Reason.not_applicable)
    elif event == TriggerEvent.instalment_due:
        plan = state.active_plan()
        if plan is None or fire.instalment is None or plan.instalments[fire.instalment].settled:
            return Deny(DecisionKind.skipped, Reason.not_applicable)
    elif event == TriggerEvent.stage_entered:
        stage = current_stage(state, rules, now)
        if stage is None or stage.id != occ.stage:
            return Deny(DecisionKind.skipped, Reason.not_applicable)
    elif event in (TriggerEvent.plan_made, TriggerEvent.plan_broken):
        # a confirmation while its plan runs; a broken plan's notice unless a plan runs again
        if (state.active_plan() is None) == (event == TriggerEvent.plan_made):
            return Deny(DecisionKind.skipped, Reason.not_applicable)
    return None


def suppression(
    occ: Occurrence, state: AccountState, now: datetime, rules: AccountRules
) -> str | None:
    """The account-state reason that stops this send, or None.

    Promise, plan and dispute stop collection only; cease and a placement with an agency
    stop collection and service; opt-outs stop every kind (docs/configuration.md, "Kinds"). A paid account gets no
    collection and no stage step of any kind: a pre-due reminder (a service step of a
    stage before the due date) is pointless, even unsettling, once the balance is paid;
    triggers of kind service (thanks for the payment) still go. A settled account (a
    settlement paid by its deadline) is treated alike, with reason ``settled``.
    """
    kind = occ.kind
    collection = kind == Kind.collection
    if state.closed and (collection or occ.trigger is None):
        return Reason.paid
    if state.settled is not None and (collection or occ.trigger is None):
        return Reason.settled  # as a paid account: the rest of the balance is waived
    if state.ceased and kind != Kind.notice:
        return Reason.cease
    if state.opted_out and not state.opted_out.isdisjoint(
        rules.config.policy.opt_out_channels(occ.channel)
    ):
        return Reason.opted_out
    if state.placed is not None and kind != Kind.notice:
        return Reason.placed  # the agency collects: our collection and service stop
    if not collection:
        return None
    if state.disputed:
        return Reason.disputed
    if state.pending_promise() is not None:
        return Reason.promise_pending
    kept = state.last_kept()
    if kept is not None and kept.kept_at is not None:
        if now < kept.kept_at + rules.after_kept:
            return Reason.promise_kept
    if state.active_plan() is not None:
        return Reason.plan_active
    return None


def contact_rule(occ: Occurrence, state: AccountState) -> str | None:
    """Consent and contact presence (decision ``blocked``)."""
    account = state.account
    channel = occ.channel
    consent = account.consent(channel)
    if consent is False:
        return Reason.no_consent
    if channel == "email" and account.email_type == "work" and consent is not True:
        return Reason.no_consent
    if channel in ("sms", "voice"):
        if not account.phone:
            return Reason.no_contact
        # Zones stored at import mean the import found the number valid, under this
        # phonenumbers release (``zones.stored_phone_zones``): no need to parse it again.
        if account.phone_zones is None and not _valid_phone(account.phone):
            return Reason.invalid_contact
    elif channel == "email":
        if not account.email:
            return Reason.no_contact
        if "@" not in account.email:
            return Reason.invalid_contact
    elif channel == "letter":
        if not (account.address_line1 and (account.city or account.postal_code)):
            return Reason.no_contact
    return None


def _valid_phone(phone: str) -> bool:
    facts = phone_facts(phone)
    return facts is not None and facts.valid


def timing(
    channel: str,
    account_id: str,
    state: AccountState,
    history: SendHistory,
    rules: AccountRules,
    now: datetime,
) -> Allow | Defer | Deny:
    """The first instant >= now at which hours, holidays, pauses and limits all agree."""
    zone = rules.zones.primary
    t = now
    first_reason: str | None = None
    for _ in range(_MAX_ROUNDS):
        moved = False
        # permitted hours and holidays, in every candidate zone
        hours_rule = rules.hours_for(channel)
        holidays = rules.holidays_for(channel)
        nxt = first_permitted(t, hours_rule, rules.zones.candidates, holidays)
        if nxt is None:
            return Deny(DecisionKind.skipped, Reason.never_permitted)
        if nxt != t:
            if first_reason is None:
                first_reason = rules.closed_reason(t, channel)
            t, moved = nxt, True
        for pause in rules.pauses:
            free = pause_free_at(pause, channel, t, state.events, zone)
            if free is None:
                return Deny(DecisionKind.skipped, Reason.never_permitted)
            if free > t:
                first_reason = first_reason or pause_reason(pause.id)
                t, moved = free, True
        for limit in rules.limits:
            if channel not in limit.channels:
                continue
            free = limit_free_at(limit, t, history, account_id, zone)
            if free is None:
                return Deny(DecisionKind.skipped, Reason.never_permitted)
            if free > t:
                first_reason = first_reason or limit_reason(limit.id)
                t, moved = free, True
        if not moved:
            break
    else:  # pragma: no cover - the rules above always converge well before this
        return Deny(DecisionKind.skipped, Reason.never_permitted)
    if t == now:
        return Allow()
    return Defer(t, first_reason or Reason.quiet_hours)


def evaluate(
    occ: Occurrence,
    state: AccountState,
    history: SendHistory,
    rules: AccountRules,
    now: datetime,
) -> Verdict:
    """Decide one occurrence at ``now``. Pure: reads its arguments, changes nothing."""
    gone = still_applies(occ, state, now, rules)
    if gone is not None:
        return gone
    if now > occ.expires_at:
        return Deny(DecisionKind.skipped, Reason.expired)
    reason = suppression(occ, state, now, rules)
    if reason is not None:
        return Deny(DecisionKind.suppressed, reason)
    if pending(occ, state, rules):
        return Deny(DecisionKind.blocked, Reason.validation_pending)
    reason = contact_rule(occ, state)
    if reason is not None:
        return Deny(DecisionKind.blocked, reason)
    if occ.variant == HOLDOUT and occ.kind != Kind.notice:
        return Deny(DecisionKind.skipped, Reason.holdout)
    verdict = timing(occ.channel, state.account.account_id, state, history, rules, now)
    if isinstance(verdict, Defer) and verdict.until > occ.expires_at:
        return Deny(DecisionKind.skipped, Reason.expired)
    return verdict
