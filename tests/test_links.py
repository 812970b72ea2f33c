"""Payment and unsubscribe links (``/p/``, ``/u/``) on the real server, SQLite and
PostgreSQL: old links still help the person who has them, forged ones record nothing,
and only a person's first click of a message counts."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from test_server import API_TOKEN, Live, T, _send, live  # noqa: F401 - `live`: a fixture

from orchestrator.config.loading import load_config
from orchestrator.core.links import (
    LINK_LIFETIME,
    PREVIEW_AGENTS,
    UNSUBSCRIBE_GRACE,
    pay_link,
    unsubscribe_link,
)
from orchestrator.store.tables import AccountEvent, AccountRow, DeliveryEvent, OptOut, table_of

BROWSER = {
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1",
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
}


def _pay_link(srv: Live, account: str, expires: timedelta) -> str:
    send = _send(srv, account)
    return pay_link(srv.url, srv.server.settings.secret_key or "", send.message_id, T + expires)


def _clicks(srv: Live) -> tuple[int, int]:
    return srv.count(AccountEvent, type="click"), srv.count(DeliveryEvent, status="clicked")


def _without_pay_urls(srv: Live, tmp_path: Path, account: str, locale: str) -> None:
    """The creditors of ``srv`` without their pay URLs, and ``account`` in ``locale``."""
    config = tmp_path / "config-nopay"
    shutil.copytree(srv.server.settings.config_dir, config)
    creditors = config / "creditors.yaml"
    creditors.write_text(
        creditors.read_text().replace(
            'pay_url: "https://pay.example.com/{reference}"',
            'bank_account: "Acme Consumer Finance, 6222 0000 1234 5678"',
        )
    )
    srv.server.config = load_config(config)
    accounts = table_of(AccountRow)
    with srv.db.begin() as conn:
        conn.execute(
            accounts.update().where(accounts.c.account_id == account).values(locale=locale)
        )


def test_an_expired_pay_link_leads_to_the_pay_page_without_a_click(live: Live) -> None:  # noqa: F811
    link = _pay_link(live, "A00003", -timedelta(days=1))
    got = httpx.get(link, headers=BROWSER, follow_redirects=False)
    assert got.status_code == 302
    assert got.headers["location"] == "https://pay.example.com/R3"
    assert _clicks(live) == (0, 0)


@pytest.mark.parametrize(
    ("locale", "lang", "words"),
    [
        (
            "en-US",
            "en-US",
            (
                "This payment link has expired.",
                "Pay by bank transfer to:",
                "Call Acme Consumer Finance at",
            ),
        ),
        (
            "zh-CN",
            "zh-CN",
            ("此还款链接已过期。", "请通过银行转账还款至：", "请致电Acme Consumer Finance"),
        ),
    ],
)
def test_an_expired_pay_link_without_a_pay_url_says_where_to_pay_and_whom_to_call(
    live: Live,
    tmp_path: Path,
    locale: str,
    lang: str,  # noqa: F811
    words: tuple[str, ...],
) -> None:
    _without_pay_urls(live, tmp_path, "A00003", locale)
    got = httpx.get(_pay_link(live, "A00003", -timedelta(days=3)), headers=BROWSER)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/html")
    page = got.text
    assert f'<html lang="{lang}">' in page
    for word in (*words, "6222 0000 1234 5678", "R3", 'href="tel:+18005550100"'):
        assert word in page, (word, page)
    for fetch in ("<script", "<img", "<link", "src=", "@import", "url("):
        assert fetch not in page  # nothing fetched: one self-contained page
    assert "Pat Doe" not in page and "100.00" not in page  # nothing about the debtor
    assert _clicks(live) == (0, 0)


def test_a_forged_link_is_404_records_nothing_html_for_browsers_json_for_scripts(
    live: Live,
) -> None:  # noqa: F811
    token = _pay_link(live, "A00003", timedelta(days=30)).rsplit("/", 1)[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for path in (f"/p/{forged}", f"/u/{forged}", "/p/nonsense", f"/u/{token}"):
        page = httpx.get(live.url + path, headers=BROWSER, follow_redirects=False)
        assert page.status_code == 404 and "<html" in page.text, (path, page.text)
        api = httpx.get(live.url + path, follow_redirects=False)
        assert api.status_code == 404 and api.json() == {"error": "not found"}, path
    assert httpx.post(f"{live.url}/u/{forged}").status_code == 404
    assert _clicks(live) == (0, 0) and live.count(OptOut) == 0


def test_unsubscribe_links_work_for_a_year_after_their_expiry(live: Live) -> None:  # noqa: F811
    send = _send(live, "A00001", "email")
    secret = live.server.settings.secret_key or ""
    link = unsubscribe_link(live.url, secret, send.message_id, T + LINK_LIFETIME)
    live.clock.set(T + LINK_LIFETIME + UNSUBSCRIBE_GRACE - timedelta(days=1))
    assert "<form method=post" in httpx.get(link).text
    assert (
        httpx.post(
            link,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status_code
        == 200
    )
    assert live.count(OptOut, channel="email") == 1

    other = _send(live, "A00002", "email")
    old = unsubscribe_link(live.url, secret, other.message_id, T + LINK_LIFETIME)
    live.clock.set(T + LINK_LIFETIME + UNSUBSCRIBE_GRACE + timedelta(days=1))
    too_old = httpx.post(old)
    assert too_old.status_code == 410 and "call Acme Consumer Finance" in too_old.text
    assert httpx.get(old).status_code == 410
    assert live.count(OptOut, channel="email") == 1  # nothing recorded for the old link


def test_only_a_persons_first_click_counts(live: Live) -> None:  # noqa: F811
    link = _pay_link(live, "A00003", timedelta(days=30))
    for agent in PREVIEW_AGENTS:
        got = httpx.get(
            link,
            headers={"User-Agent": f"Mozilla/5.0 (compatible; {agent}/1.0)"},
            follow_redirects=False,
        )
        assert got.status_code == 302, agent
    head = httpx.head(link, headers=BROWSER, follow_redirects=False)
    assert head.status_code == 302 and head.headers["location"] == "https://pay.example.com/R3"
    assert _clicks(live) == (0, 0)  # previewers and HEAD record nothing

    for n in range(20):
        live.clock.set(T + timedelta(minutes=n))
        assert httpx.get(link, headers=BROWSER, follow_redirects=False).status_code == 302
    assert _clicks(live) == (20, 1)  # 20 click events, one 'clicked' status
    events = table_of(AccountEvent)
    with live.db.connect() as conn:
        firsts = [
            e.detail["first"]
            for e in conn.execute(
                sa.select(events.c.detail)
                .where(events.c.type == "click")
                .order_by(events.c.time, events.c.id)
            )
        ]
    assert firsts == [True] + [False] * 19
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    shown = httpx.get(f"{live.url}/api/v1/accounts/A00003", headers=auth).json()
    assert [e["status"] for e in shown["events"] if e["type"] == "delivery"] == ["clicked"]
