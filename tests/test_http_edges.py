"""Hostile or malformed input at the HTTP edge: it gets a 4xx, never a 500, and writes
nothing (the real server, as ``test_server`` runs it, on SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import httpx
from test_server import API_TOKEN, PAY_SECRET, Live, T, live  # noqa: F401

from orchestrator.models import DeliveryEvent, Payment


def test_non_ascii_credentials_are_refused_with_401_not_500(live: Live) -> None:  # noqa: F811
    """Starlette hands header bytes over as latin-1 text; comparing such text with
    ``hmac.compare_digest`` raised TypeError (a 500)."""
    for value in (b"Bearer \xe9t\xe9", "Bearer tök".encode()):
        got = httpx.get(f"{live.url}/api/v1/accounts/A00000", headers={"Authorization": value})
        assert got.status_code == 401, got.text
    body = json.dumps({"event_id": "ev-x", "account_id": "A00000", "amount": "1.00",
                       "currency": "USD", "paid_at": T.isoformat()}).encode()
    stamp = str(int(T.timestamp()))
    for signature in (b"sha256=\xe9", "sha256=é".encode()):
        got = httpx.post(live.url + "/webhooks/payments", content=body, headers={
            "Content-Type": "application/json", "X-Outreach-Timestamp": stamp,
            "X-Outreach-Signature": signature})
        assert got.status_code == 401, got.text
    got = httpx.post(live.url + "/webhooks/twilio/sms/status",
                     data={"MessageSid": "SMx", "MessageStatus": "delivered"},
                     headers={"X-Twilio-Signature": b"\xe9\xe9"})
    assert got.status_code == 403, got.text
    assert live.count(Payment) == 0 and live.count(DeliveryEvent) == 0


def test_api_token_needs_the_bearer_scheme_in_any_case(live: Live) -> None:  # noqa: F811
    """RFC 6750/7235: ``Authorization: Bearer <token>``; the scheme is case-insensitive,
    and a bare token (or another scheme) is not a bearer credential."""
    url = f"{live.url}/api/v1/accounts/A00000"
    for value in (API_TOKEN, f"Basic {API_TOKEN}", f"Bearer{API_TOKEN}", "Bearer",
                  f"Token {API_TOKEN}"):
        assert httpx.get(url, headers={"Authorization": value}).status_code == 401, value
    for value in (f"Bearer {API_TOKEN}", f"bearer {API_TOKEN}", f"BEARER  {API_TOKEN}"):
        assert httpx.get(url, headers={"Authorization": value}).status_code == 200, value
