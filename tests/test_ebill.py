"""The self-service e-bill (``/p/<token>``) on the real uvicorn server, SQLite and
PostgreSQL: what the page shows (and never shows), the choices it records (as the API
records them, once per link and choice, only with the link's form token), and a real
headless Chromium opening it at phone width and choosing a plan."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import ROOT, free_socket, live_server, write_config  # noqa: I001

from channels.registry import create_adapter
from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.models import (
    Duration,
    PlanBounds,
    PlanFrequency,
    PlanOffers,
    PromiseBounds,
)
from orchestrator.config.settings import Settings
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.bounds import plan_problem
from orchestrator.core.crypto import DataCipher
from orchestrator.core.ebill import form_token, form_token_ok, plan_offers, promise_range
from orchestrator.core.links import pay_link
from orchestrator.dispatch.runner import Runner
from orchestrator.ingest.importer import import_accounts
from orchestrator.ingest.validation import parse_account
from orchestrator.reporting.kpis import build_report
from orchestrator.store import db
from orchestrator.store.tables import (
    AccountEvent,
    AuditLog,
    Decision,
    IdempotencyKey,
    InstalmentPlan,
    InstalmentRow,
    Promise,
    Send,
    table_of,
)
from orchestrator.web.app import Server, create_app

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York, 23:00 in Shanghai
SECRET = "test-secret-for-links-0123456789abcdef"
API_TOKEN = "api-token-ebill"
BROWSER = {
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1",
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
}
CADENCES = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00"}
triggers:
  - {id: promise-confirm, on: promise_made, channel: sms, template: promise_made, kind: service}
  - {id: plan-confirm, on: plan_made, channel: sms, template: plan_made, kind: service}
  - {id: plan-broken, on: plan_broken, at: "10:00", channel: sms, template: plan_broken}
  - {id: thanks, on: payment_received, channel: sms, template: payment_thanks, kind: service}
"""
CREDITORS = """
creditors:
  acme:
    name: Acme Consumer Finance
    phone: "+18005550100"
    pay_url: "https://pay.example.com/{reference}"
    plans: {max_instalments: 6, min_instalment: "25.00", frequencies: [weekly, monthly],
            first_payment_within: 14d}
    settlement: {max_discount: "20%", stages: [M1], pay_within: 14d}
  huaxia:
    name: 华夏消费金融
    phone: "+864008205555"
    pay_url: "https://pay.example.com/huaxia/{reference}"
    plans: {max_instalments: 12, min_instalment: "100.00", frequencies: [monthly]}
    settlement: {max_discount: "30%", waives: interest_and_fees, pay_within: 7d}
  plain:
    name: Plain Bank
    phone: "+18005550111"
    pay_url: "https://pay.example.com/plain/{reference}"
"""
ACCOUNTS = (
    "account_id,name,phone,email,address_line1,city,region,country,timezone,locale,"
    "currency,balance,principal,interest,fees,due_date,creditor,reference,consent_sms\n"
    "E1,Pat Doe,+12125550147,pat@example.com,1 Elm Street,New York,NY,US,,en-US,"
    "USD,600.00,500.00,60.00,40.00,2026-03-01,acme,R-EN-1,true\n"
    "Z1,王小明,+8613812345678,wang@example.cn,人民路1号,上海,,CN,Asia/Shanghai,zh-CN,"
    "CNY,3600.00,3000.00,450.00,150.00,2026-03-01,huaxia,R-ZH-1,true\n"
    "P1,Lee Roe,+12125550148,lee@example.com,2 Oak Street,New York,NY,US,,en-US,"
    "USD,80.00,,,,2026-03-01,plain,R-P-1,true\n"
)
# What the page must never show: the debtors' phones, emails and addresses.
PERSONAL = (
    "+12125550147",
    "2125550147",
    "pat@example.com",
    "1 Elm Street",
    "+8613812345678",
    "13812345678",
    "wang@example.cn",
    "人民路",
)


@dataclass
class Bill:
    url: str
    db: sa.Engine
    runner: Runner
    clock: VirtualClock
    outbox: Path

    def link(
        self, account: str, expires: timedelta = timedelta(days=30), *, step: str | None = None
    ) -> str:
        """The pay link of the account's first send (of ``step``'s last, if given)."""
        t, d = table_of(Send), table_of(Decision)
        query = sa.select(t.c.message_id).where(t.c.account_id == account).order_by(t.c.id)
        if step is not None:
            query = (
                query.where(t.c.message_id.in_(sa.select(d.c.message_id).where(d.c.step == step)))
                .order_by(None)
                .order_by(t.c.id.desc())
            )
        with self.db.connect() as conn:
            message_id = conn.execute(query).scalars().first()
        assert message_id is not None
        return pay_link(self.url, SECRET, message_id, T + expires)

    def count(self, model: Any, **where: Any) -> int:
        t = table_of(model)
        q = sa.select(sa.func.count()).select_from(t)
        for k, v in where.items():
            q = q.where(t.c[k] == v)
        with self.db.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def decisions(self, account: str, step: str) -> list[Any]:
        t = table_of(Decision)
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    sa.select(t).where(t.c.account_id == account, t.c.step == step).order_by(t.c.id)
                )
            )

    def sent_text(self, account: str, step: str) -> str:
        sent = [d for d in self.decisions(account, step) if d.decision == "sent"]
        assert len(sent) == 1, [(d.decision, d.reason) for d in self.decisions(account, step)]
        record = json.loads((self.outbox / "sms" / f"{sent[0].message_id}.json").read_text())
        return str(record["text"])


