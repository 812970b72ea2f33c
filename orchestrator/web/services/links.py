"""The tracked links of a message: ``/p/`` to pay, ``/u/`` to unsubscribe from email.

A link is ours only if we signed it (``core.links``); a forged one, or one whose send
is unknown, is ``Unknown`` and records nothing. Only a person's GET of a live pay link
is a click: a HEAD or a link previewer (``is_preview_agent``) is answered the same
without recording, and an expired link still leads to the creditor's pay page, or to a
page saying where to pay and whom to call. An unsubscribe link is honoured for
``UNSUBSCRIBE_GRACE`` past its expiry; after that it answers a page saying whom to call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channels.base import DeliveryStatus
from orchestrator.config.models import Creditor
from orchestrator.core.account import Account
from orchestrator.core.links import (
    PAY,
    UNSUBSCRIBE,
    TokenData,
    creditor_pay_url,
    is_preview_agent,
    open_token,
)
from orchestrator.store import facts
from orchestrator.store.accounts import account_from_row
from orchestrator.store.tables import Send, table_of
from orchestrator.web.linkpages import PayHelp, pay_help_page, unsubscribe_too_old_page
from orchestrator.web.server import Server
from orchestrator.web.services.refusals import Unknown

__all__ = [
    "Link",
    "PayAnswer",
    "follow_pay_link",
    "is_click",
    "open_link",
    "record_click",
    "unsubscribe",
    "unsubscribe_link",
]


@dataclass(frozen=True)
class Link:
    """A link we signed (expired or not) and the send it came in."""

    data: TokenData
    send: Any  # a ``send`` row


@dataclass(frozen=True)
class PayAnswer:
    """Where a pay link leads: the creditor's pay page (``redirect``), else a page
    saying where to pay and whom to call (``page``, HTML)."""

    redirect: str | None = None
    page: str | None = None


def open_link(server: Server, token: str, kind: str) -> Link:
    """The link of ``token`` if we signed it for ``kind`` and its send exists, else
    ``Unknown`` (the same "not found" either way: a prober learns nothing)."""
    data = open_token(server.settings.secret_key or "", token)
    if data is None or data.kind != kind:
        raise Unknown("not found", "bad_token")
    with server.db.connect() as conn:
        send = conn.execute(
            sa.select(table_of(Send)).where(table_of(Send).c.message_id == data.message_id)
        ).first()
    if send is None:
        raise Unknown("not found", "unknown_send")
    return Link(data, send)


def is_click(method: str, user_agent: str | None, data: TokenData, now: datetime) -> bool:
    """Whether following a pay link counts as a click: a person's GET of a live link."""
    return method == "GET" and not data.expired(now) and not is_preview_agent(user_agent)


def follow_pay_link(
    server: Server, token: str, *, method: str, user_agent: str | None
) -> PayAnswer:
    """Where a pay link leads, recording the click if it is one (``is_click``)."""
    link = open_link(server, token, PAY)
    now = server.clock.now()
    counts = is_click(method, user_agent, link.data, now)
    with server.tx() if counts else server.db.connect() as conn:
        account, creditor = _account_of(server, conn, link.send)
        if counts:
            record_click(conn, link.send, now)
    target = creditor_pay_url(creditor, account) if creditor else None
    if target:
        return PayAnswer(redirect=target)
    reference = account.reference or account.account_id
    return PayAnswer(
        page=pay_help_page(
            account.locale, PayHelp(creditor, reference, expired=link.data.expired(now))
        )
    )


def record_click(conn: Connection, send: Any, now: datetime) -> None:
    """Every click is an event; the first of a message is also its ``clicked``
    delivery status, the one the report's click rate counts."""
    first = facts.record_delivery(
        conn,
        provider_id=None,
        message_id=send.message_id,
        status=DeliveryStatus.clicked,
        event_key=f"click:{send.message_id}",
        at=now,
    )
    facts.record_event(
        conn,
        account_id=send.account_id,
        type_="click",
        at=now,
        channel=send.channel,
        detail={"message_id": send.message_id, "first": first.outcome == "recorded"},
    )


def unsubscribe_link(server: Server, token: str) -> tuple[Any, str | None]:
    """The send of an unsubscribe link, and the page to answer instead when the link
    is past ``UNSUBSCRIBE_GRACE`` (answered 410: nothing is recorded)."""
    link = open_link(server, token, UNSUBSCRIBE)
    if link.data.honoured(server.clock.now()):
        return link.send, None
    with server.db.connect() as conn:
        account, creditor = _account_of(server, conn, link.send)
    return link.send, unsubscribe_too_old_page(account.locale, creditor)


def unsubscribe(server: Server, send: Any) -> None:
    """Stop email to the send's debtor at its account's address (``email_index``)."""
    now = server.clock.now()
    with server.tx() as conn:
        row = facts.account_row(conn, send.account_id)
        assert row is not None
        facts.opt_out(
            conn,
            debtor_id=row.debtor_id,
            account_id=None,
            channel="email",
            contact_index=row.email_index,
            source="unsubscribe",
            at=now,
            about=[row.account_id],
        )


def _account_of(server: Server, conn: Connection, send: Any) -> tuple[Account, Creditor | None]:
    row = facts.account_row(conn, send.account_id)
    assert row is not None  # a send's account is never deleted (foreign key)
    account = account_from_row(row, server.cipher)
    return account, server.config.creditor(account.creditor)
