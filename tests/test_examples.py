"""The shared example scenarios produce what their comments describe (docs/scenarios.md)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app

SHARED = ROOT.parent / "shared" / "spec" / "examples"
# A copy travels with the repository, so a clone without shared/ beside it (CI) runs them
# too; where shared/ is present, the copy must still match it.
VENDORED = ROOT / "tests" / "examples"
EXAMPLES = SHARED if SHARED.exists() else VENDORED


@pytest.mark.skipif(not SHARED.exists(), reason="shared/spec/examples is not beside this clone")
def test_the_vendored_examples_match_the_shared_ones() -> None:
    shared = {p.name: p.read_bytes() for p in SHARED.glob("*.yaml")}
    assert shared, SHARED
    assert {p.name: p.read_bytes() for p in VENDORED.glob("*.yaml")} == shared


def simulate(name: str) -> list[dict[str, Any]]:
    _register_all()
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(EXAMPLES / name),
            "--config",
            str(ROOT / "config"),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["time"].replace("Z", "+00:00"))


def test_promise_kept_scenario() -> None:
    records = simulate("promise_kept.yaml")
    chicago = ZoneInfo("America/Chicago")
    sent = [r for r in records if r["decision"] == "sent"]
    collection = [r for r in sent if r["step"] == "m1-sms"]
    days = [at(r).astimezone(chicago).date() for r in collection]
    # daily collection texts at 10:00 Chicago before the promise
    for day in (6, 7, 8, 9):
        assert date(2026, 4, day) in days
    for r in collection:
        local = at(r).astimezone(chicago)
        assert (local.hour, local.minute) == (10, 0)
    # none from the promise until 14 days after the payment kept it
    promise_at = datetime.fromisoformat("2026-04-09T19:30:00+00:00")
    quiet_until = datetime.fromisoformat("2026-04-13T15:05:00+00:00") + timedelta(days=14)
    assert not [r for r in collection if promise_at <= at(r) < quiet_until]
    reasons = {r["reason"] for r in records if r["decision"] == "suppressed"}
    assert {"promise_pending", "promise_kept"} <= reasons
    # collection resumes afterwards
    assert [r for r in collection if at(r) >= quiet_until]
    # no promise reminder: the promise was kept before it was due
    assert not [r for r in sent if r["step"] == "promise-reminder"]
    # one thank-you right after the payment
    thanks = [r for r in sent if r["step"] == "thanks"]
    assert len(thanks) == 1
    assert thanks[0]["time"] == "2026-04-13T15:05:00Z"
    assert thanks[0]["kind"] == "service"


def test_calls_and_pause_scenario() -> None:
    records = simulate("calls_and_pause.yaml")
    la, ny = ZoneInfo("America/Los_Angeles"), ZoneInfo("America/New_York")
    calls = [r for r in records if r["decision"] == "sent" and r["channel"] == "voice"]
    assert calls
    local_days = [at(r).astimezone(la).date() for r in calls]
    # Reg F 7-in-7 on any 7 consecutive local days
    for first in {d for d in local_days}:
        window = [d for d in local_days if first <= d < first + timedelta(days=7)]
        assert len(window) <= 7, (first, window)
    # convenient in both Los Angeles and New York
    for r in calls:
        for zone in (la, ny):
            local = at(r).astimezone(zone)
            assert 8 <= local.hour < 21, (r["time"], zone)
    # nothing on the conversation day (after it) nor the 6 days after it
    conversation = datetime.fromisoformat("2026-05-12T18:00:00+00:00")
    for r in calls:
        if at(r) >= conversation:
            assert at(r).astimezone(la).date() >= date(2026, 5, 19)
    assert [r for r in calls if at(r).astimezone(la).date() >= date(2026, 5, 19)]
    assert any(r["reason"] == "pause:regf-conversation" for r in records)
    assert any(r["reason"] == "limit:regf-calls" for r in records)


@pytest.mark.parametrize("name", ["promise_kept.yaml", "calls_and_pause.yaml"])
def test_output_is_byte_identical(name: str) -> None:
    _register_all()
    args = [
        "simulate",
        str(EXAMPLES / name),
        "--config",
        str(ROOT / "config"),
        "--templates",
        str(ROOT / "templates"),
    ]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout


def test_every_record_has_every_key() -> None:
    from orchestrator.core.records import RECORD_KEYS

    for record in simulate("promise_kept.yaml"):
        assert tuple(record) == RECORD_KEYS


def test_events_the_api_would_refuse_are_errors_at_their_lines(tmp_path: Path) -> None:
    """A promise or plan outside the policy's bounds, or an event at an instant out of
    range, cannot happen through the API, so not in a simulation either: each is an
    error at its line (exit 2), not a crash nor 36 years of silence."""
    text = (VENDORED / "promise_kept.yaml").read_text()
    events = text[text.index("events:") :]
    bad = events + "\n".join(
        [
            '  - {at: 2026-04-09T19:30:00Z, account: A-1001, type: promise, amount: "1.00", '
            "due: 2062-04-17}",
            '  - {at: 0001-01-01T00:00:00Z, account: A-1001, type: payment, amount: "5.00"}',
            "  - {at: 2026-04-09T19:30:00Z, account: A-1001, type: plan, instalments: "
            '[{due: 9999-12-31, amount: "5.00"}]}',
            '  - {at: 2026-04-09T19:30:00Z, account: A-1001, type: promise, amount: "10.00", '
            "due: 0001-01-01}",
            "",
        ]
    )
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(text.replace(events, bad))
    lines = scenario.read_text().splitlines()
    _register_all()
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(scenario),
            "--config",
            str(ROOT / "config"),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle, words in (
        ("2062-04-17", "max_days_ahead"),
        ("0001-01-01T", "before 1970"),
        ("9999-12-31", "max_days_between"),
        ("due: 0001-01-01", "before the day it is made"),
    ):
        line = next(n for n, text in enumerate(lines, start=1) if needle in text)
        assert any(
            out.startswith(f"{scenario}:{line}:") and words in out
            for out in result.stderr.splitlines()
        ), (needle, result.stderr)


def test_an_unknown_event_field_is_an_error_at_its_line(tmp_path: Path) -> None:
    """A misspelt field (``chanel``) would quietly make an opt-out of nothing."""
    text = (VENDORED / "promise_kept.yaml").read_text()
    events = text[text.index("events:") :]
    scenario = tmp_path / "typo.yaml"
    scenario.write_text(
        text.replace(
            events,
            events
            + (
                "  - {at: 2026-04-09T19:30:00Z, account: A-1001, type: opt_out, channel: sms, "
                "chanel: voice}\n"
            ),
        )
    )
    line = len(scenario.read_text().splitlines())
    _register_all()
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(scenario),
            "--config",
            str(ROOT / "config"),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert any(
        out.startswith(f"{scenario}:{line}:") and "unknown field 'chanel'" in out
        for out in result.stderr.splitlines()
    ), result.stderr
