"""The shapes of the HTTP API's requests (docs/http.md): what a body, a path or a header
may hold, checked by pydantic before any handler runs, so a malformed request is a 422
that writes nothing. Their docstrings and field descriptions are the OpenAPI document's.

Text is bounded as the CSV bounds it (``MAX_LENGTH``) and holds no control character:
a NUL is a 500 on PostgreSQL, the others corrupt letters, manifests and logs.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orchestrator.ingest.validation import CONTROL, MAX_LENGTH

__all__ = [
    "KEY_PATTERN",
    "AccountId",
    "AccountIn",
    "CaseIn",
    "CaseList",
    "CaseOut",
    "CasePatch",
    "EventIn",
    "InstalmentIn",
    "PauseIn",
    "PaymentIn",
    "PlainText",
]


def _plain_text(value: str) -> str:
    """A text field of a request: no control characters (``accounts.CONTROL``)."""
    found = CONTROL.search(value)
    if found is not None:
        raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed")
    return value


def _bounded(field: str) -> Any:
    return Field(default=None, max_length=MAX_LENGTH[field])


# Text of a request body or path: bounded, and no control characters (a NUL is a 500 on
# PostgreSQL, the others corrupt letters, manifests and logs).
PlainText = Annotated[str, AfterValidator(_plain_text)]
AccountId = Annotated[
    str, PathParam(min_length=1, max_length=MAX_LENGTH["account_id"]), AfterValidator(_plain_text)
]


class AccountIn(BaseModel):
    """An account as the CSV has it (docs/csv.md); the same validation applies
    (``parse_account``: control characters, formats), and the same length bounds."""

    model_config = ConfigDict(extra="forbid")
    debtor_id: str | None = _bounded("debtor_id")
    name: str = Field(min_length=1, max_length=MAX_LENGTH["name"])
    phone: str | None = _bounded("phone")
    email: str | None = _bounded("email")
    address_line1: str | None = _bounded("address_line1")
    address_line2: str | None = _bounded("address_line2")
    city: str | None = _bounded("city")
    region: str | None = _bounded("region")
    postal_code: str | None = _bounded("postal_code")
    country: str | None = _bounded("country")
    timezone: str | None = _bounded("timezone")
    locale: str | None = _bounded("locale")
    email_type: Literal["personal", "work"] | None = None
    currency: str = Field(min_length=3, max_length=3)
    balance: Decimal
    due_date: date
    creditor: str | None = _bounded("creditor")
    reference: str | None = _bounded("reference")
    consent_sms: bool | None = None
    consent_voice: bool | None = None
    consent_email: bool | None = None
    segment: str | None = _bounded("segment")
    product: str | None = _bounded("product")
    risk_score: Decimal | None = Field(default=None, gt=-(10**8), lt=10**8, decimal_places=4)


class InstalmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    due: date
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)


# An idempotency key or payment id: printable, as an HTTP header can carry it.
KEY_PATTERN = r"^[^\x00-\x1f\x7f]+$"


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal[
        "promise",
        "payment",
        "plan",
        "settlement",
        "conversation",
        "dispute",
        "dispute_resolved",
        "cease",
        "complaint",
        "opt_out",
        "agency_contact",
    ]
    at: datetime | None = None
    amount: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=2)
    due: date | None = None
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    payment_id: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=KEY_PATTERN,
        description="the payment's own id: recorded once (its idempotency key when no "
        "Idempotency-Key header is sent)",
    )
    channel: Literal["sms", "voice", "email", "letter"] | None = None
    # a payment plan's instalments (``type: plan``)
    instalments: list[InstalmentIn] | None = Field(default=None, min_length=1, max_length=360)


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: PlainText = Field(min_length=1, max_length=200)
    account_id: PlainText = Field(min_length=1, max_length=MAX_LENGTH["account_id"])
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    currency: str = Field(min_length=3, max_length=3)
    paid_at: datetime


class PauseIn(BaseModel):
    """An operator's emergency pause of outbound sends: of every channel of every
    creditor when empty, else of ``channel`` and/or ``creditor`` only (docs/http.md)."""

    model_config = ConfigDict(extra="forbid")
    channel: PlainText | None = Field(
        default=None, min_length=1, max_length=50, description="a channel of channels.yaml"
    )
    creditor: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LENGTH["creditor"],
        description="a creditor key of creditors.yaml",
    )
    reason: PlainText | None = Field(
        default=None, max_length=500, description="why, kept with the pause and in the audit log"
    )


CaseChannel = Literal["sms", "voice", "email", "letter"]


class CaseIn(BaseModel):
    """A complaint or a dispute received about an account. A dispute suppresses its
    collection until resolved with verification; a complaint applies the policy's
    complaint pause (docs/http.md)."""

    model_config = ConfigDict(extra="forbid")
    account_id: PlainText = Field(min_length=1, max_length=MAX_LENGTH["account_id"])
    kind: Literal["complaint", "dispute"]
    category: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="one of policy.yaml cases.categories (default: cases.default_category)",
    )
    channel: CaseChannel | None = Field(default=None, description="the channel it came by")


class CasePatch(BaseModel):
    """A change to a case: acknowledge it, resolve it (``resolution`` required; a
    dispute's ``verified`` lifts its suppression), change its category."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["acknowledge", "resolve", "categorise"]
    resolution: PlainText | None = Field(
        default=None, min_length=1, max_length=2000, description="how it was resolved"
    )
    verified: bool = Field(
        default=False,
        description="a dispute resolved with verification: collection resumes. Without "
        "it the dispute case closes and collection stays suppressed",
    )
    category: PlainText | None = Field(default=None, min_length=1, max_length=50)


class CaseOut(BaseModel):
    """A case as the API answers it; instants in UTC (``...Z``)."""

    id: int
    account_id: str
    kind: Literal["complaint", "dispute"]
    category: str
    channel: str | None
    status: Literal["open", "acknowledged", "resolved"]
    overdue: bool = Field(description="past its acknowledgement or resolution due time")
    opened_at: str
    opened_by: str
    acknowledge_due_at: str
    resolve_due_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None
    verified: bool | None


class CaseList(BaseModel):
    cases: list[CaseOut]


class TaskOut(BaseModel):
    """A task as the API answers it; instants in UTC (``...Z``)."""

    id: int
    account_id: str
    type: str
    priority: int = Field(description="1 first")
    state: Literal["open", "claimed", "done"]
    overdue: bool = Field(description="not done and past its due time")
    due_at: str
    case_id: int | None = Field(description="the case it is about, if any")
    message_id: str | None = Field(description="the inbound text's or call's provider id")
    created_at: str
    created_by: str = Field(description="`rules` for a task a rule made")
    assignee: str | None = Field(description="the API token's name or CLI user holding it")
    claimed_at: str | None
    done_at: str | None
    outcome: str | None


class TaskList(BaseModel):
    tasks: list[TaskOut]


class TaskDone(BaseModel):
    """How a task ended. ``promise`` (``amount``, ``due``), ``plan`` (``instalments``),
    ``conversation`` and ``dispute`` record the same event as ``POST
    /api/v1/accounts/{id}/events``, with the same checks; ``no_answer`` and ``other`` only
    close the task and take no other field."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["promise", "plan", "conversation", "dispute", "no_answer", "other"]
    amount: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=2)
    due: date | None = None
    instalments: list[InstalmentIn] | None = Field(default=None, min_length=1, max_length=360)
    channel: Literal["sms", "voice", "email", "letter"] | None = None


class TaskDoneOut(BaseModel):
    task: TaskOut
    event: dict[str, Any] | None = Field(
        description="the event recorded, as the events API answers it (none for "
        "no_answer and other)"
    )


class PlacementRule(BaseModel):
    """Which accounts to place: every open account not placed now that is in ``stage``
    and has had no send reach the person in ``no_contact_days`` days."""

    model_config = ConfigDict(extra="forbid")
    stage: PlainText | None = Field(default=None, min_length=1, max_length=64)
    no_contact_days: int | None = Field(default=None, ge=1, le=3650)


class PlacementIn(BaseModel):
    """Place accounts with an agency (``agencies`` in creditors.yaml): a list of accounts
    or a rule, not both. The agency's placement file is written (docs/http.md)."""

    model_config = ConfigDict(extra="forbid")
    agency: PlainText = Field(min_length=1, max_length=64)
    account_ids: list[Annotated[PlainText, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=10_000
    )
    rule: PlacementRule | None = None


class PlacementOut(BaseModel):
    """A placement; instants in UTC (``...Z``)."""

    id: int
    account_id: str
    agency: str
    placed_at: str
    recalled_at: str | None
    actor: str
    recalled_by: str | None
    in_force: bool


class PlacementList(BaseModel):
    placements: list[PlacementOut]


class Placed(BaseModel):
    """What a placement did: the placements made, the accounts placed already (left as
    they were), and the placement files written (they hold personal data in clear)."""

    placements: list[PlacementOut]
    already_placed: list[str]
    files: list[str]


class RecallIn(BaseModel):
    """Recall placements in force: of these accounts, or every one of an agency."""

    model_config = ConfigDict(extra="forbid")
    account_ids: list[Annotated[PlainText, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=10_000
    )
    agency: PlainText | None = Field(default=None, min_length=1, max_length=64)
