"""Pre-due stages: a stage may start before the due date (negative DPD). Its steps plan
on the debtor's local dates as any stage's do (across a DST change too), stop once the
balance is paid, and the shipped configuration's M0 reminders go out in the daemon as in
``simulate``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import ROOT, config_check  # noqa: I001 - tests/support.py

from orchestrator.config.loading import load_config
from orchestrator.core.records import DecisionRecord
from orchestrator.testing import account, event, make_config, minimal_templates, simulate


def _stage(steps: list[dict[str, object]]) -> list[dict[str, object]]:
    return [
        {"id": "M0", "dpd": [-5, 0], "steps": steps},
        {
            "id": "M1",
            "dpd": [1, None],
            "steps": [{"id": "m1-sms", "channel": "sms", "template": "reminder", "on_dpd": [1]}],
        },
    ]


def _sent(records: list[DecisionRecord]) -> list[tuple[str, str, str]]:
    return [(r.step, r.local_time, r.stage or "") for r in records if r.decision == "sent"]


def test_on_dpd_before_the_due_date_plans_on_local_dates_across_dst(tmp_path: Path) -> None:
    """Due 2026-03-10 in New York; clocks go forward on 2026-03-08 (dpd -2): each
    reminder is at 10:00 on the wall clock of its own local date."""
    config = make_config(
        stages=_stage(
            [
                {
                    "id": "m0-sms",
                    "channel": "sms",
                    "template": "reminder",
                    "on_dpd": [-5, -2, 0],
                    "at": "10:00",
                    "kind": "service",
                }
            ]
        )
    )
    records = simulate(
        config,
        [account(due_date="2026-03-10")],
        start="2026-03-01T00:00:00Z",
        days=12,
        templates=minimal_templates(tmp_path / "t"),
    )
    assert _sent(records) == [
        ("m0-sms", "2026-03-05T10:00:00-05:00", "M0"),
        ("m0-sms", "2026-03-08T10:00:00-04:00", "M0"),
        ("m0-sms", "2026-03-10T10:00:00-04:00", "M0"),
        ("m1-sms", "2026-03-11T10:00:00-04:00", "M1"),
    ]
    # The instants in UTC move by the hour the clocks moved.
    sent = [r for r in records if r.decision == "sent"]
    assert [r.time.hour for r in sent] == [15, 14, 14, 14]


def test_every_counts_from_the_negative_lower_bound(tmp_path: Path) -> None:
    """``every: 2d`` in [-5, 0] fires on DPD -5, -3 and -1 (lo, lo+N, ...)."""
    config = make_config(
        stages=_stage(
            [
                {
                    "id": "m0-email",
                    "channel": "email",
                    "template": "reminder",
                    "every": "2d",
                    "at": "09:00",
                    "kind": "service",
                }
            ]
        )
    )
    records = simulate(
        config,
        [
            account(
                due_date="2026-04-20",
                timezone="Asia/Shanghai",
                phone="+8613800138000",
                country="CN",
                region=None,
            )
        ],
        start="2026-04-10T00:00:00Z",
        days=10,
        templates=minimal_templates(tmp_path / "t"),
    )
    assert [local for step, local, _ in _sent(records) if step == "m0-email"] == [
        "2026-04-15T09:00:00+08:00",
        "2026-04-17T09:00:00+08:00",
        "2026-04-19T09:00:00+08:00",
    ]


def test_paid_before_the_due_date_stops_the_pre_due_steps(tmp_path: Path) -> None:
    """Paid in full at DPD -4: the reminders of -2 and 0 are suppressed (``paid``), even
    though they are of kind service; the thanks (a trigger) still goes."""
    config = make_config(
        stages=_stage(
            [
                {
                    "id": "m0-sms",
                    "channel": "sms",
                    "template": "reminder",
                    "on_dpd": [-5, -2, 0],
                    "at": "10:00",
                    "kind": "service",
                }
            ]
        ),
        triggers=[
            {
                "id": "thanks",
                "on": "payment_received",
                "channel": "email",
                "template": "payment_thanks",
                "kind": "service",
            }
        ],
    )
    records = simulate(
        config,
        [account(due_date="2026-03-10")],
        [event("2026-03-06T18:00:00Z", "A1", "payment", amount="250.00")],
        start="2026-03-01T00:00:00Z",
        days=12,
        templates=minimal_templates(tmp_path / "t"),
    )
    decided = [(r.step, r.local_time[:10], str(r.decision), r.reason) for r in records]
    assert decided == [
        ("m0-sms", "2026-03-05", "sent", None),
        ("thanks", "2026-03-06", "sent", None),
        ("m0-sms", "2026-03-08", "suppressed", "paid"),
        ("m0-sms", "2026-03-10", "suppressed", "paid"),
        ("m1-sms", "2026-03-11", "suppressed", "paid"),
    ]


@pytest.mark.parametrize(
    ("dpd", "message"),
    [
        ("[0, -5]", "stage M0: dpd range [0, -5] is empty"),
        ("[-400, 0]", "stage M0: dpd -400 starts more than 366 days before the due date"),
    ],
)
def test_config_check_refuses_an_empty_or_far_pre_due_range(
    tmp_path: Path, dpd: str, message: str
) -> None:
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    cadences = target / "cadences.yaml"
    text = cadences.read_text()
    assert "dpd: [-5, 0]" in text
    cadences.write_text(text.replace("dpd: [-5, 0]", f"dpd: {dpd}"))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "dpd: [-5, 0]" in row)
    code, output = config_check(target)
    assert code == 2, output
    assert f"cadences.yaml:{line}" in output and message in output, output


def test_the_shipped_m0_reminders_are_service_and_before_the_due_date(tmp_path: Path) -> None:
    """The sample configuration reminds 5 days before the due date by email and 2 days
    before and on the day by text, in English and Chinese, with no collection wording."""
    config = load_config(ROOT / "config", ROOT / "templates")
    m0 = next(s for s in config.cadences.stages if s.id == "M0")
    assert m0.dpd == (-5, 0)
    assert {str(step.kind) for step in m0.steps} == {"service"}
    accounts = [
        account("EN", due_date="2026-03-20"),
        account(
            "ZH",
            due_date="2026-03-20",
            locale="zh-CN",
            phone="+8613800138000",
            country="CN",
            region=None,
            currency="CNY",
        ),
    ]
    records = simulate(
        config, accounts, start="2026-03-14T00:00:00Z", days=7, templates=ROOT / "templates"
    )
    sent = [r for r in records if r.decision == "sent" and r.stage == "M0"]
    assert sorted((r.account, r.step, r.local_time[:10]) for r in sent) == [
        ("EN", "m0-email", "2026-03-15"),
        ("EN", "m0-sms", "2026-03-18"),
        ("EN", "m0-sms", "2026-03-20"),
        ("ZH", "m0-email", "2026-03-15"),
        ("ZH", "m0-sms", "2026-03-18"),
        ("ZH", "m0-sms", "2026-03-20"),
    ]
    texts = {(r.account, r.local_time[:10], r.channel): r.text or "" for r in sent}
    assert "is due today" in texts[("EN", "2026-03-20", "sms")]
    assert "is due on" in texts[("EN", "2026-03-18", "sms")]
    assert "今日到期" in texts[("ZH", "2026-03-20", "sms")]
    assert all("overdue" not in t.lower() and "逾期" not in t for t in texts.values())