@pytest.fixture
def bill(db_url: str, tmp_path: Path) -> Iterator[Bill]:
    outbox = tmp_path / "outbox"
    config_dir = write_config(tmp_path / "config", outbox=outbox, cadences=CADENCES)
    (config_dir / "creditors.yaml").write_text(CREDITORS)
    keys = Fernet.generate_key().decode()
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    (tmp_path / "a.csv").write_text(ACCOUNTS)
    import_accounts(engine, tmp_path / "a.csv", DataCipher([keys]))
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings.from_env(
        {
            **os.environ,
            "OUTREACH_DATABASE_URL": db_url,
            "OUTREACH_DATA_KEYS": keys,
            "OUTREACH_SECRET_KEY": SECRET,
            "OUTREACH_CONFIG": str(config_dir),
            "OUTREACH_TEMPLATES": str(ROOT / "templates"),
            "OUTREACH_PUBLIC_URL": url,
            "OUTREACH_API_TOKENS": API_TOKEN,
        }
    )
    config = load_config(settings.config_dir, settings.templates_dir)
    cipher = DataCipher(settings.data_keys)
    clock = VirtualClock(T)
    adapters = {
        n: create_adapter(n, c, base_dir=tmp_path, clock=clock) for n, c in config.channels.items()
    }
    runner = Runner(
        engine,
        config,
        TemplateRenderer(ROOT / "templates"),
        adapters,
        cipher,
        public_url=url,
        secret=SECRET,
    )
    runner.tick(T)  # a reminder (with its pay link) to each account
    server = Server(
        db=engine, config=config, cipher=cipher, settings=settings, clock=clock, runner=runner
    )
    try:
        with live_server(create_app(server), sock):
            yield Bill(url, engine, runner, clock, outbox)
    finally:
        engine.dispose()


def _form(page: str) -> dict[str, str]:
    token = re.search(r'name="form" value="([0-9a-f]+)"', page)
    assert token is not None, page
    return {"form": token.group(1)}


def _offers(page: str) -> list[str]:
    return re.findall(r'name="offer" value="([a-z]+-\d+)"', page)


# --- the offers (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize("balance", ["0.01", "24.99", "80.00", "600.00", "1234.57", "99999.99"])
@pytest.mark.parametrize(
    "offers",
    [
        PlanOffers(max_instalments=6, min_instalment=Decimal("25.00")),
        PlanOffers(
            max_instalments=60,
            frequencies=(PlanFrequency.weekly, PlanFrequency.biweekly, PlanFrequency.monthly),
            first_payment_within=Duration(30, "d"),
        ),
        PlanOffers(
            max_instalments=12, min_instalment=Decimal("100"), first_payment_within=Duration(0, "d")
        ),
    ],
)
def test_every_offer_stays_within_the_creditors_and_the_policys_bounds(
    balance: str, offers: PlanOffers
) -> None:
    today = date(2026, 1, 31)  # monthly dues fall on short months' last days
    owed = Decimal(balance)
    bounds = PlanBounds(max_instalments=24, max_days_between=35, min_instalment=Decimal("10"))
    got = plan_offers(offers, bounds, owed, today)
    for offer in got:
        assert 2 <= offer.count <= min(offers.max_instalments, bounds.max_instalments)
        assert sum(a for _, a in offer.instalments) == owed  # pays exactly the balance
        assert all(a > 0 for _, a in offer.instalments)
        least = max(offers.min_instalment or 0, bounds.min_instalment or 0)
        assert all(a >= least for _, a in offer.instalments[:-1]), offer
        window = offers.first_payment_within.amount
        assert today <= offer.first_due <= today + timedelta(days=window), offer
        dues = [d for d, _ in offer.instalments]
        assert dues == sorted(set(dues))
        assert (
            plan_problem(bounds, instalments=offer.instalments, made_on=today, balance=owed) is None
        )
    if owed < 2 * max(offers.min_instalment or 0, Decimal("10")):
        assert got == []  # nothing to split: no plan is offered


