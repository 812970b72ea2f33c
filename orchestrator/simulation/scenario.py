"""Scenario files (docs/scenarios.md) → a validated ``Scenario``, with ``FILE:LINE`` errors."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from orchestrator.clock import parse_instant
from orchestrator.config.loading import load_config
from orchestrator.config.models import Config
from orchestrator.config.yamlsafe import check_aliases
from orchestrator.core.account import Account
from orchestrator.core.bounds import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    instant_problem,
    plan_problem,
    promise_problem,
    settlement_problem,
)
from orchestrator.core.ebill import settlement_authority
from orchestrator.core.planner import dpd_on
from orchestrator.core.rules import AccountRules, RuleBook
from orchestrator.errors import InputError, Problem
from orchestrator.ingest.validation import parse_account
from orchestrator.simulation.events import EVENT_TYPES, ScenarioEvent
from orchestrator.simulation.simulate import Scenario

MAX_DAYS = 36600  # a century: the virtual clock's arithmetic stays in range


def _line(node: Any, key: str | None = None) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None and key in node:
            return int(lc.key(key)[0]) + 1
        return int(lc.line) + 1
    except Exception:  # noqa: BLE001 - line numbers are a courtesy
        return None


def parse_day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


# The fields each event type takes besides at, account and type (docs/scenarios.md); any
# other is an error, as unknown keys are in config and accounts (a "chanel:" typo must
# not quietly change what a scenario tests).
EVENT_FIELDS: dict[str, frozenset[str]] = {
    "promise": frozenset({"amount", "due"}),
    "settlement": frozenset({"amount", "due"}),
    "payment": frozenset({"amount", "payment_id"}),
    "plan": frozenset({"instalments"}),
    "inbound_sms": frozenset({"body"}),
    "delivery": frozenset({"channel", "status"}),
    "placed": frozenset({"agency"}),
    "agency_contact": frozenset({"channel"}),
    **{
        kind: frozenset({"channel"})
        for kind in ("conversation", "opt_out", "opt_in", "dispute", "complaint")
    },
    **{kind: frozenset() for kind in ("dispute_resolved", "cease", "click", "recalled")},
}


def _event_data(raw: dict[str, Any], kind: str) -> dict[str, Any]:
    data = {k: v for k, v in raw.items() if k not in ("at", "account", "type")}
    unknown = sorted(set(data) - EVENT_FIELDS.get(kind, frozenset()))
    if unknown:
        allowed = ", ".join(sorted(EVENT_FIELDS.get(kind, ()))) or "none"
        raise ValueError(f"unknown field {unknown[0]!r} (a {kind} event takes: {allowed})")
    if kind in ("promise", "settlement"):
        data["amount"] = Decimal(str(data["amount"]))
        data["due"] = parse_day(data["due"])
    elif kind == "payment":
        data["amount"] = Decimal(str(data["amount"]))
    elif kind == "plan":
        data["instalments"] = [
            {"due": parse_day(i["due"]), "amount": Decimal(str(i["amount"]))}
            for i in data["instalments"]
        ]
    elif kind in ("opt_out", "opt_in", "agency_contact") and "channel" not in data:
        raise KeyError("channel")
    elif kind == "placed" and not isinstance(data.get("agency"), str):
        raise KeyError("agency")
    return data


def _event_problems(
    source: str, events: list[ScenarioEvent], accounts: list[Account], config: Config
) -> list[Problem]:
    """Events the REST API would refuse, which therefore cannot happen in a simulation
    either: an instant out of range (whose date arithmetic would overflow), a promise or
    plan outside the policy's bounds (``orchestrator.core.bounds``), the balance then being
    the account's less the scenario's payments before the event."""
    book = RuleBook(config)
    by_id = {a.account_id: a for a in accounts}
    balance = {a.account_id: a.balance for a in accounts}
    found: list[Problem] = []
    for event in sorted(events, key=lambda e: e.at):
        problem = instant_problem(event.at, LATEST_INSTANT)
        if problem is None and event.type in ("promise", "plan"):
            rules = book.for_account(by_id[event.account])
            made_on = event.at.astimezone(rules.zones.primary).date()
            problem = (
                promise_problem(
                    rules.promise_bounds,
                    amount=event.data["amount"],
                    due=event.data["due"],
                    made_on=made_on,
                    balance=balance[event.account],
                )
                if event.type == "promise"
                else plan_problem(
                    rules.plan_bounds,
                    made_on=made_on,
                    instalments=[(i["due"], i["amount"]) for i in event.data["instalments"]],
                    balance=balance[event.account],
                )
            )
        elif problem is None and event.type == "settlement":
            account = by_id[event.account]
            rules = book.for_account(account)
            problem = _settlement_problem(config, rules, account, event, balance[event.account])
        elif problem is None and event.type == "payment":
            left = balance[event.account] - event.data["amount"]
            balance[event.account] = max(left, Decimal("0.00"))
        if problem is not None:
            found.append(
                Problem(
                    source, event.line, None, f"bad {event.type} event: {problem}", field=event.type
                )
            )
    return found


def _settlement_problem(
    config: Config, rules: AccountRules, account: Account, event: ScenarioEvent, balance: Decimal
) -> str | None:
    """A settlement event beyond what the account's creditor allows (as the API)."""
    made_on = event.at.astimezone(rules.zones.primary).date()
    dpd = dpd_on(account.due_date, made_on)
    stage = rules.cadences.stage_for(dpd)
    creditor = config.creditor(account.creditor)
    waivable, within = settlement_authority(
        creditor.settlement if creditor is not None else None,
        rules.settlement_cap,
        balance,
        (account.principal, account.interest, account.fees),
        (stage.id if stage is not None else None, dpd),
        rules.promise_bounds.max_days_ahead,
    )
    return settlement_problem(
        amount=event.data["amount"],
        due=event.data["due"],
        made_on=made_on,
        balance=balance,
        waivable=waivable,
        pay_within=within,
    )


