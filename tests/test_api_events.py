"""What the REST API and the payment webhook take: sane instants and dates, promises and
plans within the policy's bounds (the shipped ``config/policy.yaml``, with its CN
overlay), refused with the reason and nothing written (SQLite and PostgreSQL).

The app is the real one (``create_app``) over HTTP in process (Starlette's
``TestClient``), on the shipped configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ROOT  # noqa: I001 - tests/support.py

from orchestrator.clock import VirtualClock
from orchestrator.config.loading import load_config
from orchestrator.config.settings import Settings
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.dispatch.runner import Runner
from orchestrator.ingest.importer import import_accounts
from orchestrator.store import db, facts
from orchestrator.store.tables import (
    AccountEvent,
    AccountPlan,
    AccountRow,
    Decision,
    InstalmentPlan,
    Payment,
    Promise,
    table_of,
)
from orchestrator.web.app import Server, create_app

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York, 23:00 in Shanghai
TOKEN = "api-token"
PAY_SECRET = "payment-secret"
ACCOUNTS = """account_id,name,phone,city,region,country,timezone,currency,balance,due_date,creditor
US1,Pat Doe,+12125550100,New York,NY,US,,USD,1000.00,2026-02-01,acme
US2,Lee Chen,+12125550101,New York,NY,US,,USD,20.00,2026-02-01,acme
CN1,Wang Fang,+8613800138000,Beijing,,CN,Asia/Shanghai,CNY,5000.00,2026-02-01,huaxia
"""


@dataclass
class Api:
    client: TestClient
    db: sa.Engine
    clock: VirtualClock
    runner: Runner

    def event(
        self,
        account: str,
        body: dict[str, Any],
        *,
        key: str | None = "new",
        headers: dict[str, str] | None = None,
    ) -> Any:
        """POST an event; ``key="new"`` sends a fresh ``Idempotency-Key``, ``None`` none."""
        sent = {"Authorization": f"Bearer {TOKEN}", **(headers or {})}
        if key is not None:
            sent["Idempotency-Key"] = uuid.uuid4().hex if key == "new" else key
        return self.client.post(f"/api/v1/accounts/{account}/events", json=body, headers=sent)

    def webhook(self, body: dict[str, Any]) -> Any:
        raw = json.dumps(body).encode()
        stamp = str(int(self.clock.now().timestamp()))
        sig = hmac.new(PAY_SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        return self.client.post(
            "/webhooks/payments",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Outreach-Timestamp": stamp,
                "X-Outreach-Signature": f"sha256={sig}",
            },
        )

    def count(self, model: Any) -> int:
        with self.db.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(table_of(model))).scalar_one()
            )

    def written(self) -> dict[str, int]:
        return {m.__name__: self.count(m) for m in (Promise, InstalmentPlan, Payment, AccountEvent)}


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    keys = Fernet.generate_key().decode()
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    cipher = DataCipher([keys])
    (tmp_path / "a.csv").write_text(ACCOUNTS)
    import_accounts(engine, tmp_path / "a.csv", cipher)
    settings = Settings.from_env(
        {
            "OUTREACH_DATABASE_URL": db_url,
            "OUTREACH_DATA_KEYS": keys,
            "OUTREACH_SECRET_KEY": "s",
            "OUTREACH_API_TOKENS": TOKEN,
            "OUTREACH_PAYMENT_WEBHOOK_SECRET": PAY_SECRET,
        }
    )
    config = load_config(ROOT / "config", ROOT / "templates")
    clock = VirtualClock(T)
    runner = Runner(
        engine,
        config,
        TemplateRenderer(ROOT / "templates"),
        {},
        cipher,
        public_url=settings.public_url,
        secret="s",
    )
    server = Server(
        db=engine, config=config, cipher=cipher, settings=settings, clock=clock, runner=runner
    )
    with TestClient(create_app(server), raise_server_exceptions=False) as client:
        yield Api(client, engine, clock, runner)
    engine.dispose()


def refused(response: Any, *words: str) -> bool:
    """A 422 whose reason names every one of ``words``."""
    return response.status_code == 422 and all(w in response.text for w in words)


def days(n: int) -> str:
    return (T.date() + timedelta(days=n)).isoformat()


# --- item 5: instants and dates out of range -----------------------------------------------


def test_out_of_range_instants_and_dates_are_refused_before_anything_is_written(api: Api) -> None:
    year_one, far = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"
    for at in (
        year_one,
        "1969-12-31T23:59:59Z",
        far,
        (T + timedelta(days=2)).isoformat(),
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
    ):  # no UTC instant
        for body in (
            {"type": "payment", "amount": "5.00"},
            {"type": "dispute"},
            {"type": "promise", "amount": "100.00", "due": days(5)},
        ):
            answer = api.event("US1", {**body, "at": at})
            assert refused(answer, "at:"), (body, at, answer.text)
    for paid_at in (year_one, far, "0001-01-01T00:00:00+05:00"):
        answer = api.webhook(
            {
                "event_id": f"ev-{paid_at}",
                "account_id": "US1",
                "amount": "5.00",
                "currency": "USD",
                "paid_at": paid_at,
            }
        )
        assert refused(answer, "paid_at"), answer.text
    account = {"name": "Ann Lee", "currency": "USD", "balance": "10.00", "country": "US"}
    for due in ("0001-01-01", "1899-12-31", "2101-01-01", "9999-12-31"):
        answer = api.client.put(
            "/api/v1/accounts/N1",
            json={**account, "due_date": due},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert refused(answer, "due_date"), answer.text
    assert api.written() == {"Promise": 0, "InstalmentPlan": 0, "Payment": 0, "AccountEvent": 0}
    assert (
        api.client.get(
            "/api/v1/accounts/N1", headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 404
    )
    # at the edges of the range they are taken
    assert api.event("US1", {"type": "dispute", "at": "1970-01-01T00:00:00Z"}).status_code == 201
    late = api.webhook(
        {
            "event_id": "ev-late",
            "account_id": "US1",
            "amount": "5.00",
            "currency": "USD",
            "paid_at": (T + timedelta(hours=23)).isoformat(),
        }
    )
    assert late.status_code == 201, late.text


def test_an_event_on_an_account_with_bad_data_stored_still_answers_its_success(api: Api) -> None:
    """The account is planned again after the commit; its stored promise due 0001-01-01
    (written by SQL, past the checks) fails that planning: recorded ``bad_data``, and the
    answer stays the success it was when the transaction committed, not a 500."""
    with api.db.begin() as conn:
        conn.execute(
            table_of(Promise)
            .insert()
            .values(
                account_id="US1",
                amount=5,
                due=date(1, 1, 1),
                made_at=T - timedelta(days=1),
                state="pending",
            )
        )
    answer = api.event("US1", {"type": "payment", "amount": "5.00", "payment_id": "P-1"})
    assert answer.status_code == 201, answer.text
    decisions = table_of(Decision)
    with api.db.connect() as conn:
        rows = conn.execute(
            sa.select(decisions.c.account_id, decisions.c.decision, decisions.c.reason)
        ).all()
    assert [tuple(r) for r in rows] == [("US1", "failed", "bad_data")]
    assert api.count(Payment) == 1


# --- item 6: promise and plan bounds -------------------------------------------------------


def test_a_promise_is_due_from_the_day_it_is_made_to_max_days_ahead(api: Api) -> None:
    """US: 30 days. The day counts in the debtor's zone: 17:00 UTC is already the next day
    in Shanghai."""
    api.clock.set(T + timedelta(hours=2))
    for due in ("0001-01-01", days(-1)):
        assert refused(
            api.event("US1", {"type": "promise", "amount": "100.00", "due": due}),
            "before the day it is made",
        )
    for due in (days(31), "2062-03-10", "9999-12-31"):
        assert refused(
            api.event("US1", {"type": "promise", "amount": "100.00", "due": due}),
            "more than 30 days",
            "max_days_ahead",
        )
    assert api.count(Promise) == 0
    assert (
        api.event("US1", {"type": "promise", "amount": "100.00", "due": days(0)}).status_code == 201
    )
    assert (
        api.event("US1", {"type": "promise", "amount": "100.00", "due": days(30)}).status_code
        == 201
    )
    assert refused(
        api.event("CN1", {"type": "promise", "amount": "600.00", "due": days(0)}),
        "before the day it is made",
    )  # already 03-11 in Shanghai
    assert (
        api.event("CN1", {"type": "promise", "amount": "600.00", "due": days(31)}).status_code
        == 201
    )  # 30 days from 03-11: the base bound, kept by CN


def test_a_promise_reaches_the_minimum_amount_and_share_or_pays_everything(api: Api) -> None:
    """US: at least 25.00 and 2% of the balance; CN (overlay): 100.00 and 10%; a promise
    of the whole balance always."""
    due = days(7)
    assert refused(
        api.event("US1", {"type": "promise", "amount": "24.99", "due": due}),
        "less than 25.00",
        "min_amount",
    )
    assert refused(
        api.event("CN1", {"type": "promise", "amount": "499.99", "due": due}),
        "less than 500.00",
        "min_share_of_balance",
    )  # 10% of 5000.00
    assert refused(
        api.event("US2", {"type": "promise", "amount": "19.99", "due": due}),
        "does not pay the whole balance",
    )
    assert api.count(Promise) == 0
    for account, amount in (("US1", "25.00"), ("CN1", "500.00"), ("US2", "20.00")):
        answer = api.event(account, {"type": "promise", "amount": amount, "due": due})
        assert answer.status_code == 201, (account, answer.text)
    assert api.count(Promise) == 3


def test_plan_bounds(api: Api) -> None:
    """At most 60 instalments, at most 35 days from the agreement to the first and between
    two, each at least 25.00 (CN: 100.00) but a last one paying the rest."""

    def plan(*items: tuple[int, str]) -> list[dict[str, str]]:
        return [{"due": days(d), "amount": a} for d, a in items]

    monthly = [(30 * (k + 1), "16.00") for k in range(61)]
    cases: list[tuple[list[dict[str, str]], *tuple[str, ...]]] = [  # instalments, words
        (plan(*[(d, "30.00") for d, _ in monthly]), "61 instalments", "max_instalments"),
        (plan((36, "500.00")), "36 days after the day the plan is agreed", "max_days_between"),
        (
            plan((10, "500.00"), (46, "500.00")),
            "36 days after the instalment before it",
            "max_days_between",
        ),
        (plan((-1, "500.00")), "before the day the plan is agreed"),
        (plan((10, "24.99"), (40, "975.01")), "less than 25.00", "min_instalment"),
        (plan((10, "500.00"), (40, "5.00")), "less than 25.00", "min_instalment"),
        ([{"due": "9999-12-31", "amount": "1000.00"}], "max_days_between"),
    ]
    for instalments, *words in cases:
        assert refused(api.event("US1", {"type": "plan", "instalments": instalments}), *words), (
            words
        )
    assert refused(
        api.event("CN1", {"type": "plan", "instalments": plan((10, "99.00"), (40, "4901.00"))}),
        "less than 100.00",
    )
    assert api.count(InstalmentPlan) == 0
    for instalments in (
        plan((35, "500.00"), (70, "495.00"), (100, "5.00")),  # the rest
        plan(*[(d, "25.00") for d, _ in monthly[:60]]),
    ):
        answer = api.event("US1", {"type": "plan", "instalments": instalments})
        assert answer.status_code == 201, answer.text
    assert api.count(InstalmentPlan) == 2


# --- item 7: idempotency keys --------------------------------------------------------------


def balance(api: Api, account: str) -> Decimal:
    accounts = table_of(AccountRow)
    with api.db.connect() as conn:
        return Decimal(
            conn.execute(
                sa.select(accounts.c.balance).where(accounts.c.account_id == account)
            ).scalar_one()
        )


def test_payments_promises_and_plans_need_a_key(api: Api) -> None:
    assert refused(
        api.event("US1", {"type": "payment", "amount": "5.00"}, key=None),
        "Idempotency-Key",
        "payment_id",
    )
    assert refused(
        api.event("US1", {"type": "promise", "amount": "100.00", "due": days(5)}, key=None),
        "a promise needs an Idempotency-Key",
    )
    assert refused(
        api.event(
            "US1",
            {"type": "plan", "instalments": [{"due": days(5), "amount": "1000.00"}]},
            key=None,
        ),
        "a plan needs an Idempotency-Key",
    )
    for blank in ("", "a\x01b", "x" * 201):
        assert (
            api.event("US1", {"type": "payment", "amount": "5.00"}, key=blank).status_code == 422
        ), blank
    assert api.written() == {"Promise": 0, "InstalmentPlan": 0, "Payment": 0, "AccountEvent": 0}
    assert api.event("US1", {"type": "dispute"}, key=None).status_code == 201  # as before
    operation = api.client.get("/openapi.json").json()["paths"][
        "/api/v1/accounts/{account_id}/events"
    ]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "idempotency-key")
    assert header["in"] == "header" and "first answer" in header["description"]


@pytest.mark.parametrize(
    "body, key",
    [
        ({"type": "payment", "amount": "40.00"}, "pay-1"),
        ({"type": "payment", "amount": "40.00", "payment_id": "P-1"}, None),
        ({"type": "payment", "amount": "40.00", "payment_id": "P-1"}, "pay-1"),
        ({"type": "promise", "amount": "100.00", "due": days(5)}, "promise-1"),
        (
            {
                "type": "plan",
                "instalments": [
                    {"due": days(5), "amount": "500.00"},
                    {"due": days(35), "amount": "500.00"},
                ],
            },
            "plan-1",
        ),
        ({"type": "dispute"}, "dispute-1"),
    ],
)
def test_a_repeat_gets_the_first_answer_and_writes_nothing(
    api: Api, body: dict[str, Any], key: str | None
) -> None:
    first = api.event("US1", body, key=key)
    assert first.status_code == 201, first.text
    written = api.written()
    api.clock.set(T + timedelta(seconds=30))  # a retry, later: the answer is the first one
    same = {**body, "amount": body["amount"] + "0"} if "amount" in body else body  # 40.000
    for again in (body, same):
        repeat = api.event("US1", again, key=key)
        assert (repeat.status_code, repeat.content) == (first.status_code, first.content)
    assert api.written() == written
    assert sum(written.values()) == 1
    assert balance(api, "US1") == (
        Decimal("960.00") if body["type"] == "payment" else Decimal("1000.00")
    )


def test_the_same_key_with_another_request_is_refused(api: Api) -> None:
    promise = {"type": "promise", "amount": "100.00", "due": days(5)}
    assert api.event("US1", promise, key="k").status_code == 201
    for account, other in (
        ("US1", {**promise, "amount": "101.00"}),
        ("US2", promise),
        ("US1", {"type": "dispute"}),
        ("US1", {"type": "payment", "amount": "100.00"}),
    ):
        assert refused(api.event(account, other, key="k"), "another request"), (account, other)
    assert (
        api.event(
            "US1", {"type": "payment", "amount": "5.00", "payment_id": "P-9"}, key=None
        ).status_code
        == 201
    )
    assert refused(
        api.event("US1", {"type": "payment", "amount": "6.00", "payment_id": "P-9"}, key=None),
        "another request",
    )
    assert api.written() == {"Promise": 1, "InstalmentPlan": 0, "Payment": 1, "AccountEvent": 0}
    assert balance(api, "US1") == Decimal("995.00")


def test_two_payments_in_the_same_second_are_both_recorded(api: Api) -> None:
    """Their ids were the account and the second: the second payment was lost."""
    answers = [api.event("US1", {"type": "payment", "amount": "30.00"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json()["payment_id"] != answers[1].json()["payment_id"]
    assert api.count(Payment) == 2 and balance(api, "US1") == Decimal("940.00")


def test_racing_repeats_record_once_and_all_get_the_first_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight copies of one payment sent at once (a client retrying on its own timeout):
    one is recorded; the key's unique constraint hands the others the stored answer. On
    PostgreSQL all eight are held inside their transactions, past the look-up of the key,
    until every one is there (SQLite takes one writer at a time)."""
    postgres = api.db.dialect.name == "postgresql"
    together = threading.Barrier(8 if postgres else 1, timeout=10)
    real = facts.record_payment

    def record_payment(*args: Any, **kwargs: Any) -> bool:
        together.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(facts, "record_payment", record_payment)
    body = {"type": "payment", "amount": "25.00"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: api.event("US1", body, key="race"), range(8)))
    assert {(a.status_code, a.content) for a in answers} == {
        (answers[0].status_code, answers[0].content)
    }
    assert answers[0].status_code == 201, answers[0].text
    assert api.count(Payment) == 1 and balance(api, "US1") == Decimal("975.00")


