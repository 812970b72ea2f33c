"""`outreach report --by`: the statistics, then each dimension against a hand count.

Every expected interval below is worked out in the test's docstring or comments from the
formula (z = 1.959964, the 97.5% normal quantile), never taken from the code under test.
The Wilson interval of k/n is (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n); at
k = 0 it is [0, z²/(n + z²)], at k = n [n/(n + z²), 1].
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support import ROOT  # noqa: I001 - tests/support.py

from orchestrator.config.loading import load_config
from orchestrator.reporting.breakdown import DimGroup, baseline_of
from orchestrator.reporting.html import render_html
from orchestrator.reporting.kpis import build_report
from orchestrator.reporting.stats import (
    bootstrap_mean_difference,
    newcombe,
    sample_size_per_arm,
    wilson,
)
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

Z2 = 1.959964**2  # 3.841459


# --- the statistics ------------------------------------------------------------------------


def test_wilson_interval_at_the_edges_and_inside() -> None:
    """0/10: [0, z²/(10 + z²)] = [0, 3.841459/13.841459] = [0, 0.277533].
    10/10: [10/13.841459, 1] = [0.722467, 1].
    8/10: p = 0.8, centre (0.8 + 0.192073) / 1.384146 = 0.716740, half-width
    1.959964·sqrt(0.016 + 0.009604) / 1.384146 = 0.226578: [0.490162, 0.943318]."""
    empty = wilson(0, 10)
    assert empty is not None and empty.to_json() == {
        "numerator": 0,
        "denominator": 10,
        "value": 0.0,
        "ci": [0.0, pytest.approx(3.841459 / 13.841459, abs=1e-6)],
    }
    full = wilson(10, 10)
    assert full is not None
    assert (full.low, full.high) == pytest.approx((10 / 13.841459, 1.0), abs=1e-6)
    inside = wilson(8, 10)
    assert inside is not None
    assert (inside.low, inside.high) == pytest.approx((0.490162, 0.943318), abs=1e-5)
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(11, 10)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((56, 70, 48, 80), (0.2, 0.0524, 0.3339)),  # (a)
        ((9, 10, 3, 10), (0.6, 0.1705, 0.8090)),  # (b)
        ((5, 56, 0, 29), (5 / 56, -0.0381, 0.1926)),  # (d): a 0/n
        ((0, 10, 0, 20), (0.0, -0.1611, 0.2775)),  # (e): both 0/n
        ((10, 10, 0, 20), (1.0, 0.6791, 1.0)),  # (g): n/n against 0/n
        ((10, 10, 0, 10), (1.0, 0.6075, 1.0)),  # (h)
    ],
)
def test_newcombe_matches_the_published_table(
    counts: tuple[int, int, int, int], expected: tuple[float, float, float]
) -> None:
    """Newcombe R.G., "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Statistics in Medicine 17 (1998) 873-890,
    Table II, method 10 (score, no continuity correction), to 4 places; the same figures
    come out of statsmodels 0.15.0's ``confint_proportions_2indep(..., method="newcomb",
    compare="diff")``. Example (a) is 56/70 - 48/80: difference 0.8 - 0.6 = 0.2000 (not
    0.1833), interval 0.0524 to 0.3339.

    By hand for (e), 0/10 - 0/20: the Wilson intervals are [0, 0.277533] and
    [0, 3.841459/23.841459] = [0, 0.161125], so low = 0 - sqrt(0 + 0.161125²) = -0.1611
    and high = 0 + sqrt(0.277533² + 0) = 0.2775."""
    found = newcombe(*counts)
    assert found is not None
    difference, low, high = expected
    assert found.difference == pytest.approx(difference, abs=1e-9)
    assert (found.low, found.high) == pytest.approx((low, high), abs=5e-5)
    assert found.significant is (low > 0 or high < 0)


def test_newcombe_needs_both_denominators() -> None:
    assert newcombe(1, 2, 0, 0) is None and newcombe(0, 0, 1, 2) is None
    found = newcombe(0, 10, 0, 20)
    assert found is not None and found.to_json() == {
        "difference": 0.0,
        "ci": [pytest.approx(-0.161125, abs=1e-6), pytest.approx(0.277533, abs=1e-6)],
        "significant": False,
        "method": "newcombe",
    }


def test_sample_size_per_arm_by_the_formula() -> None:
    """p1 = 0.5, p2 = 0.4, alpha 0.05 two-sided, power 0.8: z = 1.959964, z(0.8) =
    0.841621, p̄ = 0.45; 1.959964·sqrt(2·0.45·0.55) = 1.959964·0.703562 = 1.378956 and
    0.841621·sqrt(0.25 + 0.24) = 0.589135; (1.968091)² / 0.1² = 387.34, so 388 an arm.
    p1 = 0.2, p2 = 0.1: p̄ = 0.15, 1.959964·sqrt(0.255) = 0.989735, 0.841621·sqrt(0.16 +
    0.09) = 0.420811; (1.410546)² / 0.01 = 198.96, so 199."""
    assert sample_size_per_arm(0.5, 0.4) == 388
    assert sample_size_per_arm(0.4, 0.5) == 388  # the sign does not matter
    assert sample_size_per_arm(0.2, 0.1) == 199
    assert sample_size_per_arm(0.3, 0.3) is None
    assert sample_size_per_arm(0.0, 0.0) is None


def test_bootstrap_of_a_mean_difference_is_deterministic() -> None:
    """a: 50 accounts paid 10 and 50 paid nothing (mean 5, standard deviation 5); b: 100
    accounts paid nothing. The difference is 5, its standard error 5/sqrt(100) = 0.5, so
    a normal interval is 5 ± 1.96·0.5 = [4.02, 5.98]; the percentile bootstrap's is
    within a Monte Carlo error of it."""
    a, b = [10.0] * 50 + [0.0] * 50, [0.0] * 100
    found = bootstrap_mean_difference(a, b)
    assert found is not None and found.method == "bootstrap-percentile"
    assert found.difference == 5.0
    assert (found.low, found.high) == pytest.approx((4.02, 5.98), abs=0.15)
    assert found.significant
    assert bootstrap_mean_difference(a, b) == found  # a fixed seed: the same interval
    assert bootstrap_mean_difference(list(reversed(a)), b) is not None

    close = bootstrap_mean_difference([10.0, 0.0, 0.0, 0.0], [0.0, 10.0, 0.0, 0.0, 0.0])
    assert close is not None and close.low < 0 < close.high and not close.significant
    same = bootstrap_mean_difference([0.0, 0.0], [0.0, 0.0, 0.0])
    assert same is not None and (same.low, same.high) == (0.0, 0.0) and not same.significant
    assert bootstrap_mean_difference([1.0], [0.0, 2.0]) is None


# --- the fixture ---------------------------------------------------------------------------
#
# Period 2026-03-01..03-10. Every account is due 2026-02-10 (DPD 19..28: M1 all period, no
# roll), zone UTC, balance 100 USD, except N1 (CNY 500). Sends at 15:00 UTC carry the
# local time of a debtor in New York (10:00 -05:00), so the hour and the weekday are the
# debtor's, never UTC's.
#
# Experiment "tone":
# - champion C01..C20 (segment standard): one m1-sms each on Mon 03-02, local 10:00;
#   C01..C04 delivered, the rest "sent" (no receipt). C05 had a conversation (a contact
#   with no delivered send). Promises: C01 kept, C02 broken. C01 paid 50 on 03-04. C03
#   complained on 03-06. C01 also had a send on 02-28 in a segment "old": before the
#   period, counted nowhere.
# - friendly F01..F20 (F01..F10 standard, F11..F20 high): one m1-sms each on Mon 03-02,
#   local 10:00; f01 clicked, f02..f18 delivered, f19 and f20 undelivered. F10 has a
#   second decision on 03-07 (m1-sms deferred, quiet_hours) in segment high: F10 is in
#   both segments. Promises: F01 and F02 kept, F03 pending. Paid: F01 40, F02 60, F12 20.
# - holdout H1..H4 (standard): m1-sms skipped (holdout), no send. H1 paid 30 on 03-05.
# Outside any experiment (segment null):
# - N1 (CNY): promise-reminder sms at 02:00 UTC on Tue 03-03, which was 21:00 on Mon 03-02
#   in New York; delivered. A conversation on 03-03, a promise (pending) on 03-04.
# - N2: m1-email on Wed 03-04, local 09:00 (opened); an SMS opt-out on Fri 03-06 at 13:59;
#   then the opt_out_confirmation (an engine step, no template) at local 09:00, delivered.
# - F05's debtor opted out of email debtor-wide (no account): counted in no group.

SINCE, UNTIL = date(2026, 3, 1), date(2026, 3, 10)
CHAMPION = [f"C{i:02d}" for i in range(1, 21)]
FRIENDLY = [f"F{i:02d}" for i in range(1, 21)]
HOLDOUT = [f"H{i}" for i in range(1, 5)]


def at(day: int, hour: int = 15, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _decision(
    account: str,
    when: datetime,
    local: str,
    step: str,
    decision: str = "sent",
    *,
    channel: str = "sms",
    message: str | None = None,
    reason: str | None = None,
    segment: str | None = None,
    arm: tuple[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "account_id": account,
        "debtor_id": account,
        "time": when,
        "local_time": local,
        "stage": None if step == "opt_out_confirmation" else "M1",
        "step": step,
        "channel": channel,
        "kind": "collection",
        "decision": decision,
        "reason": reason,
        "message_id": message,
        "segment": segment,
        "experiment": arm[0] if arm else None,
        "variant": arm[1] if arm else None,
    }


def _decisions() -> list[dict[str, Any]]:
    monday = "2026-03-02T10:00:00-05:00"
    rows = [
        _decision(
            "C01",
            at(28, month=2),
            "2026-02-28T10:00:00-05:00",
            "m1-sms",
            message="c00",
            segment="old",
            arm=("tone", "champion"),
        ),
    ]
    for i, account in enumerate(CHAMPION, 1):
        rows.append(
            _decision(
                account,
                at(2),
                monday,
                "m1-sms",
                message=f"c{i:02d}",
                segment="standard",
                arm=("tone", "champion"),
            )
        )
    for i, account in enumerate(FRIENDLY, 1):
        rows.append(
            _decision(
                account,
                at(2),
                monday,
                "m1-sms",
                message=f"f{i:02d}",
                segment="standard" if i <= 10 else "high",
                arm=("tone", "friendly"),
            )
        )
    rows.append(
        _decision(
            "F10",
            at(7),
            "2026-03-07T10:00:00-05:00",
            "m1-sms",
            "deferred",
            reason="quiet_hours",
            segment="high",
            arm=("tone", "friendly"),
        )
    )
    for account in HOLDOUT:
        rows.append(
            _decision(
                account,
                at(2),
                monday,
                "m1-sms",
                "skipped",
                reason="holdout",
                segment="standard",
                arm=("tone", "holdout"),
            )
        )
    rows += [
        _decision("N1", at(3, 2), "2026-03-02T21:00:00-05:00", "promise-reminder", message="n1"),
        _decision(
            "N2", at(4, 14), "2026-03-04T09:00:00-05:00", "m1-email", channel="email", message="n2a"
        ),
        _decision(
            "N2", at(6, 14), "2026-03-06T09:00:00-05:00", "opt_out_confirmation", message="n2b"
        ),
    ]
    return rows


def _status(message: str) -> str:
    if message in ("c00", "n1", "n2b") or message in {f"c{i:02d}" for i in range(1, 5)}:
        return "delivered"
    if message.startswith("c"):
        return "sent"
    if message == "f01":
        return "clicked"
    if message.startswith("f"):
        return "delivered" if int(message[1:]) <= 18 else "undelivered"
    return "opened"  # n2a


def _payment(pid: str, account: str, amount: str, when: datetime) -> dict[str, Any]:
    return {"payment_id": pid, "account_id": account, "amount": Decimal(amount), "paid_at": when}


def _promise(account: str, state: str, when: datetime) -> dict[str, Any]:
    return {
        "account_id": account,
        "amount": Decimal("50"),
        "due": date(2026, 3, 20),
        "made_at": when,
        "state": state,
    }


def seed(url: str) -> None:
    db.upgrade(url)
    engine = db.make_engine(url)
    accounts = [*CHAMPION, *FRIENDLY, *HOLDOUT, "N1", "N2"]
    decisions = _decisions()
    with engine.begin() as conn:
        conn.execute(table_of(Debtor).insert(), [{"id": a} for a in accounts])
        conn.execute(
            table_of(AccountRow).insert(),
            [
                {
                    "account_id": a,
                    "debtor_id": a,
                    "due_date": date(2026, 2, 10),
                    "balance": Decimal("500.00" if a == "N1" else "100.00"),
                    "currency": "CNY" if a == "N1" else "USD",
                    "status": "open",
                    "timezone": "UTC",
                    "updated_at": at(20, month=2),
                }
                for a in accounts
            ],
        )
        conn.execute(table_of(Decision).insert(), decisions)
        conn.execute(
            table_of(Send).insert(),
            [
                {
                    "message_id": d["message_id"],
                    "account_id": d["account_id"],
                    "debtor_id": d["account_id"],
                    "channel": d["channel"],
                    "status": _status(d["message_id"]),
                    "sent_at": d["time"],
                }
                for d in decisions
                if d["message_id"]
            ],
        )
        conn.execute(
            table_of(Payment).insert(),
            [
                _payment("p1", "C01", "50.00", at(4, 10)),
                _payment("p2", "F01", "40.00", at(4, 10)),
                _payment("p3", "F02", "60.00", at(5, 10)),
                _payment("p4", "F12", "20.00", at(6, 10)),
                _payment("p5", "H1", "30.00", at(5, 10)),
            ],
        )
        conn.execute(
            table_of(Promise).insert(),
            [
                _promise("C01", "kept", at(3, 12)),
                _promise("C02", "broken", at(3, 12)),
                _promise("F01", "kept", at(3, 12)),
                _promise("F02", "kept", at(3, 12)),
                _promise("F03", "pending", at(3, 12)),
                _promise("N1", "pending", at(4, 10)),
            ],
        )
        conn.execute(
            table_of(AccountEvent).insert(),
            [
                {"account_id": "C05", "type": "conversation", "channel": "voice", "time": at(5)},
                {"account_id": "N1", "type": "conversation", "channel": "voice", "time": at(3, 9)},
                {"account_id": "C03", "type": "complaint", "channel": None, "time": at(6)},
            ],
        )
        conn.execute(
            table_of(OptOut).insert(),
            [
                {
                    "debtor_id": "N2",
                    "account_id": "N2",
                    "channel": "sms",
                    "created_at": at(6, 13, 59),
                },
                {"debtor_id": "F05", "account_id": None, "channel": "email", "created_at": at(5)},
            ],
        )
    engine.dispose()


def _report(url: str, by: str) -> dict[str, Any]:
    config = load_config(ROOT / "config", ROOT / "templates")
    engine = db.make_engine(url)
    with engine.connect() as conn:
        found = build_report(conn, config, SINCE, UNTIL, by)
    engine.dispose()
    return found


@pytest.fixture
def seeded(db_url: str) -> str:
    seed(db_url)
    return db_url


def rate(found: dict[str, Any]) -> tuple[Any, Any]:
    return found["numerator"], found["denominator"]


def groups_by(report: dict[str, Any], *fields: str) -> dict[Any, dict[str, Any]]:
    assert report["by"] in (*fields, "variant")
    return {
        tuple(g[f] for f in fields) if len(fields) > 1 else g[fields[0]]: g
        for g in report["groups"]
    }


# --- the dimensions ------------------------------------------------------------------------


def test_by_variant_counts_each_arm(seeded: str) -> None:
    report = _report(seeded, "variant")
    assert report["by"] == "variant"
    assert [(g["experiment"], g["variant"], g["baseline"]) for g in report["groups"]] == [
        ("tone", "champion", True),
        ("tone", "friendly", False),
        ("tone", "holdout", False),
        (None, None, False),
    ]
    arms = groups_by(report, "experiment", "variant")
    champion = arms[("tone", "champion")]
    assert champion["accounts"] == 20 and champion["sends"] == 20
    assert rate(champion["delivery_rate"]) == (4, 20)  # c01..c04
    assert rate(champion["contact_rate"]) == (5, 20)  # and C05 by a conversation
    assert rate(champion["promise_rate"]) == (2, 20) and rate(champion["kept_rate"]) == (1, 2)
    assert rate(champion["payment_rate"]) == (1, 20) and champion["recovered"] == {"USD": "50.00"}
    assert rate(champion["recovered_per_account"]["USD"]) == ("50.00", 20)
    assert champion["recovered_per_account"]["USD"]["value"] == 2.5
    assert champion["balance_at_entry"] == {"USD": "2050.00"}  # 20 x 100, C01's 50 paid since
    assert rate(champion["roll_rate"]) == (0, 20) and champion["complaints"] == 1
    assert "versus" not in champion

    friendly = arms[("tone", "friendly")]
    assert friendly["accounts"] == 20 and friendly["sends"] == 20 and friendly["clicked"] == 1
    assert rate(friendly["delivery_rate"]) == (18, 20) and rate(friendly["contact_rate"]) == (
        18,
        20,
    )
    assert rate(friendly["promise_rate"]) == (3, 20) and rate(friendly["kept_rate"]) == (2, 2)
    assert rate(friendly["payment_rate"]) == (3, 20) and friendly["recovered"] == {"USD": "120.00"}
    assert friendly["decisions"] == {"deferred": 1, "deferred:quiet_hours": 1, "sent": 20}

    holdout = arms[("tone", "holdout")]
    assert holdout["accounts"] == 4 and holdout["sends"] == 0
    assert holdout["decisions"] == {"skipped": 4, "skipped:holdout": 4}
    assert rate(holdout["payment_rate"]) == (1, 4)  # H1 paid with no send at all
    assert holdout["delivery_rate"] == {"numerator": 0, "denominator": 0, "value": None, "ci": None}

    outside = arms[(None, None)]
    assert outside["accounts"] == 2 and outside["sends"] == 3 and outside["opt_outs"] == 1
    assert rate(outside["promise_rate"]) == (1, 2) and "versus" not in outside
    assert set(outside["recovered_per_account"]) == {"CNY", "USD"}  # N1 and N2


def test_by_variant_intervals_match_the_formulas(seeded: str) -> None:
    """Wilson intervals (formula in the module docstring) of the arms' rates:
    4/20: [0.080658, 0.416017]; 5/20: [0.111862, 0.468701]; 18/20: [0.698966, 0.972134];
    2/20: [0.027866, 0.301034]; 3/20: [0.052369, 0.360419]; 1/20: [0.008881, 0.236131];
    1/2: [0.094531, 0.905469]; 2/2: [2/(2 + z²), 1] = [0.342380, 1]; 0/4: [0, 0.489891];
    1/4: [0.045587, 0.699358].

    Newcombe, friendly - champion (d - sqrt((p1 - l1)² + (u2 - p2)²), d + sqrt((u1 -
    p1)² + (p2 - l2)²)):
    - delivery 0.9 - 0.2 = 0.7: 0.7 - sqrt(0.201034² + 0.216017²) = 0.404910 and
      0.7 + sqrt(0.072134² + 0.119342²) = 0.839448: significant.
    - contact 0.9 - 0.25 = 0.65: [0.352940, 0.805838]: significant.
    - promise 0.15 - 0.10 = 0.05: 0.05 - sqrt(0.097631² + 0.201034²) = -0.173487 and
      0.05 + sqrt(0.210419² + 0.072134²) = 0.272440: not significant yet.
    - kept 1.0 - 0.5 = 0.5: [-0.272573, 0.905469]; paid 0.15 - 0.05 = 0.1:
      [-0.110183, 0.314399]: not significant yet.
    Holdout - champion: contact 0 - 0.25: [-0.468701, 0.258994]; paid 0.25 - 0.05 = 0.2:
    [-0.076459, 0.651236]; no delivery nor kept rate (no sends, no promises).

    Sample size an arm (``test_sample_size_per_arm_by_the_formula``'s formula): promise
    0.15 vs 0.10: p̄ = 0.125, (1.959964·sqrt(0.21875) + 0.841621·sqrt(0.2175))² / 0.05²
    = (0.916682 + 0.392506)² / 0.0025 = 685.60, so 686; delivery 0.9 vs 0.2: 6.61, so 7;
    paid 0.15 vs 0.05: 140.10, so 141.

    Recovered per account: friendly [40, 60, 20, 0 x 17], mean 6.00; champion [50,
    0 x 19], mean 2.50; difference 3.50. Variances 280 - 36 = 244 and 125 - 6.25 =
    118.75, standard error sqrt(244/20 + 118.75/20) = 4.259, so a normal interval is
    3.5 ± 8.35 = [-4.85, 11.85]: the bootstrap's is near it, and includes 0."""
    arms = groups_by(_report(seeded, "variant"), "experiment", "variant")
    champion, friendly = arms[("tone", "champion")], arms[("tone", "friendly")]
    assert champion["delivery_rate"]["ci"] == pytest.approx([0.080658, 0.416017], abs=2e-6)
    assert champion["contact_rate"]["ci"] == pytest.approx([0.111862, 0.468701], abs=2e-6)
    assert friendly["delivery_rate"]["ci"] == pytest.approx([0.698966, 0.972134], abs=2e-6)
    assert friendly["kept_rate"]["ci"] == pytest.approx([0.342380, 1.0], abs=2e-6)

    versus = friendly["versus"]
    assert versus["variant"] == "champion"
    expected = {
        "delivery_rate": (0.7, 0.404910, 0.839448, True, 7),
        "contact_rate": (0.65, 0.352940, 0.805838, True, 8),
        "promise_rate": (0.05, -0.173487, 0.272440, False, 686),
        "kept_rate": (0.5, -0.272573, 0.905469, False, 11),
        "payment_rate": (0.1, -0.110183, 0.314399, False, 141),
    }
    for name, (difference, low, high, significant, n) in expected.items():
        found = versus[name]
        assert found["difference"] == pytest.approx(difference, abs=1e-9), name
        assert found["ci"] == pytest.approx([low, high], abs=2e-6), name
        assert found["significant"] is significant, name
        assert found["sample_size_per_arm"] == n, name
        assert found["method"] == "newcombe"

    money = versus["recovered_per_account"]["USD"]
    assert money["difference"] == 3.5 and money["method"] == "bootstrap-percentile"
    assert -8.0 < money["ci"][0] < 0 < 3.5 < money["ci"][1] < 15.0
    assert money["significant"] is False

    holdout = arms[("tone", "holdout")]["versus"]
    assert holdout["delivery_rate"] is None and holdout["kept_rate"] is None
    assert holdout["contact_rate"]["ci"] == pytest.approx([-0.468701, 0.258994], abs=2e-6)
    assert holdout["payment_rate"]["ci"] == pytest.approx([-0.076459, 0.651236], abs=2e-6)
    assert not holdout["contact_rate"]["significant"]


def test_the_bootstrap_gives_the_same_interval_on_every_run(seeded: str) -> None:
    """Accounts are taken in id order and the seed is fixed: two reports agree to the
    last digit (and so do SQLite and PostgreSQL, which return rows in other orders)."""
    first = _report(seeded, "variant")["groups"][1]["versus"]["recovered_per_account"]
    again = _report(seeded, "variant")["groups"][1]["versus"]["recovered_per_account"]
    assert first == again
    assert first["USD"]["ci"] == pytest.approx([-4.5, 12.0], abs=1.0)


def test_the_baseline_is_the_champion_else_the_largest_arm() -> None:
    def arm(n: int) -> DimGroup:
        group = DimGroup("x")
        group.accounts.update(str(i) for i in range(n))
        return group

    assert baseline_of({"a": arm(5), "champion": arm(2), "holdout": arm(1)}) == "champion"
    assert baseline_of({"a": arm(2), "b": arm(5), "holdout": arm(1)}) == "b"
    assert baseline_of({"b": arm(3), "a": arm(3)}) == "a"  # a tie: by name


def test_by_segment_counts_an_account_in_each_of_its_segments(seeded: str) -> None:
    report = _report(seeded, "segment")
    assert [g["segment"] for g in report["groups"]] == ["high", "standard", None]  # no "old"
    segments = groups_by(report, "segment")
    high, standard, none = segments["high"], segments["standard"], segments[None]
    # F11..F20 and F10 (by its deferred decision): F10 is in standard too.
    assert high["accounts"] == 11 and high["sends"] == 10 and high["delivered"] == 8
    assert rate(high["contact_rate"]) == (9, 11)  # F10 (its send was standard's), F11..F18
    assert rate(high["promise_rate"]) == (0, 11) and rate(high["payment_rate"]) == (1, 11)
    assert high["recovered_per_account"]["USD"] == {
        "numerator": "20.00",
        "denominator": 11,
        "value": pytest.approx(1.818182),
    }
    assert high["decisions"] == {"deferred": 1, "deferred:quiet_hours": 1, "sent": 10}

    assert standard["accounts"] == 34  # C01..C20, F01..F10, H1..H4
    assert standard["sends"] == 30 and standard["delivered"] == 14 and standard["clicked"] == 1
    assert rate(standard["contact_rate"]) == (15, 34)  # C01..C05, F01..F10
    assert rate(standard["promise_rate"]) == (5, 34) and rate(standard["kept_rate"]) == (3, 4)
    assert rate(standard["payment_rate"]) == (4, 34)  # C01, F01, F02, H1
    assert standard["recovered"] == {"USD": "180.00"} and standard["complaints"] == 1
    assert standard["balance_at_entry"] == {"USD": "3580.00"}
    assert rate(standard["recovery_rate"]["USD"]) == ("180.00", "3580.00")

    assert none["accounts"] == 2 and none["opt_outs"] == 1 and none["sends"] == 3
    assert none["balance_at_entry"] == {"CNY": "500.00", "USD": "100.00"}


def test_by_step_and_template_count_outcomes_by_the_last_delivered_send(seeded: str) -> None:
    steps = groups_by(_report(seeded, "step"), "step")
    assert list(steps) == ["m1-email", "m1-sms", "opt_out_confirmation", "promise-reminder"]
    sms = steps["m1-sms"]
    assert sms["accounts"] == 44 and sms["sends"] == 40 and sms["delivered"] == 22
    assert sms["decisions"]["skipped:holdout"] == 4 and sms["decisions"]["sent"] == 40
    assert rate(sms["contact_rate"]) == (22, 44)  # a delivered m1-sms; C05's call is no send
    assert rate(sms["promise_rate"]) == (5, 44) and rate(sms["kept_rate"]) == (3, 4)
    # C01, F01, F02, F12 after their delivered m1-sms; H1 had no send: in no step.
    assert rate(sms["payment_rate"]) == (4, 44) and sms["recovered"] == {"USD": "170.00"}
    assert sms["complaints"] == 1 and sms["opt_outs"] == 0
    assert "roll_rate" not in sms and "recovery_rate" not in sms
    # N2's opt-out at 13:59 follows its email (03-04), not the confirmation at 14:00.
    assert steps["m1-email"]["opt_outs"] == 1
    assert steps["opt_out_confirmation"]["opt_outs"] == 0
    reminder = steps["promise-reminder"]
    assert rate(reminder["promise_rate"]) == (1, 1) and rate(reminder["kept_rate"]) == (0, 0)

    templates = groups_by(_report(seeded, "template"), "template")
    assert list(templates) == ["promise_reminder", "reminder", None]
    both = templates["reminder"]  # m1-sms and m1-email
    assert both["accounts"] == 45 and both["sends"] == 41 and both["delivered"] == 23
    assert both["opt_outs"] == 1 and rate(both["promise_rate"]) == (5, 45)
    assert templates[None]["sends"] == 1  # opt_out_confirmation: an engine step


def test_by_hour_and_weekday_read_the_debtors_clock(seeded: str) -> None:
    """In UTC the sends were at 15:00, 02:00 and 14:00, on Monday, Tuesday, Wednesday and
    Friday; on the debtor's clock (-05:00) at 10:00, 21:00 and 09:00, and N1's text was
    on Monday."""
    hours = groups_by(_report(seeded, "hour"), "hour")
    assert list(hours) == [9, 10, 21]
    assert hours[10]["accounts"] == 40 and hours[10]["sends"] == 40  # sends only: no holdout
    assert hours[10]["decisions"] == {"sent": 40}
    assert rate(hours[10]["contact_rate"]) == (22, 40)
    assert rate(hours[10]["payment_rate"]) == (4, 40)
    assert hours[9]["sends"] == 2 and hours[9]["accounts"] == 1 and hours[9]["opt_outs"] == 1
    assert rate(hours[21]["promise_rate"]) == (1, 1)

    days = groups_by(_report(seeded, "weekday"), "weekday")
    assert list(days) == ["mon", "wed", "fri"]
    assert days["mon"]["accounts"] == 41 and days["mon"]["sends"] == 41
    assert rate(days["mon"]["promise_rate"]) == (6, 41)  # with N1's
    assert days["wed"]["opt_outs"] == 1 and days["fri"]["sends"] == 1


def test_an_unknown_dimension_is_refused(seeded: str) -> None:
    with pytest.raises(ValueError, match="unknown dimension 'channel'"):
        _report(seeded, "channel")


def test_without_by_the_report_is_unchanged(seeded: str) -> None:
    report = _report_without_by(seeded)
    assert "by" not in report and "groups" not in report
    assert report["total"]["accounts"] == 46


def _report_without_by(url: str) -> dict[str, Any]:
    config = load_config(ROOT / "config", ROOT / "templates")
    engine = db.make_engine(url)
    with engine.connect() as conn:
        found = build_report(conn, config, SINCE, UNTIL)
    engine.dispose()
    return found


# --- the command line and the HTML ---------------------------------------------------------


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        OUTREACH_DATABASE_URL=db_url,
        OUTREACH_CONFIG=str(ROOT / "config"),
        OUTREACH_TEMPLATES=str(ROOT / "templates"),
        COLUMNS="160",
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "report",
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-10",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_by_variant_json_table_and_html(seeded: str, tmp_path: Path) -> None:
    done = _cli(seeded, "--by", "variant", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["by"] == "variant" and len(data["groups"]) == 4
    assert data["groups"][1]["versus"]["contact_rate"]["significant"] is True

    page = tmp_path / "report.html"
    done = _cli(seeded, "--by", "variant", "--html", str(page))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "experiment tone: each arm against champion" in out
    assert "champion (baseline)" in out and "outside any experiment" in out
    assert "+70.0 pts [+40.5, +83.9]" in out  # delivery, friendly - champion
    assert "+5.0 pts [-17.3, +27.2]" in out  # promise
    assert "significant" in out and "not significant yet" in out
    assert "686 an arm to detect" in out
    assert "by stage," in out  # the usual tables come first
    html = page.read_text(encoding="utf-8")
    assert 'id="by-variant-1"' in html and "not significant yet" in html
    assert "+70.0 pts [+40.5, +83.9]<br>significant" in html
    assert html.count("<svg") == 6


def test_cli_by_hour_table_and_html_chart(seeded: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = _cli(seeded, "--by", "hour", "--html", str(page))
    assert done.returncode == 0, done.stderr
    assert "by hour" in done.stdout and "21:00" in done.stdout and "15:00" not in done.stdout
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 7 and 'id="chart-by"' in html
    assert 'title="22 / 40"' in html  # 10:00's contact rate, its counts on hover

    report = _report(seeded, "weekday")
    assert render_html(report).count("<svg") == 7
    assert render_html(_report(seeded, "segment")).count("<svg") == 6


def test_cli_refuses_an_unknown_dimension(seeded: str) -> None:
    done = _cli(seeded, "--by", "channel")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "--by: error: unknown dimension 'channel': "
        "one of segment, variant, step, template, hour, weekday"
    )
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_every_breakdown_fits_100_columns_in_the_terminal(seeded: str) -> None:
    from rich.console import Console

    from orchestrator.reporting.tables import print_report

    for by in ("segment", "variant", "hour"):
        console = Console(width=100, color_system=None)
        with console.capture() as captured:
            print_report(_report(seeded, by), console)
        text = captured.get()
        assert f"by {by}" in text or "experiment" in text
        assert max(len(line) for line in text.splitlines()) <= 100, by
        assert "…" not in text, by  # nothing cut to fit