def test_the_promise_window_and_the_form_token() -> None:
    window = promise_range(
        PromiseBounds(max_days_ahead=20, min_share_of_balance=Decimal("0.1")),
        Decimal("600.00"),
        date(2026, 3, 10),
    )
    assert (window.first, window.last, window.least) == (
        date(2026, 3, 10),
        date(2026, 3, 30),
        Decimal("60.00"),
    )
    token = form_token(SECRET, "abc")
    assert form_token_ok(SECRET, "abc", token)
    assert not form_token_ok(SECRET, "abd", token)  # another link's form
    assert not form_token_ok("another-secret-0123456789abcdef0123", "abc", token)
    assert not form_token_ok(SECRET, "abc", None) and not form_token_ok(SECRET, "abc", "")


def test_the_breakdown_columns_are_optional_amounts() -> None:
    row = {
        "account_id": "A1",
        "name": "Pat Doe",
        "currency": "USD",
        "balance": "100.00",
        "due_date": "2026-03-01",
    }
    account, problems = parse_account(
        {**row, "principal": "90", "interest": "7.5", "fees": "2.50"}, source="a.csv", line=2
    )
    assert problems == [] and account is not None
    assert (account.principal, account.interest, account.fees) == (
        Decimal("90"),
        Decimal("7.5"),
        Decimal("2.50"),
    )
    account, _ = parse_account(row, source="a.csv", line=2)
    assert account is not None and account.principal is None and account.fees is None
    for column, value in (("principal", "-1"), ("interest", "1.234"), ("fees", "lots")):
        account, problems = parse_account({**row, column: value}, source="a.csv", line=2)
        assert account is None and [p.field for p in problems] == [column], problems


# --- the page --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "lang", "words"),
    [
        (
            "E1",
            "en-US",
            (
                "Acme Consumer Finance",
                "Hello, Pat Doe",
                "$600.00",
                "$500.00",
                "$60.00",
                "$40.00",
                "R-EN-1",
                "Mar 1, 2026",
                "Pay $600.00 now",
                "Promise to pay",
                "Set up this plan",
                "6 monthly payments of $100.00",
            ),
        ),
        (
            "Z1",
            "zh-CN",
            (
                "华夏消费金融",
                "王小明，您好",
                "¥3,600.00",
                "本金",
                "¥3,000.00",
                "利息",
                "¥450.00",
                "费用",
                "¥150.00",
                "R-ZH-1",
                "2026年3月1日",
                "一次性还清",
                "承诺还款日期",
                "分期还款",
                "分12期，每月还¥300.00",
            ),
        ),
    ],
)
def test_the_page_shows_the_bill_in_the_debtors_language_and_no_personal_data(
    bill: Bill, account: str, lang: str, words: tuple[str, ...]
) -> None:
    got = httpx.get(bill.link(account), headers=BROWSER, follow_redirects=False)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/html")
    assert got.headers["cache-control"] == "no-store"
    page = got.text
    assert f'<html lang="{lang}">' in page
    for word in words:
        assert word in page, (word, page)
    for secret in PERSONAL:
        assert secret not in page, secret
    for fetch in ("<script", "<img", "<link", "src=", "@import", "url("):
        assert fetch not in page  # one self-contained page
    assert len(page.encode()) < 30 * 1024
    assert bill.count(AccountEvent, type="click", account_id=account) == 1  # as a redirect's


def test_a_script_an_expired_link_or_a_creditor_without_plans_still_redirect(bill: Bill) -> None:
    api = httpx.get(bill.link("E1"), follow_redirects=False)  # no text/html: a script
    assert api.status_code == 302 and api.headers["location"] == "https://pay.example.com/R-EN-1"
    old = httpx.get(bill.link("E1", -timedelta(days=1)), headers=BROWSER, follow_redirects=False)
    assert old.status_code == 302  # expired: to the pay page, as before
    plain = httpx.get(bill.link("P1"), headers=BROWSER, follow_redirects=False)
    assert plain.status_code == 302
    assert plain.headers["location"] == "https://pay.example.com/plain/R-P-1"
    pay = httpx.get(bill.link("E1") + "/pay", headers=BROWSER, follow_redirects=False)
    assert pay.status_code == 302 and pay.headers["location"] == "https://pay.example.com/R-EN-1"


# --- choosing --------------------------------------------------------------------------------