class _Found:
    """The problems found in one scenario file, each at its line."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []

    def err(self, node: Any, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.source, _line(node, key), None, message, field=key))


def load_scenario(path: Path, *, config_dir: Path, templates_dir: Path | None = None) -> Scenario:
    source = str(path)
    doc = _read(path, source)
    found = _Found(source)
    known = {"start", "days", "config", "templates", "accounts", "sample", "events"}
    for key in doc:
        if key not in known:
            found.err(doc, key, f"unknown key {key!r}")
    start = _start(doc, found)
    days = _days(doc, found)
    config, templates = _config(doc, path, config_dir, templates_dir, found)
    accounts = _accounts(doc, found) + _sample(doc, start, found)
    events = _events(doc, {a.account_id for a in accounts}, found)
    problems = found.problems
    if config is not None:
        problems.extend(_event_problems(source, events, accounts, config))
    errors = [p for p in problems if p.level == "error"]
    if errors or config is None:
        raise InputError(errors or problems)
    events.sort(key=lambda e: e.at)  # stable: same-instant events keep file order
    return Scenario(start, days, config, templates, accounts, events, source)


def _read(path: Path, source: str) -> dict[Any, Any]:
    """The file's YAML mapping (with line numbers), refused whole if it is unreadable,
    an alias bomb, or not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
        bomb = check_aliases(text)
        if bomb is not None:
            raise InputError([Problem(source, bomb.line, bomb.column, bomb.message)])
        doc = YAML(typ="rt").load(text)
    except (OSError, YAMLError) as exc:
        raise InputError([Problem(source, None, None, f"cannot read scenario: {exc}")]) from exc
    if not isinstance(doc, dict):
        raise InputError([Problem(source, 1, 1, "a scenario is a mapping")])
    return doc


def _start(doc: dict[Any, Any], found: _Found) -> datetime:
    try:
        start = parse_instant(doc["start"])
    except (KeyError, ValueError) as exc:
        found.err(doc, "start", f"start: {exc}")
        start = EARLIEST_INSTANT
    out_of_range = instant_problem(start, LATEST_INSTANT)
    if out_of_range is not None:
        found.err(doc, "start", f"start: {out_of_range}")
        start = EARLIEST_INSTANT
    return start


