"""Decision records (docs/decisions.md): every decision, with its reason, as one value.

The JSON form has every key of the record, in a fixed order, ``null`` where a key
does not apply, so the same scenario prints byte-identical lines on every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo


class DecisionKind(StrEnum):
    sent = "sent"
    deferred = "deferred"
    suppressed = "suppressed"
    blocked = "blocked"
    skipped = "skipped"
    failed = "failed"
    ambiguous = "ambiguous"


class Reason(StrEnum):
    """Closed set of reason codes; limits and pauses add ``limit:<id>``/``pause:<id>``."""

    quiet_hours = "quiet_hours"
    holiday = "holiday"
    promise_pending = "promise_pending"
    promise_kept = "promise_kept"
    plan_active = "plan_active"
    paid = "paid"
    opted_out = "opted_out"
    disputed = "disputed"
    cease = "cease"
    no_consent = "no_consent"
    no_contact = "no_contact"
    invalid_contact = "invalid_contact"
    expired = "expired"
    stage_changed = "stage_changed"
    not_applicable = "not_applicable"
    provider_error = "provider_error"
    interrupted = "interrupted"  # the worker stopped mid-send: it may or may not have gone
    render_error = "render_error"  # the template failed for this send
    never_permitted = "never_permitted"
    bad_data = "bad_data"  # the account's data cannot be replayed, planned or rendered
    confirmed_by_provider = "confirmed_by_provider"  # an ambiguous send the provider reported
    holdout = "holdout"  # the debtor is in an experiment's holdout: no contact of the stage
    budget = "budget"  # a budget of the policy is spent for this window: the next one
    paused_by_operator = "paused_by_operator"  # an operator's pause (``outreach pause``)
    validation_pending = "validation_pending"  # the US validation notice is not sent yet
    placed = "placed"  # the account is placed with a collection agency
    settled = "settled"  # a settlement was paid by its deadline: collection is over


def limit_reason(limit_id: str) -> str:
    return f"limit:{limit_id}"


def pause_reason(pause_id: str) -> str:
    return f"pause:{pause_id}"


def iso_utc(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_local(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).isoformat(timespec="seconds")


RECORD_KEYS = (
    "time",
    "local_time",
    "account",
    "debtor",
    "stage",
    "step",
    "channel",
    "kind",
    "decision",
    "reason",
    "until",
    "message_id",
    "to",
    "subject",
    "segment",
    "experiment",
    "variant",
    "text",
)


@dataclass(frozen=True)
class DecisionRecord:
    time: datetime
    local_time: str
    account: str
    debtor: str
    stage: str | None
    step: str
    channel: str | None  # None: no channel applies (an account that could not be planned)
    kind: str | None
    decision: DecisionKind
    reason: str | None = None
    until: datetime | None = None
    message_id: str | None = None
    to: str | None = None
    subject: str | None = None
    text: str | None = None
    segment: str | None = None  # the account's segment when the step was planned
    experiment: str | None = None  # the experiment the step came from, and its arm
    variant: str | None = None

    def as_dict(self, *, with_text: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "time": iso_utc(self.time),
            "local_time": self.local_time,
            "account": self.account,
            "debtor": self.debtor,
            "stage": self.stage,
            "step": self.step,
            "channel": self.channel,
            "kind": self.kind,
            "decision": str(self.decision),
            "reason": self.reason,
            "until": iso_utc(self.until),
            "message_id": self.message_id,
            "to": self.to,
            "subject": self.subject,
            "segment": self.segment,
            "experiment": self.experiment,
            "variant": self.variant,
        }
        if with_text:
            out["text"] = self.text
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(", ", ": "))