def test_a_plan_is_recorded_once_as_the_api_records_it_and_confirmed(bill: Bill) -> None:
    link = bill.link("E1")
    page = httpx.get(link, headers=BROWSER).text
    offers = _offers(page)
    assert "monthly-3" in offers and "weekly-2" in offers
    form = {**_form(page), "choice": "plan", "offer": "monthly-3"}
    first = httpx.post(link, data=form, headers=BROWSER)
    again = httpx.post(link, data=form, headers=BROWSER)  # a double tap
    for got in (first, again):
        assert got.status_code == 200, got.text
        assert "Thank you: your plan is set up" in got.text
        assert "3 payments of $200.00, the first on Mar 24, 2026." in got.text
        assert 'name="offer"' not in got.text  # the choices give way to the confirmation
    other = httpx.post(link, data={**form, "offer": "weekly-2"}, headers=BROWSER)
    assert other.status_code == 200 and "Your choice is recorded already" in other.text
    later = httpx.get(link, headers=BROWSER).text  # while the plan runs: no new choice
    assert "You have a payment plan" in later
    assert "Your next instalment, $200.00, is due on Mar 24, 2026." in later
    assert 'name="offer"' not in later and 'name="due"' not in later
    assert "Pay $600.00 now" in later
    promise = {**_form(page), "choice": "promise", "due": "2026-03-20", "amount": "600"}
    refused = httpx.post(link, data=promise, headers=BROWSER)
    assert refused.status_code == 409 and "not available for your account now" in refused.text
    assert bill.count(Promise) == 0
    assert bill.count(InstalmentPlan) == 1
    assert bill.count(InstalmentPlan, account_id="E1", source="self_service") == 1
    assert bill.count(InstalmentRow) == 3
    assert bill.count(AuditLog, action="event.plan", actor="self_service") == 1
    assert bill.count(IdempotencyKey) == 1

    bill.runner.tick(T + timedelta(minutes=1))
    confirmation = bill.sent_text("E1", "plan-confirm")
    assert "Your payment plan on account R-EN-1 is set up." in confirmation
    assert "$200.00 is due Mar 24, 2026" in confirmation
    # While the plan is kept, collection is suppressed: the next day's reminder is not sent.
    bill.clock.set(T + timedelta(days=1))
    bill.runner.tick(T + timedelta(days=1))
    reminders = bill.decisions("E1", "daily-sms")
    assert reminders[0].decision == "sent"  # the one before the plan
    assert [(d.decision, d.reason) for d in reminders[1:]] == [("suppressed", "plan_active")]


def test_a_promise_within_bounds_is_recorded_and_one_outside_is_refused(bill: Bill) -> None:
    link = bill.link("Z1")
    form = {**_form(httpx.get(link, headers=BROWSER).text), "choice": "promise"}
    late = httpx.post(link, data={**form, "due": "2026-06-30", "amount": "3600"}, headers=BROWSER)
    assert late.status_code == 422 and "无法记录此选择" in late.text
    assert "max_days_ahead" in late.text
    for bad in ({"due": "soon", "amount": "1"}, {"due": "2026-03-20", "amount": "-5"}):
        assert httpx.post(link, data={**form, **bad}, headers=BROWSER).status_code == 422
    assert bill.count(Promise) == 0 and bill.count(IdempotencyKey) == 0

    ok = httpx.post(link, data={**form, "due": "2026-03-20", "amount": "3600.00"}, headers=BROWSER)
    assert ok.status_code == 200 and "感谢您：还款承诺已记录" in ok.text
    assert "您承诺于2026年3月20日前还款¥3,600.00。" in ok.text
    assert bill.count(Promise, account_id="Z1", source="self_service") == 1
    bill.runner.tick(T + timedelta(minutes=1))
    assert "已记录您的还款承诺" in bill.sent_text("Z1", "promise-confirm")


def test_a_tampered_or_expired_link_or_a_forged_form_records_nothing(bill: Bill) -> None:
    link = bill.link("E1")
    page = httpx.get(link, headers=BROWSER).text
    plan = {**_form(page), "choice": "plan", "offer": "monthly-3"}
    token = link.rsplit("/", 1)[1]
    tampered = f"{bill.url}/p/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}"
    got = httpx.post(tampered, data=plan, headers=BROWSER)
    assert got.status_code == 404 and "<html" in got.text
    got = httpx.post(bill.link("P1"), data=plan, headers=BROWSER)  # a creditor without plans
    assert got.status_code == 410 and "Online payment is not available" in got.text
    expired = bill.link("E1", -timedelta(days=1))
    got = httpx.post(expired, data=plan, headers=BROWSER)
    assert got.status_code == 410 and "This payment link has expired." in got.text
    other = bill.link("Z1")  # the form of E1's page posted to Z1's link
    got = httpx.post(other, data=plan, headers=BROWSER)
    assert got.status_code == 403 and "此页面已过期" in got.text
    got = httpx.post(link, data={"choice": "plan", "offer": "monthly-3"}, headers=BROWSER)
    assert got.status_code == 403
    got = httpx.post(link, data={**plan, "offer": "monthly-99"}, headers=BROWSER)
    assert got.status_code == 422
    too_many = "&".join(f"f{i}=1" for i in range(50))
    got = httpx.post(link, content=too_many, headers={**BROWSER, "Content-Type": "text/plain"})
    assert got.status_code == 403
    assert bill.count(InstalmentPlan) == 0 and bill.count(Promise) == 0
    assert bill.count(IdempotencyKey) == 0


