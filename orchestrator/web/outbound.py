"""The outbound webhooks in the OpenAPI document (FastAPI's ``webhooks``): what the daemon
posts to each subscription of ``webhooks.yaml``, one entry per event family. These
routes are never served; they describe the receiver's side. The tests check every body
the product builds against these models (``PAYLOADS``), so the document cannot drift.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import FastAPI, Header
from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator.core.records import DecisionKind

__all__ = ["PAYLOADS", "document_webhooks"]

_SIGNED = (
    "Signed per the Standard Webhooks specification: `webhook-id` (the same on every "
    "retry), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature` "
    '(`v1,` then base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" keyed by '
    "the base64-decoded part of the subscription's `whsec_` secret). Answer 2xx to "
    "acknowledge; anything else, or no answer in time, is retried with backoff, then "
    "dead-lettered. At least once: drop a repeated `webhook-id`. In order per account. "
    "No personal data: ids, channels, statuses, dates and amounts only."
)


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str | None = Field(description="the account (null: an opt-out of a debtor)")


class DecisionData(_Data):
    debtor_id: str
    decision: DecisionKind
    reason: str | None = None
    until: datetime | None = None
    stage: str | None = None
    step: str
    channel: str | None = None
    kind: str | None = None
    message_id: str | None = None
    segment: str | None = None
    experiment: str | None = None
    variant: str | None = None


class DeliveryData(_Data):
    message_id: str | None
    channel: str
    status: str = Field(description="delivered, undelivered, failed, answered, clicked, ...")


class ClickData(_Data):
    channel: str | None
    message_id: str | None


class InboundData(_Data):
    channel: str | None
    kind: str | None = Field(description="what the text was read as (opt_out, help, other...)")


class OptOutData(_Data):
    debtor_id: str
    channel: str
    source: str | None


class PromiseData(_Data):
    promise_id: int
    amount: str = Field(description="decimal, two places")
    due: date
    waived: str | None = Field(
        None, description="a settlement only: the amount waived if it is paid by `due`"
    )


class PaymentData(_Data):
    payment_id: str
    amount: str = Field(description="decimal, two places")
    currency: str | None
    source: str | None


class CaseData(_Data):
    case_id: int
    actor: str = Field(description="who acted: an API token's name, a CLI user, or a system part")
    kind: Literal["complaint", "dispute"] | None = Field(None, description="case.opened")
    category: str | None = Field(None, description="case.opened")
    verified: bool | None = Field(None, description="case.resolved: a dispute verified")
    collection_resumes: bool | None = Field(
        None,
        description="case.resolved, a dispute verified: collection resumes (false: another "
        "dispute of the account is still open)",
    )


class TaskData(_Data):
    task_id: int
    actor: str = Field(description="who acted: `rules`, an API token's name or a CLI user")
    type: str | None = Field(None, description="task.created: the task's type")
    priority: int | None = Field(None, description="task.created: 1 first")
    case_id: int | None = Field(None, description="task.created: the case it is about")
    outcome: str | None = Field(None, description="task.done: how it ended")


def _payload(family: str, data: type[_Data]) -> type[BaseModel]:
    name = "".join(part.title() for part in family.split("_")) + "Event"
    type_doc = {
        "decision": "decision.<decision>",
        "case": "case.opened|acknowledged|resolved",
        "task": "task.created|claimed|done",
    }.get(family, family)
    fields: dict[str, Any] = {
        "type": (str, Field(description=f"`{type_doc}`", pattern=rf"^{family}(\.[a-z_]+)?$")),
        "timestamp": (datetime, Field(description="when the event happened (UTC)")),
        "data": (data, ...),
    }
    model: type[BaseModel] = create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    return model


# One payload model per event family (``orchestrator.core.webhooks.EVENT_FAMILIES``).
PAYLOADS: dict[str, type[BaseModel]] = {
    "decision": _payload("decision", DecisionData),
    "delivery": _payload("delivery", DeliveryData),
    "click": _payload("click", ClickData),
    "inbound": _payload("inbound", InboundData),
    "opt_out": _payload("opt_out", OptOutData),
    "promise": _payload("promise", PromiseData),
    "payment": _payload("payment", PaymentData),
    "case": _payload("case", CaseData),
    "task": _payload("task", TaskData),
}


def _describe(app: FastAPI, family: str, model: type[BaseModel]) -> None:
    def receiver(
        body: Any,
        webhook_id: str = Header(description="the message id, stable across retries"),
        webhook_timestamp: str = Header(description="Unix seconds of this attempt"),
        webhook_signature: str = Header(description="v1,<base64 HMAC-SHA256>"),
    ) -> None:
        """Receiver's side."""

    receiver.__annotations__["body"] = model  # a class made at run time, not a name
    app.webhooks.post(
        family,
        summary=f"{family} event",
        description=_SIGNED,
        status_code=204,
    )(receiver)


def document_webhooks(app: FastAPI) -> None:
    """Add every outbound event to ``app``'s OpenAPI document."""
    for family, model in PAYLOADS.items():
        _describe(app, family, model)