def _days(doc: dict[Any, Any], found: _Found) -> int:
    days = doc.get("days", 30)
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_DAYS:
        found.err(doc, "days", f"days: expected a whole number of days from 0 to {MAX_DAYS}")
        days = 0
    return days


def _config(
    doc: dict[Any, Any], path: Path, config_dir: Path, templates_dir: Path | None, found: _Found
) -> tuple[Config | None, Path]:
    """The configuration with the scenario's overrides (a file named relative to the
    scenario, or the section inline), and the templates folder; ``None`` if invalid."""
    overrides = doc.get("config") or {}
    if not isinstance(overrides, dict):
        found.err(
            doc,
            "config",
            "config: expected a mapping of cadences/policy/channels/creditors/segments/experiments",
        )
        overrides = {}
    resolved: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, str):
            resolved[key] = str((path.parent / value).resolve())
        else:
            resolved[key] = value
    if "cadences" in resolved:
        # Segments and experiments name the stages and steps of the cadences: a scenario
        # with cadences of its own has the ones it gives, not those of the directory.
        for part in ("segments", "experiments"):
            resolved.setdefault(part, {})
    if doc.get("templates"):
        templates = (path.parent / str(doc["templates"])).resolve()
    else:
        templates = templates_dir or Path("templates")

    config = None
    try:
        config = load_config(
            config_dir, templates, overrides=resolved, override_source=found.source
        )
    except Exception as exc:  # ConfigError carries its problems
        found.problems.extend(
            getattr(exc, "problems", [Problem(found.source, None, None, str(exc))])
        )
    return config, templates


MAX_SAMPLE = 100_000


def _sample(doc: dict[Any, Any], start: datetime, found: _Found) -> list[Account]:
    """``sample: {accounts: N, seed: S}``: the demo's generated portfolio, due dates
    counted back from the start (ids ``U-000001``, ``C-000002``, ...)."""
    spec = doc.get("sample")
    if spec is None:
        return []
    if not isinstance(spec, dict) or set(spec) - {"accounts", "seed"}:
        found.err(doc, "sample", "sample: expected {accounts: N, seed: S}")
        return []
    n, seed = spec.get("accounts"), spec.get("seed", 7)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SAMPLE:
        found.err(spec, "accounts", f"sample.accounts: a whole number from 1 to {MAX_SAMPLE:,}")
        return []
    if not isinstance(seed, int) or isinstance(seed, bool):
        found.err(spec, "seed", "sample.seed: a whole number")
        return []
    from orchestrator.simulation.sample import generate_accounts

    return list(generate_accounts(n, today=start.date(), seed=seed))


def _accounts(doc: dict[Any, Any], found: _Found) -> list[Account]:
    """The valid accounts (a duplicate id is a problem, and kept: the run will not go)."""
    accounts = []
    ids: set[str] = set()
    for item in doc.get("accounts") or []:
        account, account_problems = parse_account(
            _plain(item), source=found.source, line=_line(item)
        )
        found.problems.extend(account_problems)
        if account is not None:
            if account.account_id in ids:
                found.err(item, "account_id", f"duplicate account_id {account.account_id!r}")
            ids.add(account.account_id)
            accounts.append(account)
    return accounts


def _events(doc: dict[Any, Any], ids: set[str], found: _Found) -> list[ScenarioEvent]:
    """The events of known types on known accounts, in file order."""
    events: list[ScenarioEvent] = []
    for item in doc.get("events") or []:
        raw = _plain(item)
        kind = raw.get("type")
        if kind not in EVENT_TYPES:
            found.err(
                item, "type", f"unknown event type {kind!r} (one of {', '.join(EVENT_TYPES)})"
            )
            continue
        if raw.get("account") not in ids:
            found.err(item, "account", f"event for unknown account {raw.get('account')!r}")
            continue
        try:
            at = parse_instant(raw["at"])
            data = _event_data(raw, kind)
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            found.err(item, None, f"bad {kind} event: {exc}")
            continue
        events.append(ScenarioEvent(at, str(raw["account"]), kind, data, _line(item)))
    return events
