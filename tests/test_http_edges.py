"""Hostile or malformed input at the HTTP edge: it gets a 4xx, never a 500, and writes
nothing (the real server, as ``test_server`` runs it, on SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import httpx
from test_server import API_TOKEN, PAY_SECRET, Live, T, live  # noqa: F401

from orchestrator.store.tables import AccountRow, DeliveryEvent, Payment


def test_non_ascii_credentials_are_refused_with_401_not_500(live: Live) -> None:  # noqa: F811
    """Starlette hands header bytes over as latin-1 text; comparing such text with
    ``hmac.compare_digest`` raised TypeError (a 500)."""
    for value in (b"Bearer \xe9t\xe9", "Bearer tök".encode()):
        got = httpx.get(f"{live.url}/api/v1/accounts/A00000", headers={b"Authorization": value})
        assert got.status_code == 401, got.text
    body = json.dumps(
        {
            "event_id": "ev-x",
            "account_id": "A00000",
            "amount": "1.00",
            "currency": "USD",
            "paid_at": T.isoformat(),
        }
    ).encode()
    stamp = str(int(T.timestamp())).encode()
    for signature in (b"sha256=\xe9", "sha256=é".encode()):
        got = httpx.post(
            live.url + "/webhooks/payments",
            content=body,
            headers={
                b"Content-Type": b"application/json",
                b"X-Outreach-Timestamp": stamp,
                b"X-Outreach-Signature": signature,
            },
        )
        assert got.status_code == 401, got.text
    got = httpx.post(
        live.url + "/webhooks/twilio/sms/status",
        data={"MessageSid": "SMx", "MessageStatus": "delivered"},
        headers={b"X-Twilio-Signature": b"\xe9\xe9"},
    )
    assert got.status_code == 403, got.text
    assert live.count(Payment) == 0 and live.count(DeliveryEvent) == 0


def test_api_token_needs_the_bearer_scheme_in_any_case(live: Live) -> None:  # noqa: F811
    """RFC 6750/7235: ``Authorization: Bearer <token>``; the scheme is case-insensitive,
    and a bare token (or another scheme) is not a bearer credential."""
    url = f"{live.url}/api/v1/accounts/A00000"
    for value in (
        API_TOKEN,
        f"Basic {API_TOKEN}",
        f"Bearer{API_TOKEN}",
        "Bearer",
        f"Token {API_TOKEN}",
    ):
        assert httpx.get(url, headers={"Authorization": value}).status_code == 401, value
    for value in (f"Bearer {API_TOKEN}", f"bearer {API_TOKEN}", f"BEARER  {API_TOKEN}"):
        assert httpx.get(url, headers={"Authorization": value}).status_code == 200, value


ACCOUNT = {
    "name": "Lee Chen",
    "phone": "+12125550123",
    "country": "US",
    "region": "NY",
    "currency": "USD",
    "balance": "300.00",
    "due_date": "2026-02-01",
    "creditor": "acme",
}
TEXT_FIELDS = (
    "debtor_id",
    "name",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "timezone",
    "locale",
    "creditor",
    "reference",
    "segment",
    "phone",
    "country",
)


def test_account_text_fields_refuse_control_characters_and_huge_values(live: Live) -> None:  # noqa: F811
    """A NUL in a name was stored (PostgreSQL then fails on it: a 500 later); every text
    field had no length bound. Each is now a 422 naming the field, and nothing is
    written."""
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    url = f"{live.url}/api/v1/accounts/N1"
    for field in TEXT_FIELDS:
        for bad in ("Lee\x00Chen", "Lee\x1bChen", "Lee\u2028Chen", "x" * 10_000):
            got = httpx.put(url, json={**ACCOUNT, field: bad}, headers=auth)
            assert got.status_code == 422, (field, repr(bad)[:20], got.status_code, got.text)
            assert field in got.text, (field, got.text)
    lone = '{"name": "Lee \\ud800", "currency": "USD", "balance": "1", "due_date": "2026-01-01"}'
    got = httpx.put(url, content=lone, headers={**auth, "Content-Type": "application/json"})
    assert got.status_code == 422, got.text
    for account_id in ("N%00", "N%1B", "N" * 300):
        got = httpx.put(f"{live.url}/api/v1/accounts/{account_id}", json=ACCOUNT, headers=auth)
        assert got.status_code == 422, (account_id, got.text)
        got = httpx.get(f"{live.url}/api/v1/accounts/{account_id}", headers=auth)
        assert got.status_code in (404, 422), (account_id, got.text)
        got = httpx.post(
            f"{live.url}/api/v1/accounts/{account_id}/events",
            headers=auth,
            json={"type": "dispute"},
        )
        assert got.status_code in (404, 422), (account_id, got.text)
    assert live.count(AccountRow, account_id="N1") == 0
    event = httpx.post(
        f"{live.url}/api/v1/accounts/A00001/events",
        headers=auth,
        json={"type": "payment", "amount": "5.00", "payment_id": "p\x001"},
    )
    assert event.status_code == 422, event.text
    assert httpx.put(url, json={**ACCOUNT, "name": "Lee Chen\t"}, headers=auth).status_code == 200
