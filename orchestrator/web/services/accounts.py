"""Accounts through the API: ``PUT`` one as the CSV import would, and read one back.

An account sent to the API is validated as a CSV row is (``parse_account``) and must
name a configured creditor. What the API shows is ``account show --json`` without the
debtor's personal data (name, phone, email, address), with DPD counted on the
debtor's own calendar.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from orchestrator.core.zones import local_date
from orchestrator.ingest.validation import parse_account
from orchestrator.store import facts
from orchestrator.store.accounts import account_from_row
from orchestrator.store.timeline import account_timeline
from orchestrator.web.schemas import AccountIn
from orchestrator.web.server import Server
from orchestrator.web.services.refusals import Invalid

__all__ = ["account_view", "put_account", "timeline_view"]

_PERSONAL = ("name", "phone", "email", "address")


def put_account(server: Server, account_id: str, body: AccountIn, actor: str) -> str:
    """Create or update an account; what happened (``upsert_account``'s outcome).
    ``Invalid`` with every problem (field and message) if the account is not valid."""
    raw = {
        k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in body.model_dump().items()
    }
    raw = {k: v for k, v in raw.items() if v != ""}
    account, problems = parse_account({"account_id": account_id, **raw}, source="api", line=None)
    if account is None:
        raise Invalid([{"field": p.field, "message": p.message} for p in problems], "invalid")
    if account.creditor and server.config.creditor(account.creditor) is None:
        raise Invalid(
            [{"field": "creditor", "message": f"unknown creditor {account.creditor!r}"}], "invalid"
        )
    from orchestrator.ingest.importer import upsert_account

    with server.tx() as conn:
        outcome = upsert_account(conn, server.cipher, account, now=server.clock.now(), actor=actor)
    return outcome


def account_view(server: Server, account_id: str) -> dict[str, Any] | None:
    """The account as the API shows it, or ``None`` for an unknown id."""
    found = _timeline(server, account_id)
    if found is None:
        return None
    return {k: v for k, v in found.items() if k not in _PERSONAL}


def timeline_view(server: Server, account_id: str) -> dict[str, Any] | None:
    """The account's decisions and events, or ``None`` for an unknown id."""
    found = _timeline(server, account_id)
    if found is None:
        return None
    return {
        "account_id": account_id,
        "decisions": found.get("decisions", []),
        "events": found.get("events", []),
    }


def _timeline(server: Server, account_id: str) -> dict[str, Any] | None:
    with server.db.connect() as conn:
        return account_timeline(
            conn, server.cipher, account_id, today=_today(server, conn, account_id)
        )


def _today(server: Server, conn: Any, account_id: str) -> date:
    """Today in the debtor's primary zone: the day their DPD counts on."""
    now = server.clock.now()
    row = facts.account_row(conn, account_id)
    if row is None:
        return now.date()
    return local_date(account_from_row(row, server.cipher), server.config.policy.timezone, now)
