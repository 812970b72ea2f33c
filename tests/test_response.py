"""``simulate --response-model``: seeded responses (payments, promises, conversations)
join the run, reproducibly and the same split across processes; ``--by`` prints the
KPIs per segment or arm, each arm against the champion."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.core.records import DecisionKind, DecisionRecord
from orchestrator.simulation.outcomes import summary, tally
from orchestrator.simulation.response import ResponseModel
from orchestrator.simulation.scenario import load_scenario
from orchestrator.simulation.simulate import Simulation, simulate_lines

CADENCES = """
    stages:
      - id: M1
        dpd: [1, 60]
        steps:
          - {id: m1-sms, channel: sms, template: reminder, every: 2d, at: "10:00"}
          - {id: m1-call, channel: voice, template: reminder, every: 3d, at: "18:00"}
    triggers:
      - {id: thanks, on: payment_received, channel: email, template: payment_thanks, kind: service}
"""


def _scenario(tmp_path: Path, *, accounts: int = 40, days: int = 20, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"""
start: 2026-03-02T05:00:00Z
days: {days}
templates: {ROOT / "templates"}
config:
  cadences:
{CADENCES}
{extra}
sample: {{accounts: {accounts}, seed: 3}}
"""
    )
    return path


def _model(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return path


def _cli(*args: str) -> tuple[int, str, str]:
    _register_all()
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _record(**fields: object) -> DecisionRecord:
    base: dict[str, object] = {
        "time": datetime(2026, 3, 2, 15, tzinfo=UTC),
        "local_time": "2026-03-02T10:00:00-05:00",
        "account": "A1",
        "debtor": "A1",
        "stage": "M1",
        "step": "m1-sms",
        "channel": "sms",
        "kind": "collection",
        "decision": DecisionKind.sent,
        "message_id": "m_1",
    }
    base.update(fields)
    return DecisionRecord(**base)  # type: ignore[arg-type]


def test_the_first_matching_rule_over_the_default() -> None:
    model = ResponseModel.model_validate(
        {
            "default": {"pay": 0.01, "promise": 0.02, "reply": 0.03},
            "rules": [
                {"segments": ["vip"], "pay": 0.5},
                {"channels": ["voice"], "hours": [17, 21], "promise": 0.2, "keep": 0.9},
                {"channels": ["voice"], "days": ["sat", "sun"], "reply": 0.4},
            ],
        }
    )
    at = datetime(2026, 3, 2, 18)  # a Monday, 18:00 local
    sms = _record()
    assert model.rates(sms, at) == (0.01, 0.02, 0.03, 0.7)
    assert model.rates(_record(segment="vip"), at) == (0.5, 0.02, 0.03, 0.7)
    call = _record(channel="voice")
    assert model.rates(call, at) == (0.01, 0.2, 0.03, 0.9)
    assert model.rates(call, datetime(2026, 3, 2, 21)) == (0.01, 0.02, 0.03, 0.7)
    assert model.rates(call, datetime(2026, 3, 7, 10)) == (0.01, 0.02, 0.4, 0.7)


def test_a_certain_payment_closes_the_account_after_its_first_contact(tmp_path: Path) -> None:
    """``pay: 1``: every first contact is followed 4 hours later by a payment of the
    balance, thanked; the account's later steps are suppressed (paid)."""
    scenario = load_scenario(_scenario(tmp_path, accounts=5, days=6), config_dir=ROOT / "config")
    scenario.response = ResponseModel.model_validate({"default": {"pay": 1.0}})
    records = list(Simulation(scenario).run())
    by_account: dict[str, list[DecisionRecord]] = {}
    for r in records:
        by_account.setdefault(r.account, []).append(r)
    for account, decided in by_account.items():
        first = next(r for r in decided if r.decision == "sent" and r.kind == "collection")
        thanks = [r for r in decided if r.step == "thanks"]
        assert thanks and (thanks[0].time - first.time).total_seconds() == 4 * 3600, account
        later = [r for r in decided if r.time > first.time and r.kind == "collection"]
        assert all(r.reason == "paid" for r in later), account


def test_runs_are_reproducible_and_the_same_across_processes(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path), config_dir=ROOT / "config")
    scenario.response = ResponseModel.model_validate(
        {"seed": 5, "default": {"pay": 0.05, "promise": 0.2, "reply": 0.2, "keep": 0.5}}
    )
    one = list(simulate_lines(scenario, 1))
    assert one == list(simulate_lines(scenario, 1))
    assert one == list(simulate_lines(scenario, 2))
    assert any('"step": "thanks"' in line for line in one)  # responses happened
    other = scenario.response.model_copy(update={"seed": 6})
    scenario.response = other
    assert list(simulate_lines(scenario, 1)) != one  # the seed matters