# --- follow-up and the report ---------------------------------------------------------------


def _choose_plan(bill: Bill, account: str, offer: str) -> None:
    link = bill.link(account)
    form = {**_form(httpx.get(link, headers=BROWSER).text), "choice": "plan", "offer": offer}
    assert httpx.post(link, data=form, headers=BROWSER).status_code == 200


def _api(bill: Bill, account: str, event: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        f"{bill.url}/api/v1/accounts/{account}/events",
        json=event,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": key},
    )


def test_a_missed_instalment_breaks_the_plan_and_the_thanks_name_the_next_one(
    bill: Bill,
) -> None:
    _choose_plan(bill, "E1", "monthly-3")  # 200.00 on 03-24, 04-24, 05-24
    _choose_plan(bill, "Z1", "monthly-6")  # 600.00 a month from 03-24
    paid = _api(bill, "Z1", {"type": "payment", "amount": "600.00"}, "pay-z1")
    assert paid.status_code == 201, paid.text
    bill.runner.tick(T + timedelta(minutes=1))
    thanks = bill.sent_text("Z1", "thanks")
    assert "下期分期款¥600.00于2026年4月24日到期" in thanks, thanks

    # E1 pays nothing: at the end of 03-24 plus a day's grace the plan is broken.
    bill.clock.set(T + timedelta(days=16))
    bill.runner.tick(T + timedelta(days=16))
    broken = bill.sent_text("E1", "plan-broken")
    assert "we did not receive the $200.00 instalment due Mar 24, 2026" in broken, broken
    assert "the plan has ended" in broken
    bill.runner.plan_accounts(["E1", "Z1"], T + timedelta(days=16))  # the stored states
    assert bill.count(InstalmentPlan, account_id="E1", state="broken") == 1
    assert bill.count(InstalmentPlan, account_id="Z1", state="active") == 1
    assert bill.decisions("Z1", "plan-broken") == []  # Z1's plan holds


def test_a_broken_plan_is_offered_again_once(bill: Bill) -> None:
    _choose_plan(bill, "E1", "monthly-3")  # first due 03-24
    bill.clock.set(T + timedelta(days=16))
    bill.runner.tick(T + timedelta(days=16))  # broken: the plan_broken text has a new link
    again = bill.link("E1", timedelta(days=90), step="plan-broken")
    page = httpx.get(again, headers=BROWSER).text
    assert "monthly-3" in _offers(page)  # offered again, once
    form = {**_form(page), "choice": "plan", "offer": "monthly-3"}
    assert httpx.post(again, data=form, headers=BROWSER).status_code == 200  # first due 04-09
    bill.clock.set(T + timedelta(days=32))
    bill.runner.tick(T + timedelta(days=32))  # broken again
    assert len([d for d in bill.decisions("E1", "plan-broken") if d.decision == "sent"]) == 2
    last = bill.link("E1", timedelta(days=90), step="daily-sms")
    page = httpx.get(last, headers=BROWSER).text
    assert _offers(page) == [] and "Set up this plan" not in page
    assert "Promise to pay" in page and "Pay $600.00 now" in page  # the rest stays open
    form = {**_form(page), "choice": "plan", "offer": "monthly-3"}
    assert httpx.post(last, data=form, headers=BROWSER).status_code == 409
    assert bill.count(InstalmentPlan) == 2


