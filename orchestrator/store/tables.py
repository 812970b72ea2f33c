"""The database tables (SQLModel over SQLAlchemy 2), identical on SQLite and PostgreSQL.

Conventions: money is ``NUMERIC(18, 2)`` read back as ``Decimal``; instants are
stored in UTC and read back as aware UTC datetimes (``UTCDateTime``); personal
fields are AES-GCM tokens (older Fernet tokens are still read) in ``*_enc`` columns
with HMAC blind indexes in ``*_index`` columns (see ``orchestrator.core.crypto``); nothing
personal is stored in clear. Idempotency lives in unique constraints: one occurrence per
(account, step, occurrence_key), one delivery event per provider event key, one
payment per payment id, one send per message id, one inbound message per provider id.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An instant: aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zone type, so the value is stored there as naive UTC text; on
    PostgreSQL it is ``timestamp with time zone``. Naive datetimes are refused.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware instants only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def Money() -> sa.Numeric[Decimal]:  # noqa: N802 - reads as a type
    return sa.Numeric(18, 2, asdecimal=True)


def _instant(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class Debtor(SQLModel, table=True):
    __tablename__ = "debtor"

    id: str = Field(primary_key=True)
    name_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)
    email_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_index: str | None = Field(default=None, index=True)
    email_index: str | None = Field(default=None, index=True)
    personal_digest: str | None = None
    created_at: datetime | None = _instant()
    updated_at: datetime | None = _instant()


class AccountRow(SQLModel, table=True):
    """One debt. Contacts live here too: a debtor may give a different number per debt."""

    __tablename__ = "account"

    account_id: str = Field(primary_key=True)
    debtor_id: str = Field(foreign_key="debtor.id", index=True)
    balance: Decimal = Field(sa_type=Money())
    currency: str
    due_date: date
    # What the balance is made of, as imported (optional): shown on the e-bill page.
    principal: Decimal | None = Field(default=None, sa_type=Money())
    interest: Decimal | None = Field(default=None, sa_type=Money())
    fees: Decimal | None = Field(default=None, sa_type=Money())
    creditor: str | None = None
    reference: str | None = None
    status: str = Field(default="open", index=True)  # open | closed
    segment: str | None = None
    product: str | None = None
    risk_score: Decimal | None = Field(default=None, sa_type=sa.Numeric(12, 4))
    consent_sms: bool | None = None
    consent_voice: bool | None = None
    consent_email: bool | None = None
    locale: str | None = None
    timezone: str | None = None
    email_type: str | None = None
    name_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_enc: str | None = Field(default=None, sa_type=sa.Text)
    phone_zones: str | None = Field(default=None, sa_type=sa.Text)  # zones.phone_zones_text
    email_enc: str | None = Field(default=None, sa_type=sa.Text)
    address_line1_enc: str | None = Field(default=None, sa_type=sa.Text)
    address_line2_enc: str | None = Field(default=None, sa_type=sa.Text)
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone_index: str | None = Field(default=None, index=True)
    email_index: str | None = Field(default=None, index=True)
    personal_digest: str | None = None  # keyed fingerprint: re-import detects changes
    stage: str | None = None
    stage_entered_at: datetime | None = _instant()
    balance_at_stage_entry: Decimal | None = Field(default=None, sa_type=Money())
    created_at: datetime | None = _instant()
    updated_at: datetime | None = _instant()


class AccountPlan(SQLModel, table=True):
    """When an account is planned again: at ``plan_due_at`` (the next instant its plan
    can change: its next local day, promise or instalment deadline, or dated fact), at
    once when NULL or when it has no row (an account never planned). A change of its
    data or planning facts sets it NULL and counts ``plan_seq`` (``facts.replan``), so a
    planner that read the account before the change does not mark it planned.

    A narrow table of its own: every planning round writes every account's due time,
    and a row of the wide, much-indexed ``account`` costs five times as much to rewrite
    (on PostgreSQL, a new version of the row and of each of its index entries)."""

    __tablename__ = "account_plan"
    __table_args__ = {"postgresql_with": {"fillfactor": 50}}

    account_id: str = Field(foreign_key="account.account_id", primary_key=True)
    # Not indexed: found by account (see migration 0021); on PostgreSQL half of each page
    # is left free, so that a round's new due times are written in place.
    plan_due_at: datetime | None = _instant()
    plan_seq: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class PlannerState(SQLModel, table=True):
    """The planning configuration the accounts' ``plan_due_at`` were computed under (a
    digest of cadences, policy and creditors): under another, every account is planned
    again."""

    __tablename__ = "planner_state"

    id: int = Field(default=1, primary_key=True)
    config_digest: str
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Promise(SQLModel, table=True):
    __tablename__ = "promise"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    amount: Decimal = Field(sa_type=Money())
    due: date
    made_at: datetime = Field(sa_type=UTCDateTime)
    state: str = "pending"  # pending | kept | broken
    kept_at: datetime | None = _instant()
    broken_at: datetime | None = _instant()
    source: str | None = None  # api | self_service (the e-bill page); None: before 0017
    # A settlement: what the creditor waives when it is kept (None: a plain promise).
    waived: Decimal | None = Field(default=None, sa_type=Money())


class InstalmentPlan(SQLModel, table=True):
    __tablename__ = "instalment_plan"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    state: str = "active"  # active | completed | broken | cancelled
    ended_at: datetime | None = _instant()
    source: str | None = None  # api | self_service (the e-bill page); None: before 0017


class InstalmentRow(SQLModel, table=True):
    __tablename__ = "instalment"

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="instalment_plan.id", index=True)
    due: date
    amount: Decimal = Field(sa_type=Money())
    paid: Decimal = Field(default=Decimal("0.00"), sa_type=Money())
    state: str = "pending"  # pending | paid | missed


class Payment(SQLModel, table=True):
    __tablename__ = "payment"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: str = Field(unique=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    amount: Decimal = Field(sa_type=Money())
    currency: str | None = None
    paid_at: datetime = Field(sa_type=UTCDateTime)
    source: str | None = None  # import | webhook | api | simulate
    created_at: datetime | None = _instant()


class OccurrenceRow(SQLModel, table=True):
    """One planned step for one account; the unique key makes planning idempotent."""

    __tablename__ = "occurrence"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "step_id", "occurrence_key"),
        sa.Index(None, "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # (looked up by the unique key's first column: no index of its own)
    account_id: str = Field(foreign_key="account.account_id")
    step_id: str
    occurrence_key: str
    planned_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime | None = _instant()
    stage: str | None = None
    channel: str
    kind: str
    # pending | deferred | sending | sent | suppressed | blocked | skipped | failed | ambiguous
    state: str = "pending"
    next_attempt_at: datetime | None = _instant()
    attempts: int = 0
    claimed_by: str | None = None
    lease_until: datetime | None = _instant()  # a worker holds it for dispatch until then
    # The segment the account was in when this was planned, and the experiment arm the
    # step came from (NULL outside any): copied onto each of its decisions.
    segment: str | None = None
    experiment: str | None = None
    variant: str | None = None
    # The policy's order of due sends (``core.priority``), '' without one: leased in
    # (next attempt, priority, planned, account, step, key) order, as ``simulate`` takes them.
    priority: str = Field(default="", sa_column_kwargs={"server_default": ""})
    created_at: datetime | None = _instant()
    updated_at: datetime | None = _instant()


class Decision(SQLModel, table=True):
    """One decision record (docs/decisions.md); ``to_masked`` never holds a clear contact."""

    __tablename__ = "decision"
    __table_args__ = (sa.Index(None, "account_id", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id", nullable=True)
    time: datetime = Field(sa_type=UTCDateTime, index=True)
    local_time: str | None = None
    account_id: str
    debtor_id: str
    stage: str | None = None
    step: str
    channel: str | None  # None: no channel applies (an account that could not be planned)
    kind: str | None
    decision: str
    reason: str | None = None
    until: datetime | None = _instant()
    message_id: str | None = None
    to_masked: str | None = None
    subject: str | None = None
    segment: str | None = None
    experiment: str | None = None
    variant: str | None = None


class Send(SQLModel, table=True):
    """One message handed (or being handed) to a provider; ``status`` is its delivery status."""

    __tablename__ = "send"
    __table_args__ = (
        sa.Index(None, "account_id", "sent_at"),
        sa.Index(None, "debtor_id", "sent_at"),
        sa.Index(None, "to_index", "sent_at"),
        sa.Index(None, "channel", "sent_at"),  # budgets: a channel's sends in a window
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True)
    provider_id: str | None = Field(default=None, unique=True, nullable=True)
    account_id: str = Field(foreign_key="account.account_id")
    debtor_id: str
    channel: str
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id", nullable=True)
    status: str = "queued"
    sent_at: datetime = Field(sa_type=UTCDateTime)
    status_at: datetime | None = _instant()
    to_index: str | None = None
    segments: int | None = None
    cost: Decimal | None = Field(default=None, sa_type=sa.Numeric(18, 4, asdecimal=True))


class DeliveryEvent(SQLModel, table=True):
    __tablename__ = "delivery_event"

    id: int | None = Field(default=None, primary_key=True)
    provider_event_key: str = Field(unique=True)
    send_id: int | None = Field(default=None, foreign_key="send.id", nullable=True, index=True)
    message_id: str | None = Field(default=None, index=True)
    status: str
    time: datetime = Field(sa_type=UTCDateTime)
    raw: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class OptOut(SQLModel, table=True):
    """An opt-out of a channel; SMS opt-outs are per phone number (``contact_index``)."""

    __tablename__ = "opt_out"
    __table_args__ = (sa.Index(None, "debtor_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    debtor_id: str
    account_id: str | None = Field(default=None, index=True)
    channel: str
    contact_index: str | None = Field(default=None, index=True)
    source: str | None = None  # inbound_sms | unsubscribe | api | import | simulate
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = _instant()


class InboundMessage(SQLModel, table=True):
    """A provider's inbound message (Twilio ``MessageSid``), once: a captured and replayed
    START after a later STOP, or a HELP sent again, finds its id here and changes nothing."""

    __tablename__ = "inbound_message"

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(unique=True)
    channel: str
    received_at: datetime = Field(sa_type=UTCDateTime)


class AccountEvent(SQLModel, table=True):
    """conversation, dispute, dispute_resolved, cease, complaint, click, inbound_sms, ..."""

    __tablename__ = "account_event"
    __table_args__ = (sa.Index(None, "account_id", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id")
    type: str
    channel: str | None = None
    time: datetime = Field(sa_type=UTCDateTime)
    detail: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class IdempotencyKey(SQLModel, table=True):
    """The first answer to an API request sent with a key (its ``Idempotency-Key``, or a
    payment's ``payment_id``): a repeat of the request gets it again and writes nothing;
    the same key with another request (``fingerprint``) is refused."""

    __tablename__ = "idempotency_key"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    fingerprint: str  # orchestrator.store.idempotency.fingerprint of the request
    status_code: int
    response: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)


class AuditLog(SQLModel, table=True):
    """Who changed what, when: ``actor`` is a CLI's OS user, ``api``, or the system part
    that acted (``inbound_sms``, ``unsubscribe``, ...). ``account_id`` is the account a
    change concerns, when it concerns one (``outreach audit --account``); ``detail``
    holds no personal data in clear."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str
    action: str
    object_type: str | None = None
    object_id: str | None = None
    detail: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    account_id: str | None = Field(default=None, index=True)


class Placement(SQLModel, table=True):
    """An account placed with a collection agency (``store.placements``): while it is in
    force (not recalled), our own collection and service sends are suppressed
    (``placed``). ``actor`` placed it, ``recalled_by`` recalled it."""

    __tablename__ = "placement"
    __table_args__ = (sa.Index(None, "agency", "recalled_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    agency: str
    placed_at: datetime = Field(sa_type=UTCDateTime)
    recalled_at: datetime | None = _instant()
    actor: str
    recalled_by: str | None = None


class CaseFile(SQLModel, table=True):
    """A complaint or a dispute (``core.cases``): opened, acknowledged, resolved, each
    change audited. A dispute's suppression is the ``dispute`` account event, lifted by
    ``dispute_resolved`` (written when the case is resolved with verification)."""

    __tablename__ = "case_file"
    __table_args__ = (sa.Index(None, "resolved_at", "due_resolve_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    kind: str  # complaint | dispute
    category: str
    channel: str | None = None  # the channel it came in by, if known
    opened_at: datetime = Field(sa_type=UTCDateTime)
    opened_by: str
    due_ack_at: datetime = Field(sa_type=UTCDateTime)
    due_resolve_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = _instant()
    acknowledged_by: str | None = None
    resolved_at: datetime | None = _instant()
    resolved_by: str | None = None
    resolution: str | None = Field(default=None, sa_type=sa.Text)
    verified: bool | None = None  # a dispute resolved with verification
    updated_at: datetime = Field(sa_type=UTCDateTime)


class OperatorPause(SQLModel, table=True):
    """An operator's emergency pause of outbound sends (``outreach pause``, the API): of
    every channel or one (``channel``), of every creditor or one (``creditor``). Active
    while ``ended_at`` is NULL; ``outreach resume`` sets it, the row stays for the record."""

    __tablename__ = "operator_pause"

    id: int | None = Field(default=None, primary_key=True)
    channel: str | None = None  # None: every channel
    creditor: str | None = None  # None: every creditor
    reason: str | None = None
    actor: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = _instant()


class WorkerHeartbeat(SQLModel, table=True):
    """A daemon worker's last sign of life (written at each of its jobs) and its last
    planning round: what ``outreach status`` shows of the workers."""

    __tablename__ = "worker_heartbeat"

    worker: str = Field(primary_key=True)
    host: str
    pid: int
    version: str
    started_at: datetime = Field(sa_type=UTCDateTime)
    beat_at: datetime = Field(sa_type=UTCDateTime)
    plan_at: datetime | None = _instant()  # when its last planning round ended
    plan_occurrences: int | None = None  # how many occurrences that round planned
    plan_seconds: float | None = None  # how long it took


class WebhookDelivery(SQLModel, table=True):
    """One event to one subscription (the outbox of outbound webhooks): queued once under
    (subscription, event key), posted at least once, in ``id`` order per (subscription,
    ``order_key``). ``state``: pending (due at ``next_attempt_at``), sending (leased by a
    worker until ``lease_until``), delivered, or dead (given up after the retry policy's
    attempts; ``outreach webhooks replay`` queues it again). ``body`` is the exact JSON
    posted: ids, statuses and amounts, no personal data."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_key"),
        sa.Index(None, "state", "next_attempt_at"),
        sa.Index(None, "subscription_id", "order_key", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str
    event_key: str  # source:row id, e.g. decision:42
    webhook_id: str  # the webhook-id header: the same on every attempt
    type: str
    account_id: str | None = Field(default=None, index=True)
    order_key: str  # the account (or debtor:<id>): deliveries keep its order
    event_time: datetime = Field(sa_type=UTCDateTime)
    body: str = Field(sa_type=sa.Text)
    state: str = "pending"  # pending | sending | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime | None = _instant()
    lease_until: datetime | None = _instant()
    last_status: int | None = None  # the receiver's HTTP status, None: no answer
    last_error: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = _instant()
    dead_at: datetime | None = _instant()


class WebhookCursor(SQLModel, table=True):
    """How far the emitter has read each event source (the highest row id queued), and
    where it started (``start_id``: rows up to it are never posted, however late)."""

    __tablename__ = "webhook_cursor"

    source: str = Field(primary_key=True)
    last_id: int = 0
    start_id: int = 0
    updated_at: datetime = Field(sa_type=UTCDateTime)


metadata = SQLModel.metadata

# Columns that hold encrypted tokens, per table: ``keys rotate`` walks exactly these.
ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "debtor": ("name_enc", "phone_enc", "email_enc"),
    "account": ("name_enc", "phone_enc", "email_enc", "address_line1_enc", "address_line2_enc"),
}


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core ``Table`` of a model, for bulk statements (typed for mypy)."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]


class ContactHour(SQLModel, table=True):
    """What ``at: best`` has learned (``core.besttime``), one row per debtor, segment or
    the portfolio (``scope``, ``key``: the debtor id, the segment id, or '') and channel:
    sends and answered sends at each local hour 0-23, as 24 comma-separated counts. Ids
    and counts only."""

    __tablename__ = "contact_hour"

    scope: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    channel: str = Field(primary_key=True)
    sent: str
    answered: str


class BestTimeFold(SQLModel, table=True):
    """Up to when sends are counted in ``contact_hour`` (one row)."""

    __tablename__ = "best_time_fold"

    id: int = Field(primary_key=True)
    folded_until: datetime = Field(sa_type=UTCDateTime)


class Task(SQLModel, table=True):
    """Work for a person (``store.tasks``): made by a rule (``policy.yaml`` ``tasks:``),
    claimed by an assignee (an API token's name or a CLI user), done with an outcome.
    ``open_key`` is ``account:type`` while the task is not done (NULL after): the unique
    constraint keeps one open task per account and type."""

    __tablename__ = "task"
    __table_args__ = (sa.Index(None, "state", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.account_id", index=True)
    type: str
    priority: int
    state: str  # open | claimed | done
    open_key: str | None = Field(default=None, unique=True, nullable=True)
    due_at: datetime = Field(sa_type=UTCDateTime)
    case_id: int | None = Field(default=None, foreign_key="case_file.id", nullable=True)
    message_id: str | None = None  # the inbound text's or the call's provider id
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str
    assignee: str | None = None
    claimed_at: datetime | None = _instant()
    done_at: datetime | None = _instant()
    outcome: str | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)
