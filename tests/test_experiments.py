"""Champion/challenger experiments (``experiments.yaml``): deterministic, sticky
assignment by debtor, the arm's steps in place of the stage's, a holdout that gets no
collection step, the champion again after the end date, and ``config check``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, config_check, line_of  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.config.models import Config, Experiment, Experiments
from orchestrator.core.experiments import draw, variant_of
from orchestrator.core.records import DecisionRecord
from orchestrator.testing import account, make_config, minimal_templates, simulate

EXPERIMENT: dict[str, Any] = {
    "id": "m1-test",
    "stage": "M1",
    "salt": "s1",
    "start": "2026-03-01",
    "end": "2026-03-10",
    "holdout": 0.2,
    "arms": [
        {"id": "champion", "share": 0.4},
        {
            "id": "challenger",
            "share": 0.4,
            "steps": [{"id": "x-sms", "channel": "sms", "template": "overdue", "every": "1d"}],
        },
    ],
}


def test_assignment_is_a_stable_hash_in_the_shares() -> None:
    exp = Experiment.model_validate(EXPERIMENT)
    debtors = [f"D-{i:05d}" for i in range(10_000)]
    first = [variant_of(exp, d) for d in debtors]
    assert first == [variant_of(exp, d) for d in debtors]  # sticky: the same every time
    counts = Counter(first)
    assert abs(counts["holdout"] / 10_000 - 0.2) < 0.02
    assert abs(counts["champion"] / 10_000 - 0.4) < 0.02
    assert abs(counts["challenger"] / 10_000 - 0.4) < 0.02
    # The draw is a hash of salt and debtor: a new salt draws again, independently.
    other = Experiment.model_validate({**EXPERIMENT, "salt": "s2"})
    moved = sum(a != variant_of(other, d) for a, d in zip(first, debtors, strict=True))
    assert 5_000 < moved < 7_000  # about 1 - (0.2² + 0.4² + 0.4²) = 64% move
    assert 0 <= draw("s1", "D-1") < 1 and draw("s1", "D-1") == draw("s1", "D-1")


def _config(experiment: dict[str, Any]) -> Config:
    config = make_config(
        stages=[
            {
                "id": "M1",
                "dpd": [1, 60],
                "steps": [
                    {"id": "m1-email", "channel": "email", "template": "reminder", "every": "1d"},
                    {
                        "id": "m1-notice",
                        "channel": "letter",
                        "template": "reminder_letter",
                        "on_dpd": [3],
                        "kind": "notice",
                    },
                ],
            }
        ]
    )
    exps = Experiments.model_validate({"experiments": [experiment]})
    return config.model_copy(update={"experiments": exps})


def _debtors_of(experiment: Experiment, n: int = 60) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for i in range(n):
        by.setdefault(variant_of(experiment, f"D{i}"), []).append(f"D{i}")
    return by


def _run(tmp_path: Path, config: Config, debtors: list[str]) -> list[DecisionRecord]:
    accounts = [
        account(
            f"{d}-{k}",
            debtor_id=d,
            due_date="2026-03-01",
            phone=f"+1212555{int(d[1:]):04d}",
            email=f"{d.lower()}@example.com",
        )
        for d in debtors
        for k in (1, 2)
    ]
    return simulate(
        config,
        accounts,
        start="2026-03-02T05:00:00Z",
        days=14,
        templates=minimal_templates(tmp_path / "t"),
    )


def test_each_arm_gets_its_steps_and_the_holdout_no_collection(tmp_path: Path) -> None:
    exp = Experiment.model_validate(EXPERIMENT)
    groups = _debtors_of(exp)
    picked = [groups["champion"][0], groups["challenger"][0], groups["holdout"][0]]
    records = _run(tmp_path, _config(EXPERIMENT), picked)
    champion, challenger, holdout = picked

    def of(debtor: str, until: str = "2026-03-10") -> set[tuple[str, str, str | None]]:
        return {
            (r.step, str(r.decision), r.variant)
            for r in records
            if r.debtor == debtor and r.local_time[:10] <= until
        }

    # Both accounts of a debtor in its arm, every day of the experiment.
    assert of(champion) == {
        ("m1-email", "sent", "champion"),
        ("m1-notice", "sent", "champion"),
    }
    assert of(challenger) == {("x-sms", "sent", "challenger")}
    # The holdout: the stage's steps planned and skipped (the report counts who they
    # were), except the notice, which the law may require.
    assert of(holdout) == {("m1-email", "skipped", "holdout"), ("m1-notice", "sent", "holdout")}
    assert {r.reason for r in records if r.variant == "holdout" and r.decision == "skipped"} == {
        "holdout"
    }
    assert {r.experiment for r in records if r.local_time[:10] <= "2026-03-10"} == {"m1-test"}


def test_after_the_end_date_everyone_is_back_on_the_champion(tmp_path: Path) -> None:
    """The experiment ends with 03-10: from 03-11 every debtor gets the stage's own steps,
    outside any experiment; no day has steps of both."""
    exp = Experiment.model_validate(EXPERIMENT)
    groups = _debtors_of(exp)
    picked = [groups["challenger"][0], groups["holdout"][0]]
    records = _run(tmp_path, _config(EXPERIMENT), picked)
    days: dict[tuple[str, str], set[str]] = {}
    for r in records:
        days.setdefault((r.account, r.local_time[:10]), set()).add(r.step)
    for (_, day), steps in days.items():
        if day <= "2026-03-10":
            assert "m1-email" not in steps or "x-sms" not in steps
        else:
            assert steps == {"m1-email"}, (day, steps)
    late = [r for r in records if r.local_time[:10] >= "2026-03-11"]
    assert late and {(r.experiment, r.variant, str(r.decision)) for r in late} == {
        (None, None, "sent")
    }


def test_the_experiment_keys_are_in_the_simulate_output(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"""
start: 2026-03-02T05:00:00Z
days: 2
templates: {ROOT / "templates"}
config:
  experiments:
    - id: e1
      stage: M1
      salt: x
      arms: [{{id: champion, share: 1.0}}]
accounts:
  - {{account_id: A1, name: Jane Doe, phone: "+12125550100", region: NY, country: US,
     currency: USD, balance: "50.00", due_date: 2026-03-01, locale: en-US, creditor: acme}}
"""
    )
    _register_all()
    result = CliRunner().invoke(app, ["simulate", str(scenario)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines and {(x["experiment"], x["variant"]) for x in lines} == {("e1", "champion")}


# --- config check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("stage: M1", "stage: M7", "stage: M7", "experiment m1-text-first: unknown stage 'M7'"),
        (
            "share: 0.45}",
            "share: 0.5}",
            "share: 0.5}",
            "the holdout and the arms' shares add up to 1.05, not 1",
        ),
        ("{id: m1x-email,", "{id: m1-email,", "{id: m1-email,", "duplicate step id 'm1-email'"),
        ("id: challenger", "id: holdout", "id: holdout", "arm id 'holdout' is taken"),
        ("end: 2027-06-30", "end: 2025-06-30", "end: 2025", "end 2025-06-30 is before start"),
        (
            "template: reminder, on_dpd: [8]",
            "template: remindr, on_dpd: [8]",
            "remindr",
            "not found",
        ),
    ],
)
def test_config_check_refuses_a_bad_experiment_at_its_line(
    cfg: Path, old: str, new: str, needle: str, message: str
) -> None:
    path = cfg / "experiments.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    code, out = config_check(cfg)
    assert code == 2, out
    assert message in out, out
    assert f"experiments.yaml:{line_of(path, needle)}:" in out, out