def test_the_report_counts_self_service_promises_and_plans_apart(bill: Bill) -> None:
    _choose_plan(bill, "E1", "monthly-3")
    link = bill.link("Z1")
    form = {**_form(httpx.get(link, headers=BROWSER).text), "choice": "promise"}
    got = httpx.post(link, data={**form, "due": "2026-03-12", "amount": "3600"}, headers=BROWSER)
    assert got.status_code == 200
    promise = {"type": "promise", "amount": "80.00", "due": "2026-03-12"}
    assert _api(bill, "P1", promise, "promise-p1").status_code == 201
    plan = {"type": "plan", "instalments": [{"due": "2026-03-20", "amount": "80.00"}]}
    assert _api(bill, "P1", plan, "plan-p1").status_code == 201
    # Z1 keeps its promise; P1 breaks its own and then misses its instalment.
    assert _api(bill, "Z1", {"type": "payment", "amount": "3600.00"}, "pay-z1").status_code == 201
    bill.clock.set(T + timedelta(days=15))
    bill.runner.tick(T + timedelta(days=15))
    # The stored states (what the report reads) are written when an account is planned
    # after a request, as the server does: here, as if each account had one now.
    bill.runner.plan_accounts(["E1", "Z1", "P1"], T + timedelta(days=15))
    with bill.db.connect() as conn:
        report = build_report(conn, bill.runner.config, date(2026, 3, 1), date(2026, 3, 31))
    assert report["sources"] == {
        "self_service": {
            "promises": 1,
            "promise_kept": {"kept": 1, "of": 1, "rate": 1.0},
            "settlements": 0,
            "settlement_kept": {"kept": 0, "of": 0, "rate": None},
            "waived": {},
            "plans": 1,
            "plan_kept": {"kept": 0, "of": 0, "rate": None},  # E1's plan is still running
        },
        "api": {
            "promises": 1,
            "promise_kept": {"kept": 0, "of": 1, "rate": 0.0},
            "settlements": 0,
            "settlement_kept": {"kept": 0, "of": 0, "rate": None},
            "waived": {},
            "plans": 1,
            "plan_kept": {"kept": 0, "of": 1, "rate": 0.0},
        },
    }


# --- settlements -----------------------------------------------------------------------------


def _settle(bill: Bill, account: str) -> tuple[str, dict[str, str]]:
    """The account's link and the settlement form its page shows."""
    link = bill.link(account)
    page = httpx.get(link, headers=BROWSER).text
    amount = re.search(
        r'value="settlement">\s*<input type="hidden" name="amount" value="([0-9.]+)"', page
    )
    assert amount is not None, page
    return link, {**_form(page), "choice": "settlement", "amount": amount.group(1)}


def _timeline(bill: Bill, account: str) -> dict[str, Any]:
    from orchestrator.store.timeline import account_timeline

    with bill.db.connect() as conn:
        shown = account_timeline(conn, bill.runner.cipher, account, today=date(2026, 4, 1))
    assert shown is not None
    return shown


@pytest.mark.parametrize(
    ("account", "words"),
    [
        (
            "E1",
            (
                "Settle for less",
                "Pay $480.00 by Mar 24, 2026 and we waive the remaining $120.00.",
                "The amount waived is part of your balance.",
                "Accept: pay $480.00 by Mar 24, 2026",
            ),
        ),
        (
            "Z1",  # 减免: interest and fees only (600.00), below the 30% authority (1,080.00)
            (
                "减免结清",
                "于2026年3月17日前还款¥3,000.00，剩余¥600.00予以减免。",
                "减免部分为利息和费用，本金需全额偿还。",
            ),
        ),
    ],
)
def test_the_page_offers_the_settlement_within_the_authority(
    bill: Bill, account: str, words: tuple[str, ...]
) -> None:
    page = httpx.get(bill.link(account), headers=BROWSER).text
    for word in words:
        assert word in page, (word, page)
    assert len(page.encode()) < 30 * 1024
    for secret in PERSONAL:
        assert secret not in page


def test_a_settlement_paid_by_its_deadline_settles_the_account(bill: Bill) -> None:
    link, form = _settle(bill, "E1")
    first = httpx.post(link, data=form, headers=BROWSER)
    again = httpx.post(link, data=form, headers=BROWSER)  # a double tap records one
    for got in (first, again):
        assert got.status_code == 200, got.text
        assert "Thank you: your settlement is agreed" in got.text
        assert "Pay $480.00 by Mar 24, 2026; $120.00 is then waived." in got.text
    promises = table_of(Promise)
    with bill.db.connect() as conn:
        rows = conn.execute(sa.select(promises)).all()
    assert [(r.amount, r.waived, r.due, r.source) for r in rows] == [
        (Decimal("480.00"), Decimal("120.00"), date(2026, 3, 24), "self_service")
    ]
    assert bill.count(IdempotencyKey) == 1
    assert bill.count(AuditLog, action="event.settlement", actor="self_service") == 1
    page = httpx.get(link, headers=BROWSER).text  # pending: no other choice, pay the 480
    assert "You have agreed to settle" in page and "Pay $480.00 now" in page
    assert 'name="choice"' not in page
    bill.runner.tick(T + timedelta(minutes=1))
    confirmation = bill.sent_text("E1", "promise-confirm")
    assert "$480.00 by Mar 24, 2026" in confirmation and "$120.00 is waived" in confirmation

    paid = _api(bill, "E1", {"type": "payment", "amount": "480.00"}, "pay-e1")
    assert paid.status_code == 201, paid.text
    for day in (1, 2, 20):  # settled for good: past the deadline and after_kept too
        bill.clock.set(T + timedelta(days=day))
        bill.runner.tick(T + timedelta(days=day))
    later = bill.decisions("E1", "daily-sms")[1:]
    assert later and {(d.decision, d.reason) for d in later} == {("suppressed", "settled")}
    assert len(bill.decisions("E1", "thanks")) == 1  # the service thanks still went
    page = httpx.get(bill.link("E1", timedelta(days=60)), headers=BROWSER).text
    assert "Your account is settled" in page and "<form" not in page
    bill.runner.plan_accounts(["E1"], T + timedelta(days=20))  # the stored states
    shown = _timeline(bill, "E1")
    assert shown["settlement"] == {
        "amount": "480.00",
        "waived": "120.00",
        "due": "2026-03-24",
        "state": "settled",
        "made_at": "2026-03-10T15:00:00Z",
        "source": "self_service",
    }
    from orchestrator.cli.data import timeline_rows

    said = [row[5] for row in timeline_rows(shown) if row[2] == "settlement"]
    assert said == ["480.00 due 2026-03-24, 120.00 waived: settled"]
    with bill.db.connect() as conn:
        report = build_report(conn, bill.runner.config, date(2026, 3, 1), date(2026, 3, 31))
    mine = report["sources"]["self_service"]
    assert (mine["promises"], mine["settlements"], mine["waived"]) == (0, 1, {"USD": "120.00"})
    assert mine["settlement_kept"] == {"kept": 1, "of": 1, "rate": 1.0}


