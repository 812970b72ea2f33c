"""`outreach report` against a small portfolio whose every KPI was counted by hand.

Period 2026-03-01..03-10 with the shipped stages (M0 -5-0, M1 1-30, M2 31-60, M3 61-90, M3+ 91-):

- A (USD, due 02-05): DPD 24..33, so M1 then M2 from 03-08 (a roll). Paid 40 on 03-03
  (in M1), balance now 100: 140 at M1 entry, 100 at M2 entry. Promise 03-03 16:00, kept.
  Sends: a1 sms M1 delivered, a2 email M1 clicked, a3 sms M2 undelivered; a voice call
  deferred (quiet hours) in M1, an sms failed in M2; SMS opt-out on 03-09 (M2).
- B (USD 200, due 01-20): M2 all period. b1 sms sent (no receipt), b2 voice answered
  03-03 15:00, conversation by voice 03-03 16:00, promise 03-03 16:05 broken; an sms
  suppressed; a debtor-wide email opt-out on 03-05 (no account: no stage).
- C (CNY, due 01-20, closed): paid 500 on 03-05 (M2); an sms blocked; a complaint 03-06.
- D (USD, due 2025-12-01): closed on 02-20, before the period: counted nowhere.
- E (USD 300, due 02-25): M1. e1 email sent (no receipt), e2 voice ambiguous,
  conversation by voice 03-06, promise 03-07 pending.
- a0: a send on 02-28, before the period: not counted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support import ROOT  # noqa: I001 - tests/support.py

from orchestrator.config.loading import load_config
from orchestrator.reporting.html import render_html
from orchestrator.reporting.kpis import build_report
from orchestrator.store import db
from orchestrator.store.tables import (
    AccountEvent,
    AccountRow,
    Debtor,
    Decision,
    OptOut,
    Payment,
    Promise,
    Send,
    table_of,
)

SINCE, UNTIL = date(2026, 3, 1), date(2026, 3, 10)


def at(day: int, hour: int = 15, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def seed(url: str) -> None:
    db.upgrade(url)
    engine = db.make_engine(url)
    accounts = [
        ("A", "2026-02-05", "100.00", "USD", "open"),
        ("B", "2026-01-20", "200.00", "USD", "open"),
        ("C", "2026-01-20", "0.00", "CNY", "closed"),
        ("D", "2025-12-01", "0.00", "USD", "closed"),
        ("E", "2026-02-25", "300.00", "USD", "open"),
    ]
    decisions = [  # (account, time, stage, channel, decision, reason, message id)
        ("A", at(28, month=2), "M1", "sms", "sent", None, "a0"),
        ("A", at(2), "M1", "sms", "sent", None, "a1"),
        ("A", at(3), "M1", "email", "sent", None, "a2"),
        ("A", at(4), "M1", "voice", "deferred", "quiet_hours", None),
        ("A", at(8), "M2", "sms", "sent", None, "a3"),
        ("A", at(9), "M2", "sms", "failed", "provider_error", None),
        ("B", at(2), "M2", "sms", "sent", None, "b1"),
        ("B", at(3), "M2", "voice", "sent", None, "b2"),
        ("B", at(4), "M2", "sms", "suppressed", "promise_pending", None),
        ("C", at(2), "M2", "sms", "blocked", "no_consent", None),
        ("E", at(2), "M1", "email", "sent", None, "e1"),
        ("E", at(5), "M1", "voice", "ambiguous", None, "e2"),
    ]
    statuses = {
        "a0": "delivered",
        "a1": "delivered",
        "a2": "clicked",
        "a3": "undelivered",
        "b1": "sent",
        "b2": "answered",
        "e1": "sent",
        "e2": "ambiguous",
    }
    with engine.begin() as conn:
        conn.execute(table_of(Debtor).insert(), [{"id": a[0]} for a in accounts])
        conn.execute(
            table_of(AccountRow).insert(),
            [
                {
                    "account_id": aid,
                    "debtor_id": aid,
                    "due_date": date.fromisoformat(due),
                    "balance": Decimal(balance),
                    "currency": cur,
                    "status": status,
                    "timezone": "UTC",
                    "updated_at": at(20, month=2),
                }
                for aid, due, balance, cur, status in accounts
            ],
        )
        conn.execute(
            table_of(Payment).insert(),
            [
                {
                    "payment_id": "p1",
                    "account_id": "A",
                    "amount": Decimal("40.00"),
                    "paid_at": at(3, 12),
                },
                {
                    "payment_id": "p2",
                    "account_id": "C",
                    "amount": Decimal("500.00"),
                    "paid_at": at(5, 10),
                },
                {
                    "payment_id": "p3",
                    "account_id": "D",
                    "amount": Decimal("50.00"),
                    "paid_at": at(20, month=2),
                },
            ],
        )
        conn.execute(
            table_of(Decision).insert(),
            [
                {
                    "account_id": aid,
                    "debtor_id": aid,
                    "time": when,
                    "stage": stage,
                    "step": f"{stage}-{channel}",
                    "channel": channel,
                    "kind": "collection",
                    "decision": decision,
                    "reason": reason,
                    "message_id": mid,
                }
                for aid, when, stage, channel, decision, reason, mid in decisions
            ],
        )
        conn.execute(
            table_of(Send).insert(),
            [
                {
                    "message_id": mid,
                    "account_id": aid,
                    "debtor_id": aid,
                    "channel": channel,
                    "status": statuses[mid],
                    "sent_at": when,
                }
                for aid, when, _, channel, _, _, mid in decisions
                if mid
            ],
        )
        conn.execute(
            table_of(AccountEvent).insert(),
            [
                {"account_id": "B", "type": "conversation", "channel": "voice", "time": at(3, 16)},
                {"account_id": "E", "type": "conversation", "channel": "voice", "time": at(6)},
                {"account_id": "C", "type": "complaint", "channel": None, "time": at(6)},
                {"account_id": "A", "type": "click", "channel": "email", "time": at(3, 15, 5)},
            ],
        )
        conn.execute(
            table_of(Promise).insert(),
            [
                {
                    "account_id": "A",
                    "amount": Decimal("40"),
                    "due": date(2026, 3, 5),
                    "made_at": at(3, 16),
                    "state": "kept",
                },
                {
                    "account_id": "B",
                    "amount": Decimal("100"),
                    "due": date(2026, 3, 6),
                    "made_at": at(3, 16, 5),
                    "state": "broken",
                },
                {
                    "account_id": "E",
                    "amount": Decimal("100"),
                    "due": date(2026, 3, 20),
                    "made_at": at(7),
                    "state": "pending",
                },
            ],
        )
        conn.execute(
            table_of(OptOut).insert(),
            [
                {"debtor_id": "A", "account_id": "A", "channel": "sms", "created_at": at(9)},
                {"debtor_id": "B", "account_id": None, "channel": "email", "created_at": at(5)},
            ],
        )
    engine.dispose()


@pytest.fixture
def report(db_url: str) -> dict[str, Any]:
    seed(db_url)
    config = load_config(ROOT / "config", ROOT / "templates")
    channels = {
        name: cfg.model_copy(update={"cost": Decimal("0.05")})
        for name, cfg in config.channels.items()
    }
    config = config.model_copy(update={"channels": channels})
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        found = build_report(conn, config, SINCE, UNTIL)
    engine.dispose()
    return found


def rate(found: dict[str, Any]) -> tuple[Any, Any]:
    return found["numerator"], found["denominator"]


def test_stage_kpis_match_the_hand_count(report: dict[str, Any]) -> None:
    m0, m1, m2, m3, m3p = report["stages"]
    assert [s["stage"] for s in report["stages"]] == ["M0", "M1", "M2", "M3", "M3+"]
    assert m0["accounts"] == 0  # every account was past due before the period began

    assert m1["accounts"] == 2  # A (until 03-07) and E
    assert m1["sends"] == 3  # a1, a2, e1 (a0 is before the period)
    assert rate(m1["delivery_rate"]) == (2, 3)  # a1 delivered, a2 clicked
    assert rate(m1["click_rate"]) == (1, 2)
    assert rate(m1["contact_rate"]) == (2, 2)  # A by a1, E by a conversation
    assert rate(m1["promise_rate"]) == (2, 2)
    assert rate(m1["kept_rate"]) == (1, 1)  # E's promise is still pending
    assert rate(m1["roll_rate"]) == (1, 2)  # A entered M2 on 03-08
    assert m1["recovered"] == {"USD": "40.00"}
    assert m1["balance_at_entry"] == {"USD": "440.00"}  # A 100 + 40 paid since, E 300
    assert rate(m1["recovery_rate"]["USD"]) == ("40.00", "440.00")
    assert (m1["opt_outs"], m1["complaints"], m1["failed"], m1["ambiguous"]) == (0, 0, 0, 1)
    assert m1["decisions"] == {"ambiguous": 1, "deferred": 1, "deferred:quiet_hours": 1, "sent": 3}

    assert m2["accounts"] == 3  # A from 03-08, B, C (closed on 03-05, after the start)
    assert m2["sends"] == 3  # a3, b1, b2
    assert rate(m2["delivery_rate"]) == (1, 3)  # b2 answered
    assert rate(m2["contact_rate"]) == (1, 3)  # B
    assert rate(m2["promise_rate"]) == (1, 3)
    assert rate(m2["kept_rate"]) == (0, 1)
    assert rate(m2["roll_rate"]) == (0, 3)
    assert m3p["roll_rate"]["value"] is None  # the last stage: nowhere to roll
    assert m2["recovered"] == {"CNY": "500.00"}
    assert m2["balance_at_entry"] == {"CNY": "500.00", "USD": "300.00"}
    assert rate(m2["recovery_rate"]["CNY"]) == ("500.00", "500.00")
    assert rate(m2["recovery_rate"]["USD"]) == ("0", "300.00")
    assert (m2["opt_outs"], m2["complaints"], m2["failed"], m2["ambiguous"]) == (1, 1, 1, 0)
    assert m2["decisions"]["blocked:no_consent"] == 1
    assert m2["decisions"]["suppressed:promise_pending"] == 1

    for empty in (m3, m3p):  # D closed before the period
        assert empty["accounts"] == 0 and empty["sends"] == 0
        assert empty["contact_rate"] == {"numerator": 0, "denominator": 0, "value": None}


def test_totals_count_each_account_once(report: dict[str, Any]) -> None:
    total = report["total"]
    assert total["accounts"] == 4
    assert total["sends"] == 6 and total["delivered"] == 3 and total["clicked"] == 1
    assert rate(total["contact_rate"]) == (3, 4)  # A, B, E
    assert rate(total["promise_rate"]) == (3, 4)
    assert rate(total["kept_rate"]) == (1, 2)
    assert rate(total["roll_rate"]) == (1, 4)
    # Each account's balance at its first stage's entry: A 140 (M1), B 200, E 300; C 500.
    assert total["balance_at_entry"] == {"CNY": "500.00", "USD": "640.00"}
    assert total["recovered"] == {"CNY": "500.00", "USD": "40.00"}
    assert total["opt_outs"] == 2 and total["complaints"] == 1
    assert total["contact_rate"]["value"] == pytest.approx(0.75)


def test_channel_kpis_and_last_touch_promises(report: dict[str, Any]) -> None:
    channels = {c["channel"]: c for c in report["channels"]}
    sms, email, voice, letter = (channels[c] for c in ("sms", "email", "voice", "letter"))
    assert sms["accounts"] == 3 and sms["sends"] == 3  # tried on A, B, C
    assert rate(sms["delivery_rate"]) == (1, 3)
    assert rate(sms["contact_rate"]) == (1, 3)
    assert sms["opt_outs"] == 1 and sms["failed"] == 1 and sms["promises"] == 0
    assert sms["cost"] == "0.15"  # 3 sends x 0.05

    assert email["accounts"] == 2 and email["sends"] == 2
    assert rate(email["click_rate"]) == (1, 1)
    assert email["promises"] == 1 and rate(email["kept_rate"]) == (1, 1)  # A, after a2
    assert email["opt_outs"] == 1  # B's debtor-wide opt-out

    assert voice["accounts"] == 3  # A deferred, B, E ambiguous
    assert rate(voice["delivery_rate"]) == (1, 1)
    assert rate(voice["contact_rate"]) == (2, 3)  # B answered; E by conversation
    assert voice["promises"] == 2 and rate(voice["kept_rate"]) == (0, 1)  # B broken, E pending
    assert voice["ambiguous"] == 1

    assert letter["accounts"] == 0 and letter["sends"] == 0 and letter["cost"] == "0.00"


def test_daily_series_and_html(report: dict[str, Any]) -> None:
    days = {row["date"]: row for row in report["daily"]}
    assert "2026-02-28" not in days
    assert days["2026-03-02"]["sent"] == 3 and days["2026-03-02"]["blocked"] == 1
    assert days["2026-03-02"]["sent:sms"] == 2 and days["2026-03-02"]["sent:email"] == 1
    html = render_html(report)
    assert html.count("<svg") == 6
    assert "http://" not in html.replace("http://www.w3.org", "").replace(
        "http://pygal.org", ""
    ).replace("http://github.com/Kozea/pygal", "")
    assert 'title="2 / 3"' in html  # M1's delivery rate shows its counts on hover


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        OUTREACH_DATABASE_URL=db_url,
        OUTREACH_CONFIG=str(ROOT / "config"),
        OUTREACH_TEMPLATES=str(ROOT / "templates"),
        COLUMNS="100",
    )
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "report", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_json_tables_and_html(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    done = _cli(db_url, "--since", "2026-03-01", "--until", "2026-03-10", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    m1 = next(s for s in data["stages"] if s["stage"] == "M1")
    assert m1["accounts"] == 2 and data["total"]["sends"] == 6

    # Without dates: the span of recorded decisions (02-28 to 03-09).
    html = tmp_path / "out" / "report.html"
    done = _cli(db_url, "--html", str(html))
    assert done.returncode == 0, done.stderr
    assert "by stage, 2026-02-28 to 2026-03-09" in done.stdout
    assert "suppressed:promise_pending" in done.stdout
    assert html.read_text(encoding="utf-8").count("<svg") == 6

    done = _cli(db_url, "--since", "2026-03-10", "--until", "2026-03-01")
    assert done.returncode == 2 and "--until" in done.stderr
    done = _cli(db_url, "--since", "March")
    assert done.returncode == 2 and "--since" in done.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_its_charts_in_chromium(report: dict[str, Any], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make sysdeps` installs it")
        pytest.skip("chromium is not installed (`make sysdeps`)")
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1600",
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    for chart in ("recovered", "recovery", "channels", "sends", "decisions", "reasons"):
        start = dom.index(f'id="chart-{chart}"')
        svg = dom[start : dom.index("</svg>", start)]
        assert "<svg" in svg and ("<rect" in svg or "<path" in svg), chart
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 1600)
    # Text and tables are grey on white; only the charts' bars are in colour.
    saturation = image.convert("HSV").getchannel("S").histogram()
    coloured = sum(saturation[80:])
    assert coloured > 5000, coloured


def test_complaints_per_10000_contacts_by_stage_channel_and_creditor(
    report: dict[str, Any],
) -> None:
    # Contacts (sends that reached the person): a1 sms and a2 email in M1, b2 voice in M2.
    # The complaint: C on 03-06, DPD 45 (M2), by no channel said, no creditor.
    rates = report["complaint_rates"]
    by_stage = {
        g["stage"]: (g["complaints"], g["contacts"], g["per_10000"]) for g in rates["stage"]
    }
    assert by_stage == {
        "M0": (0, 0, None),
        "M1": (0, 2, 0.0),
        "M2": (1, 1, 10000.0),
        "M3": (0, 0, None),
        "M3+": (0, 0, None),
    }
    by_channel = {g["channel"]: (g["complaints"], g["contacts"]) for g in rates["channel"]}
    assert by_channel == {"email": (0, 1), "sms": (0, 1), "unknown": (1, 0), "voice": (0, 1)}
    assert rates["creditor"] == [
        {"creditor": "-", "complaints": 1, "contacts": 3, "per_10000": 3333.3}
    ]
    assert rates["total"] == {"complaints": 1, "contacts": 3, "per_10000": 3333.3}
    assert report["cases"] == {
        "as_of": "2026-03-11T00:00:00Z",
        "opened": {"complaint": 0, "dispute": 0},
        "open": 0,
        "overdue": 0,
    }
    html = render_html(report)
    assert "Complaints per 10,000 contacts" in html and "3333.3" in html


def test_cases_open_and_overdue_at_the_end_of_the_period(db_url: str) -> None:
    from orchestrator.store.tables import CaseFile

    seed(db_url)
    engine = db.make_engine(db_url)
    cases = [  # (kind, opened, ack due, resolve due, acknowledged, resolved)
        ("complaint", at(2), at(3), at(20), None, None),  # not acknowledged in time
        ("dispute", at(2), at(3), at(9), at(2, 16), None),  # acknowledged, resolution late
        ("complaint", at(4), at(5), at(25), at(4, 16), None),  # in time
        ("dispute", at(3), at(4), at(9), at(3, 16), at(8)),  # resolved in time
        ("complaint", at(12), at(13), at(30), None, None),  # after the period
        ("complaint", at(20, month=2), at(21, month=2), at(1), None, at(12)),  # late,
    ]  # resolved after the period's end: open and overdue at its end
    with engine.begin() as conn:
        conn.execute(
            table_of(CaseFile).insert(),
            [
                {
                    "account_id": "A",
                    "kind": kind,
                    "category": "other",
                    "opened_at": opened,
                    "opened_by": "test",
                    "due_ack_at": ack_due,
                    "due_resolve_at": resolve_due,
                    "acknowledged_at": acked,
                    "resolved_at": resolved,
                    "updated_at": opened,
                }
                for kind, opened, ack_due, resolve_due, acked, resolved in cases
            ],
        )
    config = load_config(ROOT / "config", ROOT / "templates")
    with engine.connect() as conn:
        found = build_report(conn, config, SINCE, UNTIL)["cases"]
        earlier = build_report(conn, config, SINCE, UNTIL, now=at(4, 12))["cases"]
    engine.dispose()
    assert found == {
        "as_of": "2026-03-11T00:00:00Z",
        "opened": {"complaint": 2, "dispute": 2},
        "open": 4,
        "overdue": 3,
    }
    # at 03-04 12:00: the first, second, fourth (resolved later) and February ones are
    # open, the third not yet; overdue: the first (unacknowledged) and February's
    assert earlier == {
        "as_of": "2026-03-04T12:00:00Z",
        "opened": {"complaint": 2, "dispute": 2},
        "open": 4,
        "overdue": 2,
    }


# --- what the report shows ----------------------------------------------------------------


def _terminal(report: dict[str, Any]) -> str:
    from rich.console import Console

    from orchestrator.reporting.tables import print_report

    console = Console(width=100, color_system=None)
    with console.capture() as captured:
        print_report(report, console)
    return captured.get()


def _inflated(value: Any) -> Any:
    """The report with every count and amount 100,000 times larger: a big portfolio."""
    if isinstance(value, dict):
        return {k: _inflated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_inflated(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | str):
        return value
    if isinstance(value, int):
        return value * 100_000
    try:
        return str(Decimal(value) * 100_000)
    except ArithmeticError:
        return value


def test_the_terminal_report_shows_each_rates_counts_within_100_columns(
    report: dict[str, Any],
) -> None:
    text = _terminal(report)
    assert "66.7% (2/3)" in text  # M1's delivery rate
    assert "25.0% (1/4)" in text  # the roll rate of all
    for printed in (text, _terminal(_inflated(report))):
        lines = printed.splitlines()
        assert max(len(line) for line in lines) <= 100, max(lines, key=len)
        assert "…" not in printed  # nothing cut to fit
    assert "66.7% (200000/300000)" in _terminal(_inflated(report))


def test_money_lines_up_per_currency(report: dict[str, Any]) -> None:
    """M2 has a CNY payment and a USD balance with nothing paid: a line per currency,
    each with its own amount, balance and rate (not ``CNY 500.00 | USD 0.0%``)."""
    from orchestrator.reporting.tables import group_recovery_text, money_rows, recovered_text

    m2 = next(s for s in report["stages"] if s["stage"] == "M2")
    assert [row[:4] for row in money_rows(m2)] == [
        ["CNY", "500.00", "500.00", "100.0%"],
        ["USD", "0.00", "300.00", "0.0%"],
    ]
    assert recovered_text(m2) == "CNY 500.00, USD 0.00"
    assert group_recovery_text(m2) == "CNY 100.0%, USD 0.0%"
    html = render_html(report)  # a line per currency in the cell, in the same order
    assert "<td>CNY 500.00<br>USD 0.00</td>" in html and "<td>CNY 100.0%<br>USD 0.0%</td>" in html
    text = _terminal(report)
    cny = next(line for line in text.splitlines() if line.startswith(" M2 ") and "CNY" in line)
    usd = text.splitlines()[text.splitlines().index(cny) + 1]
    assert usd.split() == ["USD", "0.00", "300.00", "0.0%"]
    assert cny.index("500.00") + len("500.00") == usd.index("0.00") + len("0.00")  # aligned


def test_costs_show_their_currency(report: dict[str, Any]) -> None:
    from orchestrator.reporting.tables import cost_text

    sms = next(c for c in report["channels"] if c["channel"] == "sms")
    assert (sms["cost_currency"], sms["unit_cost"]) == ("USD", "0.05")
    assert cost_text(sms) == f"USD {sms['cost']}"
    assert f"USD {sms['cost']}" in _terminal(report)


def test_recovered_per_day_and_the_period_before(report: dict[str, Any]) -> None:
    daily = report["recovered_daily"]
    assert [d["date"] for d in daily][:2] == ["2026-03-01", "2026-03-02"] and len(daily) == 10
    paid = {
        d["date"]: d["recovered"]
        for d in daily
        if any(v != "0.00" for v in d["recovered"].values())
    }
    assert paid == {
        "2026-03-03": {"CNY": "0.00", "USD": "40.00"},
        "2026-03-05": {"CNY": "500.00", "USD": "0.00"},
    }
    compared = report["comparison"]
    assert compared["previous"] == {"since": "2026-02-19", "until": "2026-02-28"}
    rows = {(r["metric"], r.get("currency")): r for r in compared["rows"]}
    assert (rows["sends", None]["current"], rows["sends", None]["previous"]) == (6, 1)  # a0
    assert rows["sends", None]["change"] == 5
    assert rows["recovered", "CNY"] | {} == {
        "metric": "recovered",
        "currency": "CNY",
        "current": "500.00",
        "previous": "0",
        "change": "500.00",
    }
    html = render_html(report)
    assert 'id="chart-recovered"' in html and "Amount recovered per day" in html
    assert 'id="comparison"' in html and "2026-02-19 to 2026-02-28" in html
    assert "against the period before, 2026-02-19 to 2026-02-28" in _terminal(report)