# --- property: random bad events never stop anyone ---------------------------------------

_NEAR = st.dates(min_value=T.date() - timedelta(days=60), max_value=T.date() + timedelta(days=90))
_DATES = st.one_of(_NEAR, st.dates(), st.sampled_from([date.min, date.max]))
_AMOUNTS = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("2000"), places=2).map(str),
    st.sampled_from(["0", "-5.00", "0.001", "99999999999999.99", "1e400", "NaN", "0.01"]),
)
_INSTANTS = st.one_of(
    st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]
        )
    ).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"]),
)
_EVENTS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("promise"), "amount": _AMOUNTS, "due": _DATES}, optional={"at": _INSTANTS}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("plan"),
            "instalments": st.lists(
                st.fixed_dictionaries({"due": _DATES, "amount": _AMOUNTS}), max_size=4
            ),
        },
        optional={"at": _INSTANTS},
    ),
    st.fixed_dictionaries(
        {"type": st.just("payment"), "amount": _AMOUNTS},
        optional={"at": _INSTANTS, "payment_id": st.text(max_size=4)},
    ),
)
_POSTS = st.lists(
    st.tuples(
        st.sampled_from(["US1", "US2", "CN1", "NOPE"]),
        _EVENTS,
        st.one_of(st.none(), st.sampled_from(["k1", "k2"]), st.uuids().map(str)),
    ),
    min_size=1,
    max_size=4,
)
_WEBHOOKS = st.lists(
    st.fixed_dictionaries(
        {
            "event_id": st.uuids().map(str),
            "account_id": st.sampled_from(["US1", "CN1"]),
            "amount": _AMOUNTS,
            "currency": st.sampled_from(["USD", "CNY"]),
            "paid_at": _INSTANTS,
        }
    ),
    max_size=2,
)