def test_a_settlement_not_paid_by_its_deadline_lapses_and_collection_resumes(
    bill: Bill,
) -> None:
    link, form = _settle(bill, "Z1")  # pay 3,000.00 by 03-17 (Shanghai)
    assert httpx.post(link, data=form, headers=BROWSER).status_code == 200
    assert _api(bill, "Z1", {"type": "payment", "amount": "1000.00"}, "p1").status_code == 201
    bill.clock.set(T + timedelta(days=3))
    bill.runner.tick(T + timedelta(days=3))  # pending: collection waits
    assert [(d.decision, d.reason) for d in bill.decisions("Z1", "daily-sms")[1:]] == [
        ("suppressed", "promise_pending")
    ]
    bill.clock.set(T + timedelta(days=10))  # 03-17 + 1 day of grace has passed
    bill.runner.tick(T + timedelta(days=10))
    last = bill.decisions("Z1", "daily-sms")[-1]
    assert (last.decision, last.reason) == ("sent", None)  # on the whole balance again
    page = httpx.get(bill.link("Z1", timedelta(days=60)), headers=BROWSER).text
    assert "¥2,600.00" in page and "减免结清" not in page  # offered once; 3,600 - 1,000
    assert "承诺还款日期" in page  # the other choices are open again
    bill.runner.plan_accounts(["Z1"], T + timedelta(days=10))
    assert _timeline(bill, "Z1")["settlement"]["state"] == "lapsed"


def test_a_forged_tampered_or_expired_settlement_records_nothing(bill: Bill) -> None:
    link, form = _settle(bill, "E1")
    assert httpx.post(link, data={**form, "form": "0" * 32}, headers=BROWSER).status_code == 403
    cheaper = httpx.post(link, data={**form, "amount": "1.00"}, headers=BROWSER)
    assert cheaper.status_code == 422 and "not offered today" in cheaper.text
    expired = bill.link("E1", -timedelta(days=1))
    assert httpx.post(expired, data=form, headers=BROWSER).status_code == 410
    assert httpx.post(bill.link("Z1"), data=form, headers=BROWSER).status_code == 403
    plain = httpx.post(bill.link("P1"), data=form, headers=BROWSER)
    assert plain.status_code == 410  # a creditor with no e-bill
    assert bill.count(Promise) == 0 and bill.count(IdempotencyKey) == 0


def test_a_disputed_account_or_one_with_a_plan_is_offered_no_settlement(bill: Bill) -> None:
    assert _api(bill, "E1", {"type": "dispute"}, "d1").status_code == 201
    assert "Settle for less" not in httpx.get(bill.link("E1"), headers=BROWSER).text
    link, form = _settle(bill, "Z1")
    _choose_plan(bill, "Z1", "monthly-6")
    assert "减免结清" not in httpx.get(link, headers=BROWSER).text
    assert httpx.post(link, data=form, headers=BROWSER).status_code == 409
    assert bill.count(Promise) == 0


def test_the_api_records_a_settlement_within_the_authority_only(bill: Bill) -> None:
    too_cheap = {"type": "settlement", "amount": "479.99", "due": "2026-03-20"}
    got = _api(bill, "E1", too_cheap, "s1")
    assert got.status_code == 422 and "more than 120.00" in got.text
    late = {"type": "settlement", "amount": "500.00", "due": "2026-03-25"}
    got = _api(bill, "E1", late, "s2")
    assert got.status_code == 422 and "pay_within" in got.text
    none = _api(bill, "P1", {"type": "settlement", "amount": "70.00", "due": "2026-03-20"}, "s3")
    assert none.status_code == 422 and "no settlement may be offered" in none.text
    ok = _api(bill, "E1", {"type": "settlement", "amount": "500.00", "due": "2026-03-20"}, "s4")
    assert ok.status_code == 201 and ok.json()["waived"] == "100.00"
    assert bill.count(Promise, source="api") == 1


