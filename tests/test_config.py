"""Loading and checking the configuration directory (docs/configuration.md), and `config check`."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.config.loading import check_config, load_config
from orchestrator.config.models import Duration
from orchestrator.errors import ConfigError


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def errors(config_dir: Path, templates: Path | None = ROOT / "templates") -> list[str]:
    return [str(p) for p in check_config(config_dir, templates) if p.level == "error"]


def test_shipped_sample_is_valid_and_complete() -> None:
    config = load_config(ROOT / "config", ROOT / "templates")
    assert [s.id for s in config.cadences.stages] == ["M0", "M1", "M2", "M3", "M3+"]
    assert {s.channel for st in config.cadences.stages for s in st.steps} == {
        "sms",
        "voice",
        "email",
        "letter",
    }
    assert all(c.adapter == "outbox" for c in config.channels.values())
    assert {"US-MA", "US-WA", "CN"} <= set(config.policy.jurisdictions)
    assert {"acme", "huaxia"} <= set(config.creditors.creditors)
    regf = next(limit for limit in config.policy.limits if limit.id == "regf-calls")
    assert (regf.max, regf.window, regf.scope) == (7, Duration(7, "d"), "account")
    assert check_config(ROOT / "config", ROOT / "templates") == []


def test_unknown_key_is_reported_at_its_line_with_a_suggestion(cfg: Path) -> None:
    path = cfg / "cadences.yaml"
    replace(path, "{id: m1-email, channel: email,", "{id: m1-email, chanel: email,")
    found = errors(cfg)
    line = line_of(path, "chanel: email")
    assert any(
        e.startswith(f"{path}:{line}:")
        and "chanel" in e
        and "unknown key" in e
        and "did you mean 'channel'" in e
        for e in found
    ), found


def test_all_problems_are_reported_at_once(cfg: Path) -> None:
    replace(cfg / "cadences.yaml", "every: 5d", "every: 5 days")
    replace(cfg / "policy.yaml", 'preferred_time: "10:00"', 'preferred_time: "25:00"')
    replace(cfg / "policy.yaml", "window: 5m", "window: soon")
    replace(cfg / "creditors.yaml", "letter_deadline: 7d", "letter_deadline: 7d\n    colour: red")
    found = errors(cfg)
    cad, pol, cred = (str(cfg / f"{n}.yaml") for n in ("cadences", "policy", "creditors"))
    assert any(
        e.startswith(f"{cad}:{line_of(cfg / 'cadences.yaml', '5 days')}:")
        and "invalid duration" in e
        for e in found
    ), found
    assert any(
        e.startswith(f"{pol}:{line_of(cfg / 'policy.yaml', '25:00')}:")
        and "invalid time of day" in e
        for e in found
    ), found
    assert any(e.startswith(f"{pol}:{line_of(cfg / 'policy.yaml', 'soon')}:") for e in found)
    assert any(
        e.startswith(f"{cred}:{line_of(cfg / 'creditors.yaml', 'colour')}:") for e in found
    ), found
    with pytest.raises(ConfigError) as raised:
        load_config(cfg, ROOT / "templates")
    assert len(raised.value.errors) >= 4


def test_overlapping_stages_are_errors_and_gaps_warnings(cfg: Path) -> None:
    path = cfg / "cadences.yaml"
    replace(path, "dpd: [31, 60]", "dpd: [25, 60]")
    found = errors(cfg)
    assert any(
        f":{line_of(path, 'dpd: [25, 60]')}:" in e and "overlaps stage M1" in e for e in found
    ), found

    replace(path, "dpd: [25, 60]", "dpd: [35, 60]")
    problems = check_config(cfg, ROOT / "templates")
    assert [p for p in problems if p.level == "error"] == []
    gaps = [p for p in problems if p.level == "warning"]
    assert any("31 to 34" in p.message for p in gaps), gaps
    load_config(cfg, ROOT / "templates")  # warnings do not stop loading


def test_duplicate_ids(cfg: Path) -> None:
    replace(cfg / "cadences.yaml", "{id: m2-email,", "{id: m1-email,")
    replace(cfg / "policy.yaml", "{id: sms-weekly,", "{id: sms-daily,")
    found = errors(cfg)
    assert any("duplicate step id 'm1-email'" in e for e in found), found
    assert any("duplicate limit id 'sms-daily'" in e for e in found), found


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("on_dpd: [3, 10, 17, 24],", "", "exactly one of on_dpd or every"),
        ("every: 5d,", "every: 5d, on_dpd: [31],", "exactly one of on_dpd or every"),
    ],
)
def test_step_needs_exactly_one_schedule(cfg: Path, old: str, new: str, message: str) -> None:
    replace(cfg / "cadences.yaml", old, new)
    assert any(message in e for e in errors(cfg))


def test_unknown_channel_adapter_and_template(cfg: Path) -> None:
    replace(cfg / "cadences.yaml", "{id: m1-call, channel: voice,", "{id: m1-call, channel: fax,")
    replace(cfg / "cadences.yaml", "template: demand_letter", "template: demand_leter")
    replace(cfg / "channels.yaml", "letter: {adapter: outbox", "letter: {adapter: carrier_pigeon")
    found = errors(cfg)
    cad = cfg / "cadences.yaml"
    assert any(
        f"{cad}:{line_of(cad, 'channel: fax')}:" in e and "unknown channel 'fax'" in e
        for e in found
    ), found
    assert any(f"{cad}:{line_of(cad, 'demand_leter')}:" in e and "not found" in e for e in found), (
        found
    )
    assert any("unknown adapter 'carrier_pigeon'" in e for e in found), found


def test_adapter_options_are_checked(cfg: Path) -> None:
    replace(
        cfg / "channels.yaml",
        "sms:    {adapter: outbox, dir: var/outbox, cost: 0.0079, currency: USD}",
        "sms:    {adapter: outbox, folder: var/outbox, cost: 0.0079, currency: USD}",
    )
    found = errors(cfg)
    assert any("sms" in e and "folder" in e for e in found), found


def test_limits_pauses_and_zones_naming_unknown_things(cfg: Path) -> None:
    pol = cfg / "policy.yaml"
    replace(pol, "{id: email-daily, channels: [email]", "{id: email-daily, channels: [emial]")
    replace(
        pol,
        "after: complaint, channels: [voice, sms, email]",
        "after: complaint, channels: [voice, sms, pigeon]",
    )
    replace(pol, "default: America/New_York", "default: America/Springfield")
    found = errors(cfg)
    assert any(
        f":{line_of(pol, 'emial')}:" in e
        and "unknown channel 'emial'" in e
        and "did you mean 'email'" in e
        for e in found
    ), found
    assert any("unknown channel 'pigeon'" in e for e in found), found
    assert any(
        f":{line_of(pol, 'Springfield')}:" in e and "unknown time zone" in e for e in found
    ), found


def test_creditor_policy_profile_must_exist(cfg: Path) -> None:
    replace(cfg / "creditors.yaml", "policy: debt-collector", "policy: debt-colector")
    assert any("unknown policy profile 'debt-colector'" in e for e in errors(cfg))


def test_environment_interpolation(cfg: Path) -> None:
    replace(cfg / "creditors.yaml", 'phone: "+18005550100"', 'phone: "${ACME_PHONE}"')
    config = load_config(cfg, env={"ACME_PHONE": "+18005550111"})
    assert config.creditors.creditors["acme"].phone == "+18005550111"
    with pytest.raises(ConfigError) as raised:
        load_config(cfg, env={})
    (problem,) = [p for p in raised.value.errors if "ACME_PHONE" in p.message]
    assert problem.line == line_of(cfg / "creditors.yaml", "${ACME_PHONE}")
    assert "environment variable ACME_PHONE is not set" in problem.message


def test_invalid_yaml_names_the_line(cfg: Path) -> None:
    path = cfg / "policy.yaml"
    replace(path, "suppression:\n", "suppression: [\n")
    (problem,) = [p for p in check_config(cfg) if p.level == "error"]
    assert problem.path == str(path) and problem.line is not None
    assert "invalid YAML" in problem.message


def test_missing_required_file(cfg: Path) -> None:
    (cfg / "cadences.yaml").unlink()
    assert any("missing cadences.yaml" in e for e in errors(cfg))


def test_scenario_overrides_replace_whole_parts(cfg: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "policy.yaml").write_text("preferred_time: '11:00'\n", encoding="utf-8")
    config = load_config(
        cfg,
        overrides={"policy": str(other), "creditors": {"creditors": {}}},
    )
    assert config.policy.preferred_time.hour == 11
    assert config.creditors.creditors == {}
    assert [s.id for s in config.cadences.stages] == ["M0", "M1", "M2", "M3", "M3+"]


def test_cli_config_check(cfg: Path) -> None:
    _register_all()
    runner = CliRunner()
    ok = runner.invoke(
        app, ["config", "check", "--config", str(cfg), "--templates", str(ROOT / "templates")]
    )
    assert ok.exit_code == 0, ok.output
    replace(cfg / "policy.yaml", "max: 7, window: 7d", "max: seven, window: 7d")
    bad = runner.invoke(
        app, ["config", "check", "--config", str(cfg), "--templates", str(ROOT / "templates")]
    )
    assert bad.exit_code == 2
    line = line_of(cfg / "policy.yaml", "max: seven")
    assert f"{cfg / 'policy.yaml'}:{line}:" in bad.stdout
    assert ": error: " in bad.stdout and "max" in bad.stdout


def test_a_negative_channel_cost_is_an_error(cfg: Path) -> None:
    replace(cfg / "channels.yaml", "cost: 0.85", "cost: -0.85")
    found = errors(cfg)
    assert any("channels.yaml" in e and "cost" in e for e in found), found


def test_a_channel_cost_currency_is_an_iso_code(cfg: Path) -> None:
    replace(cfg / "channels.yaml", "cost: 0.85, currency: USD", "cost: 0.85, currency: usd")
    found = errors(cfg)
    assert any("channels.yaml" in e and "currency" in e for e in found), found


def test_a_voice_channels_pay_link_template_must_exist(cfg: Path, tmp_path: Path) -> None:
    """Pressing 1 on a call texts the ``sms`` template named by ``pay_link_template``."""
    channels = cfg / "channels.yaml"
    replace(
        channels,
        "voice:  {adapter: outbox, dir: var/outbox, cost: 0.014, currency: USD}",
        'voice:  {adapter: twilio_voice, from: "+15005550006", cost: 0.014, currency: USD}',
    )
    assert errors(cfg) == []  # the default, sms/pay_link, ships
    replace(
        channels,
        'from: "+15005550006", cost: 0.014, currency: USD}',
        'from: "+15005550006", cost: 0.014, currency: USD,\n         pay_link_template: pay_lnk}',
    )
    found = errors(cfg)
    line = line_of(channels, "pay_link_template: pay_lnk")
    assert any(f"{channels}:{line}:" in e and "pay_link_template 'pay_lnk'" in e for e in found), (
        found
    )
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    for path in (templates / "sms").glob("pay_link*"):
        path.unlink()
    replace(channels, ",\n         pay_link_template: pay_lnk}", "}")
    found = errors(cfg, templates)
    assert any("voice: pay_link_template 'pay_link': no sms template" in e for e in found), found


def test_promise_and_plan_bounds_are_checked_at_their_lines(cfg: Path) -> None:
    path = cfg / "policy.yaml"
    replace(path, "max_days_ahead: 30", "max_days_ahead: -1")
    replace(path, 'min_share_of_balance: "0.02"', 'min_share_of_balance: "1.5"')
    replace(path, "max_instalments: 60", "max_instalment: 60")
    replace(path, 'plans: {min_instalment: "100.00"}', 'plans: {min_instalment: "lots"}')
    found = errors(cfg)
    for needle, words in (
        ("max_days_ahead: -1", "greater than or equal to 0"),
        ('"1.5"', "less than or equal to 1"),
        ("max_instalment: 60", "did you mean 'max_instalments'"),
        ('min_instalment: "lots"', "plans.min_instalment: Input should be a valid decimal"),
    ):
        line = line_of(path, needle)
        assert any(e.startswith(f"{path}:{line}:") and words in e for e in found), (needle, found)


def test_an_overlay_replaces_only_the_bounds_it_gives() -> None:
    from orchestrator.core.account import Account
    from orchestrator.core.rules import RuleBook

    config = load_config(ROOT / "config", ROOT / "templates")
    book = RuleBook(config)

    def account(country: str, zone: str) -> Account:
        return Account(
            account_id="A",
            debtor_id="D",
            name="N",
            currency="USD",
            balance=Decimal("1.00"),
            due_date=date(2026, 1, 1),
            country=country,
            timezone=zone,
        )

    us = book.for_account(account("US", "America/New_York"))
    cn = book.for_account(account("CN", "Asia/Shanghai"))
    assert (us.promise_bounds.min_amount, us.promise_bounds.min_share_of_balance) == (
        Decimal("25.00"),
        Decimal("0.02"),
    )
    assert (cn.promise_bounds.min_amount, cn.promise_bounds.min_share_of_balance) == (
        Decimal("100.00"),
        Decimal("0.10"),
    )
    assert cn.promise_bounds.max_days_ahead == us.promise_bounds.max_days_ahead == 30
    assert (cn.plan_bounds.min_instalment, cn.plan_bounds.max_instalments) == (
        Decimal("100.00"),
        60,
    )
