"""Named engine behaviours, each through the real planner, gate and renderer on a virtual
clock (``orchestrator.testing.simulate``)."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.core.records import DecisionRecord
from orchestrator.testing import account, event, make_config, minimal_templates, simulate

NY = ZoneInfo("America/New_York")
DAILY_SMS = [
    {
        "id": "M1",
        "dpd": [1, 60],
        "steps": [
            {"id": "sms", "channel": "sms", "template": "reminder", "every": "1d", "at": "10:00"}
        ],
    }
]
HOURS = {"default": {"start": "08:00", "end": "21:00"}}


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    return minimal_templates(tmp_path / "templates")


def sent(records: list[DecisionRecord], step: str | None = None) -> list[DecisionRecord]:
    return [r for r in records if r.decision == "sent" and (step is None or r.step == step)]


def local_days(records: list[DecisionRecord], zone: ZoneInfo = NY) -> list[date]:
    return [r.time.astimezone(zone).date() for r in records]


def test_dst_start_keeps_local_time(templates: Path) -> None:
    config = make_config(stages=DAILY_SMS, policy={"hours": HOURS})
    records = simulate(
        config, [account()], start="2026-03-06T00:00:00Z", days=4, templates=templates
    )
    times = {r.time.astimezone(NY).date(): r.time for r in sent(records)}
    assert times[date(2026, 3, 7)].hour == 15  # EST: 10:00 = 15:00Z
    assert times[date(2026, 3, 8)].hour == 14  # EDT from 2026-03-08: 10:00 = 14:00Z
    assert all(r.time.astimezone(NY).hour == 10 for r in sent(records))


def test_dst_end_keeps_local_time(templates: Path) -> None:
    config = make_config(
        stages=[
            {
                "id": "M1",
                "dpd": [1, 400],
                "steps": [
                    {
                        "id": "sms",
                        "channel": "sms",
                        "template": "reminder",
                        "every": "1d",
                        "at": "10:00",
                    }
                ],
            }
        ],
        policy={"hours": HOURS},
    )
    records = simulate(
        config, [account()], start="2026-10-30T00:00:00Z", days=4, templates=templates
    )
    times = {r.time.astimezone(NY).date(): r.time for r in sent(records)}
    assert times[date(2026, 10, 31)].hour == 14  # EDT
    assert times[date(2026, 11, 1)].hour == 15  # EST from 2026-11-01


def test_early_step_deferred_into_hours_across_dst(templates: Path) -> None:
    stages = [
        {
            "id": "M1",
            "dpd": [1, 60],
            "steps": [
                {
                    "id": "sms",
                    "channel": "sms",
                    "template": "reminder",
                    "every": "1d",
                    "at": "06:00",
                }
            ],
        }
    ]
    records = simulate(
        make_config(stages=stages, policy={"hours": HOURS}),
        [account()],
        start="2026-03-07T00:00:00Z",
        days=3,
        templates=templates,
    )
    deferred = [r for r in records if r.decision == "deferred"]
    assert deferred and all(r.reason == "quiet_hours" for r in deferred)
    for r in deferred:
        assert r.until is not None and r.until.astimezone(NY).hour == 8
    assert all(r.time.astimezone(NY).hour == 8 for r in sent(records))


def test_conflicting_phone_and_address_zones(templates: Path) -> None:
    # phone in New York, address in Honolulu: permitted only when both allow it
    stages = [
        {
            "id": "M1",
            "dpd": [1, 60],
            "steps": [
                {
                    "id": "sms",
                    "channel": "sms",
                    "template": "reminder",
                    "every": "1d",
                    "at": "16:30",
                }
            ],
        }
    ]
    acct = account(city="Honolulu", region="HI")
    records = simulate(
        make_config(stages=stages, policy={"hours": HOURS}),
        [acct],
        start="2026-03-02T00:00:00Z",
        days=5,
        templates=templates,
    )
    hawaii = ZoneInfo("Pacific/Honolulu")
    assert sent(records)
    for r in sent(records):
        for zone in (hawaii, NY):
            assert 8 <= r.time.astimezone(zone).hour < 21
    # 16:30 Honolulu is 21:30/22:30 New York: deferred to 08:00 Honolulu next morning
    assert any(r.decision == "deferred" and r.reason == "quiet_hours" for r in records)
    assert all(r.time.astimezone(hawaii).strftime("%H:%M") == "08:00" for r in sent(records))


def test_weekday_hours_for_voice(templates: Path) -> None:
    stages = [
        {
            "id": "M1",
            "dpd": [1, 60],
            "steps": [
                {
                    "id": "call",
                    "channel": "voice",
                    "template": "reminder",
                    "every": "1d",
                    "at": "10:00",
                    "expires": "3d",
                }
            ],
        }
    ]
    policy = {
        "hours": {
            "default": HOURS["default"],
            "voice": {
                "start": "09:00",
                "end": "20:00",
                "days": ["mon", "tue", "wed", "thu", "fri"],
            },
        }
    }
    records = simulate(
        make_config(stages=stages, policy=policy),
        [account()],
        start="2026-03-06T00:00:00Z",
        days=4,
        templates=templates,
    )  # Fri..Mon
    weekdays = {r.time.astimezone(NY).strftime("%a") for r in sent(records)}
    assert weekdays <= {"Mon", "Tue", "Wed", "Thu", "Fri"}
    saturday = [r for r in records if r.time.astimezone(NY).date() == date(2026, 3, 7)]
    assert saturday and saturday[0].decision == "deferred"
    until = saturday[0].until
    assert until is not None and until.astimezone(NY).strftime("%a %H:%M") == "Mon 09:00"


def test_public_holiday_blocks_sms(templates: Path) -> None:
    policy = {"hours": HOURS, "holidays": {"channels": ["sms", "voice"]}}
    records = simulate(
        make_config(stages=DAILY_SMS, policy=policy),
        [account(due_date="2026-05-01")],
        start="2026-05-24T00:00:00Z",
        days=3,
        templates=templates,
    )
    memorial_day = date(2026, 5, 25)
    assert memorial_day not in local_days(sent(records))
    held = [r for r in records if r.time.astimezone(NY).date() == memorial_day]
    assert held and held[0].decision == "deferred" and held[0].reason == "holiday"


def test_debtor_scope_limit_across_two_accounts(templates: Path) -> None:
    policy = {
        "hours": HOURS,
        "limits": [
            {"id": "sms-daily", "channels": ["sms"], "max": 1, "window": "1d", "scope": "debtor"}
        ],
    }
    accounts = [account("A1", debtor_id="D1"), account("A2", debtor_id="D1")]
    records = simulate(
        make_config(stages=DAILY_SMS, policy=policy),
        accounts,
        start="2026-03-02T00:00:00Z",
        days=5,
        templates=templates,
    )
    per_day = Counter(local_days(sent(records)))
    assert per_day and max(per_day.values()) == 1
    assert any(r.reason == "limit:sms-daily" for r in records)


def test_promise_broken_fires_and_collection_resumes(templates: Path) -> None:
    triggers = [
        {"id": "broken", "on": "promise_broken", "channel": "sms", "template": "promise_broken"}
    ]
    policy = {"hours": HOURS, "suppression": {"promise_grace": "1d", "after_kept": "14d"}}
    events = [event("2026-03-03T16:00:00Z", "A1", "promise", amount="100.00", due="2026-03-05")]
    records = simulate(
        make_config(stages=DAILY_SMS, triggers=triggers, policy=policy),
        [account()],
        events,
        start="2026-03-02T00:00:00Z",
        days=8,
        templates=templates,
    )
    assert any(r.reason == "promise_pending" for r in records)
    broken = sent(records, "broken")
    assert len(broken) == 1
    # broken at the end of the due date + 1 day grace, local time
    assert broken[0].time.astimezone(NY).date() == date(2026, 3, 7)
    resumed = [d for d in local_days(sent(records, "sms")) if d >= date(2026, 3, 7)]
    assert resumed


def test_instalment_reminders_and_thanks(templates: Path) -> None:
    triggers = [
        {
            "id": "inst-reminder",
            "on": "instalment_due",
            "offset": "-2d",
            "at": "10:00",
            "channel": "sms",
            "template": "promise_reminder",
        },
        {"id": "thanks", "on": "payment_received", "channel": "sms", "template": "payment_thanks"},
    ]
    events = [
        event(
            "2026-03-02T16:00:00Z",
            "A1",
            "plan",
            instalments=[
                {"due": "2026-03-10", "amount": "50.00"},
                {"due": "2026-03-20", "amount": "50.00"},
            ],
        ),
        event("2026-03-10T16:00:00Z", "A1", "payment", amount="50.00"),
        event("2026-03-20T16:00:00Z", "A1", "payment", amount="50.00"),
    ]
    records = simulate(
        make_config(stages=DAILY_SMS, triggers=triggers, policy={"hours": HOURS}),
        [account()],
        events,
        start="2026-03-02T00:00:00Z",
        days=25,
        templates=templates,
    )
    reminders = local_days(sent(records, "inst-reminder"))
    assert reminders == [date(2026, 3, 8), date(2026, 3, 18)]
    thanks = sent(records, "thanks")
    assert [r.time.isoformat() for r in thanks] == [
        "2026-03-10T16:00:00+00:00",
        "2026-03-20T16:00:00+00:00",
    ]
    assert all(r.kind == "service" for r in thanks)
    # collection is suppressed while the plan is in good standing
    collection = [
        d for d in local_days(sent(records, "sms")) if date(2026, 3, 3) <= d <= date(2026, 3, 20)
    ]
    assert not collection
    assert any(r.reason == "plan_active" for r in records)


def test_stop_and_start(templates: Path) -> None:
    stages = [
        {
            "id": "M1",
            "dpd": [1, 60],
            "steps": [
                {
                    "id": "sms",
                    "channel": "sms",
                    "template": "reminder",
                    "every": "1d",
                    "at": "10:00",
                },
                {
                    "id": "mail",
                    "channel": "email",
                    "template": "reminder",
                    "every": "1d",
                    "at": "11:00",
                },
            ],
        }
    ]
    events = [
        event("2026-03-03T18:00:00Z", "A1", "inbound_sms", body=" stop "),
        event("2026-03-05T18:00:00Z", "A1", "inbound_sms", body="START"),
    ]
    records = simulate(
        make_config(stages=stages, policy={"hours": HOURS}),
        [account()],
        events,
        start="2026-03-02T00:00:00Z",
        days=6,
        templates=templates,
    )
    sms_days = local_days(sent(records, "sms"))
    assert date(2026, 3, 4) not in sms_days and date(2026, 3, 5) not in sms_days
    assert date(2026, 3, 6) in sms_days
    stopped = [r for r in records if r.step == "sms" and r.decision == "suppressed"]
    assert {r.reason for r in stopped} == {"opted_out"}
    assert len(local_days(sent(records, "mail"))) == 6  # email unaffected
    confirmations = sent(records, "opt_out_confirmation")
    assert len(confirmations) == 1 and confirmations[0].kind == "notice"


@pytest.mark.parametrize(
    ("scope", "body", "calls_stopped"),
    [
        ("sms", "STOP", False),
        ("automated", "STOP", True),
        ("sms", "please stop calling me", True),
        ("sms", "别再打电话了", True),
        ("sms", "I will pay on Friday", False),
    ],
)
def test_what_an_inbound_text_stops(
    templates: Path, scope: str, body: str, calls_stopped: bool
) -> None:
    """``simulate`` reads an inbound text as the server does: STOP stops calls too under
    ``opt_out_scope: automated``; a revocation in the person's own words stops texts and
    calls whatever the scope; anything else stops nothing. START undoes a STOP."""
    stages = [
        {
            "id": "M1",
            "dpd": [1, 60],
            "steps": [
                {
                    "id": "sms",
                    "channel": "sms",
                    "template": "reminder",
                    "every": "1d",
                    "at": "10:00",
                },
                {
                    "id": "call",
                    "channel": "voice",
                    "template": "reminder",
                    "every": "1d",
                    "at": "12:00",
                },
            ],
        }
    ]
    events = [
        event("2026-03-03T18:00:00Z", "A1", "inbound_sms", body=body),
        event("2026-03-05T18:00:00Z", "A1", "inbound_sms", body="START"),
    ]
    config = make_config(stages=stages, policy={"hours": HOURS, "opt_out_scope": scope})
    records = simulate(
        config, [account()], events, start="2026-03-02T00:00:00Z", days=6, templates=templates
    )
    texted, called = local_days(sent(records, "sms")), local_days(sent(records, "call"))
    stopped = body != "I will pay on Friday"
    assert (date(2026, 3, 4) not in texted) == stopped
    assert (date(2026, 3, 4) not in called) == calls_stopped
    if body == "STOP":  # START restores what STOP stopped
        assert date(2026, 3, 6) in texted and date(2026, 3, 6) in called


def test_dispute_and_resolution(templates: Path) -> None:
    events = [
        event("2026-03-03T18:00:00Z", "A1", "dispute"),
        event("2026-03-05T18:00:00Z", "A1", "dispute_resolved"),
    ]
    records = simulate(
        make_config(stages=DAILY_SMS, policy={"hours": HOURS}),
        [account()],
        events,
        start="2026-03-02T00:00:00Z",
        days=6,
        templates=templates,
    )
    days = local_days(sent(records))
    assert date(2026, 3, 4) not in days and date(2026, 3, 5) not in days
    assert date(2026, 3, 6) in days
    assert any(r.reason == "disputed" for r in records)


def test_cease_leaves_only_notices(templates: Path) -> None:
    triggers = [
        {"id": "thanks", "on": "payment_received", "channel": "sms", "template": "payment_thanks"},
        {
            "id": "notice",
            "on": "payment_received",
            "channel": "letter",
            "template": "reminder_letter",
            "kind": "notice",
        },
    ]
    events = [
        event("2026-03-03T18:00:00Z", "A1", "cease"),
        event("2026-03-04T18:00:00Z", "A1", "payment", amount="10.00"),
    ]
    records = simulate(
        make_config(stages=DAILY_SMS, triggers=triggers, policy={"hours": HOURS}),
        [account()],
        events,
        start="2026-03-02T00:00:00Z",
        days=5,
        templates=templates,
    )
    after = [r for r in sent(records) if r.time.astimezone(NY).date() >= date(2026, 3, 4)]
    assert [r.step for r in after] == ["notice"]
    assert any(r.step == "thanks" and r.reason == "cease" for r in records)


def test_paid_in_full_closes_the_account(templates: Path) -> None:
    events = [event("2026-03-03T18:00:00Z", "A1", "payment", amount="250.00")]
    records = simulate(
        make_config(stages=DAILY_SMS, policy={"hours": HOURS}),
        [account()],
        events,
        start="2026-03-02T00:00:00Z",
        days=5,
        templates=templates,
    )
    assert local_days(sent(records)) == [date(2026, 3, 2), date(2026, 3, 3)]
    later = [r for r in records if r.time.astimezone(NY).date() > date(2026, 3, 3)]
    assert later and {(r.decision, r.reason) for r in later} == {("suppressed", "paid")}


def test_consent_and_missing_contacts(templates: Path) -> None:
    stages = [
        {
            "id": "M1",
            "dpd": [1, 60],
            "steps": [
                {
                    "id": s,
                    "channel": s,
                    "template": "reminder" if s != "letter" else "reminder_letter",
                    "on_dpd": [10],
                    "at": "10:00",
                }
                for s in ("sms", "voice", "email", "letter")
            ],
        }
    ]
    accounts = [
        account("NOSMS", consent_sms=False),
        account("NOMAIL", email=None, address_line1=None),
        account("WORK", email_type="work"),
        account("WORKOK", email_type="work", consent_email=True),
        account("NOPHONE", phone=None),
    ]
    records = simulate(
        make_config(stages=stages, policy={"hours": HOURS}),
        accounts,
        start="2026-03-02T00:00:00Z",
        days=1,
        templates=templates,
    )
    by = {(r.account, r.channel): (r.decision, r.reason) for r in records}
    assert by[("NOSMS", "sms")] == ("blocked", "no_consent")
    assert by[("NOSMS", "email")] == ("sent", None)
    assert by[("NOMAIL", "email")] == ("blocked", "no_contact")
    assert by[("NOMAIL", "letter")] == ("blocked", "no_contact")
    assert by[("WORK", "email")] == ("blocked", "no_consent")
    assert by[("WORKOK", "email")] == ("sent", None)
    assert by[("NOPHONE", "sms")] == ("blocked", "no_contact")
    assert by[("NOPHONE", "voice")] == ("blocked", "no_contact")


def test_stage_escalation_with_letter_on_entry(templates: Path) -> None:
    stages = [
        {
            "id": "M1",
            "dpd": [1, 30],
            "steps": [
                {
                    "id": "m1-morning",
                    "channel": "sms",
                    "template": "reminder",
                    "every": "1d",
                    "at": "10:00",
                },
                {
                    "id": "m1-sms",
                    "channel": "sms",
                    "template": "reminder",
                    "every": "1d",
                    "at": "20:30",
                    "expires": "2d",
                },
            ],
        },
        {
            "id": "M2",
            "dpd": [31, 60],
            "steps": [
                {
                    "id": "m2-letter",
                    "channel": "letter",
                    "template": "demand_letter",
                    "on_dpd": [31],
                },
                {
                    "id": "m2-sms",
                    "channel": "sms",
                    "template": "overdue",
                    "every": "1d",
                    "at": "12:00",
                },
            ],
        },
    ]
    policy = {
        "hours": {"default": {"start": "08:00", "end": "21:00"}, "letter": "any"},
        "limits": [
            {"id": "sms-daily", "channels": ["sms"], "max": 1, "window": "1d", "scope": "debtor"}
        ],
    }
    # DPD 30 on 2026-03-22 (due 2026-02-20), M2 from 2026-03-23
    records = simulate(
        make_config(stages=stages, policy=policy),
        [account()],
        start="2026-03-21T00:00:00Z",
        days=4,
        templates=templates,
    )
    letters = sent(records, "m2-letter")
    assert local_days(letters) == [date(2026, 3, 23)]
    assert letters[0].stage == "M2"
    assert all(
        r.stage == "M2" for r in sent(records) if r.time.astimezone(NY).date() >= date(2026, 3, 23)
    )
    # an M1 occurrence still pending when M2 starts is skipped, not sent in M2
    sms_m1 = [
        r
        for r in records
        if r.step == "m1-sms" and r.time.astimezone(NY).date() >= date(2026, 3, 23)
    ]
    assert sms_m1
    assert all(r.decision == "skipped" and r.reason == "stage_changed" for r in sms_m1)


def test_expired_when_deferred_beyond_expiry(templates: Path) -> None:
    policy = {
        "hours": HOURS,
        "limits": [
            {"id": "sms-week", "channels": ["sms"], "max": 2, "window": "7d", "scope": "account"}
        ],
    }
    records = simulate(
        make_config(stages=DAILY_SMS, policy=policy),
        [account()],
        start="2026-03-02T00:00:00Z",
        days=9,
        templates=templates,
    )
    days = local_days(sent(records))
    assert days[:2] == [date(2026, 3, 2), date(2026, 3, 3)]
    assert date(2026, 3, 9) in days  # 7d window frees on day 8 after the first send
    for first in days:
        assert len([d for d in days if first <= d < first + timedelta(days=7)]) <= 2
    assert any(r.decision == "skipped" and r.reason == "expired" for r in records)


def test_a_template_that_fails_fails_only_its_own_sends(templates: Path) -> None:
    """``simulate`` records a template that cannot render (here it would compute a
    number of nine million digits) as ``failed`` / ``render_error`` (docs/decisions.md), send
    by send, while the other step of the same account goes out."""
    (templates / "sms" / "hostile.txt.j2").write_text("{{ 9 ** 9999999 }}", encoding="utf-8")
    stages = [
        {
            "id": "M1",
            "dpd": [1, 60],
            "steps": [
                {
                    "id": "good",
                    "channel": "sms",
                    "template": "reminder",
                    "every": "1d",
                    "at": "10:00",
                },
                {
                    "id": "bad",
                    "channel": "sms",
                    "template": "hostile",
                    "every": "1d",
                    "at": "10:00",
                },
            ],
        }
    ]
    records = simulate(
        make_config(stages=stages, policy={"hours": HOURS}),
        [account()],
        start="2026-03-02T00:00:00Z",
        days=3,
        templates=templates,
    )
    bad = [r for r in records if r.step == "bad"]
    assert len(bad) == 3
    assert {(str(r.decision), r.reason, r.message_id) for r in bad} == {
        ("failed", "render_error", None)
    }
    assert len(sent(records, "good")) == 3