# --- in a real browser -----------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Tab:
    """One page of a headless Chromium, driven over the DevTools protocol."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        self.ws.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.ids:
                assert "error" not in message, message
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def wait_for(self, expression: str, seconds: float = 30) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the page never had {expression}")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[_Tab]:
    from websockets.sync.client import connect

    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make sysdeps` installs it")
        pytest.skip("chromium is not installed (`make sysdeps`)")
    process = subprocess.Popen(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                break
        else:
            raise AssertionError("chromium did not start its DevTools endpoint")
        port = found.group(1).split(":")[2].split("/")[0]
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list").json()
        page = next(p for p in pages if p["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            tab = _Tab(ws)
            tab.call("Page.enable")
            tab.call(
                "Emulation.setDeviceMetricsOverride",
                width=390,
                height=844,
                deviceScaleFactor=1,
                mobile=True,
            )
            yield tab
    finally:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("account", "offer", "done", "first_due"),
    [
        ("E1", "monthly-3", "Thank you: your plan is set up", date(2026, 3, 24)),
        ("Z1", "monthly-6", "感谢您：分期方案已设立", date(2026, 3, 24)),
    ],
)
def test_chromium_opens_the_page_at_phone_width_and_chooses_a_plan(
    bill: Bill,
    chromium: _Tab,
    tmp_path: Path,
    account: str,
    offer: str,
    done: str,
    first_due: date,
) -> None:
    from PIL import Image

    chromium.call("Page.navigate", url=bill.link(account))
    chromium.wait_for("document.readyState === 'complete' && !!document.querySelector('form')")
    assert chromium.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    shot = tmp_path / f"{account}.png"
    data = chromium.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    shot.write_bytes(base64.b64decode(data["data"]))
    if os.environ.get("OUTREACH_EBILL_SHOTS"):  # to look at them: a directory to copy to
        shutil.copy(shot, Path(os.environ["OUTREACH_EBILL_SHOTS"]) / shot.name)
    image = Image.open(shot).convert("RGB")
    assert image.size[0] == 390 and image.size[1] >= 844
    assert len(image.getcolors(1 << 20) or []) > 50  # text and buttons, not a blank page

    # Choose the plan as a person does: tick its radio button, press the form's button.
    # The form is plain HTML: the browser posts it (no script of ours runs).
    chromium.evaluate(f"document.getElementById('offer-{offer}').click()")
    chromium.evaluate(
        "document.getElementById('offer-" + offer + "').form.querySelector('button').click()"
    )
    text = chromium.wait_for(
        f"document.body.innerText.includes({json.dumps(done)}) && document.body.innerText"
    )
    assert done in text
    plans = table_of(InstalmentPlan)
    rows = table_of(InstalmentRow)
    with bill.db.connect() as conn:
        plan = conn.execute(sa.select(plans).where(plans.c.account_id == account)).one()
        dues = conn.execute(
            sa.select(rows.c.due, rows.c.amount)
            .where(rows.c.plan_id == plan.id)
            .order_by(rows.c.due)
        ).all()
    assert plan.source == "self_service" and plan.state == "active"
    assert dues[0][0] == first_due and len(dues) == int(offer.split("-")[1])

    bill.runner.tick(T + timedelta(minutes=1))
    assert bill.sent_text(account, "plan-confirm")  # the confirmation, in the outbox
    bill.clock.set(T + timedelta(days=1))
    bill.runner.tick(T + timedelta(days=1))
    later = bill.decisions(account, "daily-sms")[1:]
    assert [(d.decision, d.reason) for d in later] == [("suppressed", "plan_active")]


def test_chromium_accepts_the_settlement_with_its_button(bill: Bill, chromium: _Tab) -> None:
    chromium.call("Page.navigate", url=bill.link("E1"))
    chromium.wait_for("document.readyState === 'complete' && !!document.querySelector('form')")
    assert chromium.evaluate("document.documentElement.scrollWidth") <= 390
    chromium.evaluate(
        "document.querySelector('input[value=settlement]').form.querySelector('button').click()"
    )
    done = "Thank you: your settlement is agreed"
    text = chromium.wait_for(
        f"document.body.innerText.includes({json.dumps(done)}) && document.body.innerText"
    )
    assert "Pay $480.00 by Mar 24, 2026; $120.00 is then waived." in text
    assert bill.count(Promise, account_id="E1", source="self_service") == 1