def test_the_tally_counts_each_group_by_hand() -> None:
    """Two arms of e1: A and B champion, C challenger. A: sent, conversation and a
    promise, paid 30 USD; B: only deferred; C: sent, paid 50 USD with no conversation."""
    records = [
        _record(account="A", experiment="e1", variant="champion"),
        _record(account="B", experiment="e1", variant="champion", decision=DecisionKind.deferred),
        _record(account="C", experiment="e1", variant="challenger"),
        _record(account="D"),  # outside any experiment: in no arm
    ]
    at = datetime(2026, 3, 3, tzinfo=UTC)
    events: list[tuple[datetime, str, str, dict[str, Any]]] = [
        (at, "A", "conversation", {"channel": "sms"}),
        (at, "A", "promise", {"amount": Decimal("30"), "due": None}),
        (at, "A", "payment", {"amount": Decimal("30"), "payment_id": "p1"}),
        (at, "C", "payment", {"amount": Decimal("50"), "payment_id": "p2"}),
        (at, "D", "payment", {"amount": Decimal("9"), "payment_id": "p3"}),
    ]
    groups = tally(records, events, "variant")
    assert set(groups) == {("e1", "champion"), ("e1", "challenger")}
    champion, challenger = groups[("e1", "champion")], groups[("e1", "challenger")]
    assert (len(champion.accounts), len(champion.reached), len(champion.contacted)) == (2, 1, 1)
    assert (len(champion.promised), len(champion.paid)) == (1, 1)
    assert (len(challenger.reached), len(challenger.contacted), len(challenger.paid)) == (1, 0, 1)
    data = summary(groups, "variant", {"A": "USD", "B": "USD", "C": "USD"})
    first, second = data["groups"]
    assert (first["variant"], second["variant"]) == ("champion", "challenger")
    assert first["recovered_per_account"] == {"USD": 15.0}  # 30 over A and B
    assert second["recovered_per_account"] == {"USD": 50.0}
    # payment 1/1 vs 1/2: +50 points, far from significant with three accounts.
    versus = second["versus_champion"]["payment"]
    assert versus["difference"] == 0.5 and versus["significant"] is False


def test_cli_by_variant_prints_each_arm_against_the_champion(tmp_path: Path) -> None:
    scenario = _scenario(
        tmp_path,
        accounts=200,
        days=25,
        extra="""
  experiments:
    - id: e1
      stage: M1
      salt: x
      arms:
        - {id: champion, share: 0.5}
        - id: calls-only
          share: 0.5
          steps:
            - {id: c-call, channel: voice, template: reminder, every: 3d, at: "18:00"}
""",
    )
    model = _model(tmp_path, "seed: 1\ndefault: {pay: 0.02, promise: 0.3, reply: 0.1}\n")
    out = tmp_path / "decisions.jsonl"
    code, stdout, stderr = _cli(
        "simulate",
        str(scenario),
        "--config",
        str(ROOT / "config"),
        "--response-model",
        str(model),
        "--by",
        "variant",
        "--json",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["by"] == "variant"
    arms = {g["variant"]: g for g in data["groups"]}
    assert set(arms) == {"champion", "calls-only"}
    assert "versus_champion" not in arms["champion"]
    versus = arms["calls-only"]["versus_champion"]
    for name in ("reach", "contact", "promise", "payment"):
        low, high = versus[name]["ci"]
        assert low <= versus[name]["difference"] <= high
    # The texts every 2 days reach more of the champion's accounts than calls only.
    assert arms["champion"]["reach"]["value"] > arms["calls-only"]["reach"]["value"]
    assert out.read_text().count("\n") > 100  # --out still has the decisions

    code, stdout, _ = _cli(
        "simulate",
        str(scenario),
        "--config",
        str(ROOT / "config"),
        "--response-model",
        str(model),
        "--by",
        "variant",
    )
    assert code == 0 and "simulated KPIs by variant" in stdout and "vs champion" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "hour"], "--by: error: 'hour' is not one of segment, variant"),
        (["--json"], "--json: error: give --by"),
    ],
)
def test_cli_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, stderr = _cli("simulate", str(_scenario(tmp_path)), *args)
    assert code == 2 and message in stderr


def test_a_bad_model_is_refused_at_its_line(tmp_path: Path) -> None:
    model = _model(tmp_path, "seed: 1\ndefault: {pay: 1.5}\nrules:\n  - {channels: [fax]}\n")
    code, _, stderr = _cli(
        "simulate", str(_scenario(tmp_path)), "--response-model", str(model), "--by", "segment"
    )
    assert code == 2, stderr
    assert f"{model}:2:" in stderr and "less than or equal to 1" in stderr
    assert f"{model}:4:" in stderr and "unknown channel 'fax'" in stderr
    assert "Traceback" not in stderr


def test_the_shipped_model_and_strategy_scenario_load() -> None:
    from orchestrator.simulation.response import load_response_model

    model = load_response_model(ROOT / "config" / "simulation" / "response_model.yaml")
    assert model.rules and model.daily_pay > 0
    scenario = load_scenario(
        ROOT / "config" / "simulation" / "strategy.yaml", config_dir=ROOT / "config"
    )
    assert len(scenario.accounts) == 3000
    assert {e.id for e in scenario.config.experiments.experiments} == {"m1-text-first"}