def _json(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def test_random_bad_events_through_the_api_never_stop_planning(api: Api) -> None:
    """Promises, plans and payments with extreme dates, instants and amounts, through the
    REST API and the payment webhook: every answer is an answer (never a 5xx), and the
    next tick plans every account (none recorded ``bad_data``: nothing bad got in)."""
    accounts = table_of(AccountRow)
    decisions = table_of(Decision)
    day = [0]

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(posts=_POSTS, webhooks=_WEBHOOKS)
    def check(
        posts: list[tuple[str, dict[str, Any], str | None]], webhooks: list[dict[str, Any]]
    ) -> None:
        day[0] += 1
        now = T + timedelta(days=day[0])
        api.clock.set(now)
        answers = [api.event(account, _json(body), key=key) for account, body, key in posts]
        answers += [api.webhook(body) for body in webhooks]
        for answer in answers:
            assert answer.status_code in (200, 201, 404, 422), answer.text
        api.runner.tick(now)
        with api.db.connect() as conn:
            plans = table_of(AccountPlan)
            due = conn.execute(
                sa.select(accounts.c.account_id, plans.c.plan_due_at).join_from(
                    accounts,
                    plans,
                    plans.c.account_id == accounts.c.account_id,
                    isouter=True,
                )
            ).all()
            bad = conn.execute(
                sa.select(decisions.c.account_id).where(decisions.c.reason == "bad_data")
            ).all()
        assert all(at is not None and at > now for _, at in due), due
        assert bad == []

    check()
