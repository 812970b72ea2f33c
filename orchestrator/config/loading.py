"""Load the configuration directory (docs/configuration.md) into a checked ``Config``.

Every problem is collected, not just the first, and each names its place as
``PATH:LINE:COL``: the YAML is read with ruamel's round-trip loader, which remembers
where each key and item came from. Loading has three passes:

1. read each file (or a scenario's inline override) and interpolate ``${ENV}``;
2. validate each part against its pydantic model (unknown keys, durations, times...);
3. check what one model cannot see alone: overlapping stages, duplicate ids, unknown
   channels, adapters and time zones, missing templates, unknown policy profiles;
   ``check_config`` also lints the templates the steps name (``orchestrator.content.template_lint``).

Nothing is returned unless there is no error; warnings (a gap between stages) ride
along in ``check_config``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from orchestrator.config.models import (
    CHANNELS,
    HOLDOUT,
    Cadences,
    ChannelConfig,
    Config,
    Creditors,
    Duration,
    Experiments,
    Policy,
    SegmentFilter,
    Segments,
    Stage,
    Step,
    Webhooks,
)
from orchestrator.config.yamlsafe import check_aliases
from orchestrator.errors import ConfigError, Problem

PARTS = (
    "cadences",
    "policy",
    "channels",
    "creditors",
    "segments",
    "experiments",
    "webhooks",
)
# Parts whose file holds one list under the part's own name: inline in a scenario, the
# list may be given alone (``config: {segments: [...]}``).
LISTS = ("segments", "experiments")
REQUIRED = ("cadences", "channels")  # policy and creditors have safe defaults
_MODELS: dict[str, Any] = {
    "cadences": TypeAdapter(Cadences),
    "policy": TypeAdapter(Policy),
    "channels": TypeAdapter(dict[str, ChannelConfig]),
    "creditors": TypeAdapter(Creditors),
    "segments": TypeAdapter(Segments),
    "experiments": TypeAdapter(Experiments),
    "webhooks": TypeAdapter(Webhooks),
}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
_RATE = re.compile(r"^\s*\d+(\.\d+)?\s*/\s*(s|m|h)\s*$")


@dataclass
class _Source:
    """One part of the configuration and where it came from."""

    part: str
    path: str
    node: Any  # ruamel CommentedMap / CommentedSeq / scalar


# --- positions -----------------------------------------------------------------------------


def _pos(node: Any, key: Any = None, *, value: bool = False) -> tuple[int | None, int | None]:
    """1-based (line, column) of ``node`` itself, or of its key/item ``key``."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None, None
    try:
        if key is None:
            return lc.line + 1, lc.col + 1
        if isinstance(node, list):
            line, col = lc.item(key)
        elif value:
            line, col = lc.value(key)
        else:
            line, col = lc.key(key)
        return line + 1, col + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return lc.line + 1, lc.col + 1


def _locate(node: Any, loc: tuple[Any, ...]) -> tuple[int | None, int | None]:
    """Follow a pydantic error location through the YAML tree as far as it goes.

    Parts that are not in the tree (union member tags such as ``HoursWindow``) are
    skipped, so the answer is the deepest place the document has.
    """
    line, col = _pos(node)
    for part in loc:
        if isinstance(node, dict) and part in node:
            line, col = _pos(node, part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line, col = _pos(node, part)
            node = node[part]
    return line, col


def _node_at(node: Any, *path: Any) -> Any:
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


# --- pass 1: read --------------------------------------------------------------------------


def _read_yaml(path: Path, problems: list[Problem]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(str(path), None, None, f"cannot read: {exc.strerror or exc}"))
        return None
    bomb = check_aliases(text)
    if bomb is not None:
        problems.append(Problem(str(path), bomb.line, bomb.column, bomb.message))
        return None
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        problems.append(Problem(str(path), line, col, f"invalid YAML: {exc.problem}"))
        return None
    except YAMLError as exc:
        problems.append(Problem(str(path), None, None, f"invalid YAML: {exc}"))
        return None
    return {} if doc is None else doc


def _interpolate(
    node: Any, path: str, env: Mapping[str, str], problems: list[Problem], where: Any = None
) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string value, in place."""

    def substitute(text: str, container: Any, key: Any) -> str:
        def one(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            line, col = _pos(container, key, value=True)
            problems.append(
                Problem(path, line, col, f"environment variable {name} is not set", field=name)
            )
            return ""

        return _ENV.sub(one, text)

    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if isinstance(value, str) and "${" in value:
                node[key] = substitute(value, node, key)
            else:
                _interpolate(value, path, env, problems)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str) and "${" in value:
                node[index] = substitute(value, node, index)
            else:
                _interpolate(value, path, env, problems)
    return node


def _sources(
    config_dir: Path,
    overrides: Mapping[str, Any] | None,
    override_source: str | None,
    problems: list[Problem],
) -> dict[str, _Source]:
    overrides = overrides or {}
    origin = override_source or "<overrides>"
    for key in overrides:
        if key not in PARTS:
            line, col = _pos(overrides, key)
            problems.append(
                Problem(
                    origin,
                    line,
                    col,
                    f"config: unknown part {key!r} (one of {', '.join(PARTS)})",
                    field=str(key),
                )
            )
    found: dict[str, _Source] = {}
    for part in PARTS:
        override = overrides.get(part)
        if part in LISTS and isinstance(override, list):
            override = {part: override}
        if isinstance(override, Mapping):
            found[part] = _Source(part, origin, override)
            continue
        directory = Path(override) if isinstance(override, str | Path) else Path(config_dir)
        path = directory / f"{part}.yaml"
        if not path.exists():
            if part in REQUIRED:
                problems.append(Problem(str(path), None, None, f"missing {part}.yaml"))
            continue
        doc = _read_yaml(path, problems)
        if doc is not None:
            found[part] = _Source(part, str(path), doc)
    return found


# --- pass 2: validate each part ------------------------------------------------------------


def _message(error: Mapping[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if not _is_tag(p)]
    where = ".".join(loc)
    kind = error.get("type")
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "missing":
        return f"{where}: required"
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _is_tag(part: Any) -> bool:
    """Union member tags pydantic puts into locations, e.g. ``HoursWindow``, ``literal['any']``."""
    return isinstance(part, str) and (
        part[:1].isupper() or part.startswith(("literal[", "function-"))
    )


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_fields(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed where an unknown key was found, for a 'did you mean'."""
    current = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        args = getattr(current, "__args__", None)
        if args and not (isinstance(current, type) and issubclass(current, BaseModel)):
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            current = models[0] if models else current
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


_ROOTS: dict[str, Any] = {
    "cadences": Cadences,
    "policy": Policy,
    "channels": ChannelConfig,
    "creditors": Creditors,
    "segments": Segments,
    "experiments": Experiments,
    "webhooks": Webhooks,
}


def _validate(source: _Source, problems: list[Problem]) -> Any:
    adapter = _MODELS[source.part]
    try:
        return adapter.validate_python(_plain(source.node))
    except ValidationError as exc:
        seen: set[str] = set()
        for error in exc.errors():
            loc = tuple(error.get("loc", ()))
            text = _message(cast(dict[str, Any], error))
            if text in seen:
                continue
            seen.add(text)
            if error.get("type") == "extra_forbidden":
                clean = tuple(p for p in loc if not _is_tag(p))
                root = _ROOTS[source.part]
                if source.part == "channels":
                    clean = clean[1:]
                text += _suggest(str(clean[-1]) if clean else "", _model_fields(root, clean))
            line, col = _locate(source.node, loc)
            problems.append(
                Problem(
                    source.path,
                    line,
                    col,
                    f"{source.part}: {text}",
                    field=".".join(str(p) for p in loc),
                )
            )
        return None


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


# --- pass 3: cross-checks ------------------------------------------------------------------


class _Checker:
    def __init__(self, sources: dict[str, _Source], problems: list[Problem]):
        self.sources = sources
        self.problems = problems

    def add(
        self,
        part: str,
        path: tuple[Any, ...],
        message: str,
        *,
        level: str = "error",
        value: bool = True,
    ) -> None:
        source = self.sources.get(part)
        if source is None:
            self.problems.append(Problem(f"{part}.yaml", None, None, message, level=level))
            return
        if path:
            parent = _node_at(source.node, *path[:-1])
            line, col = _pos(parent, path[-1], value=value)
            if line is None:
                line, col = _locate(source.node, path)
        else:
            line, col = _pos(source.node)
        self.problems.append(
            Problem(
                source.path,
                line,
                col,
                f"{part}: {message}",
                level=level,
                field=".".join(str(p) for p in path),
            )
        )


def _check_cadences(
    c: _Checker, cadences: Cadences, channels: set[str] | None, templates_dir: Path | None
) -> None:
    ids = _check_stage_ids(c, cadences)
    _check_stage_ranges(c, cadences)
    step_ids = _check_steps(c, cadences, channels, templates_dir)
    _check_triggers(c, cadences, ids, step_ids, channels, templates_dir)


# A stage may start before the due date (negative DPD: pre-due reminders), within reason.
MAX_DAYS_BEFORE_DUE = 366


def _check_stage_ids(c: _Checker, cadences: Cadences) -> dict[str, tuple[Any, ...]]:
    """Each stage's id once and its DPD range not empty; the ids, with where they are."""
    ids: dict[str, tuple[Any, ...]] = {}
    for index, stage in enumerate(cadences.stages):
        where = ("stages", index, "id")
        if stage.id in ids:
            c.add("cadences", where, f"duplicate stage id {stage.id!r}")
        ids[stage.id] = where
        lo, hi = stage.dpd
        if hi is not None and hi < lo:
            c.add(
                "cadences",
                ("stages", index, "dpd"),
                f"stage {stage.id}: dpd range [{lo}, {hi}] is empty",
            )
        elif lo < -MAX_DAYS_BEFORE_DUE:
            c.add(
                "cadences",
                ("stages", index, "dpd"),
                f"stage {stage.id}: dpd {lo} starts more than {MAX_DAYS_BEFORE_DUE} days "
                "before the due date",
            )
    return ids


def _check_stage_ranges(c: _Checker, cadences: Cadences) -> None:
    """Stages in DPD order neither overlap nor (a warning) leave a gap between them."""
    stages = sorted(enumerate(cadences.stages), key=lambda item: item[1].dpd[0])
    previous: tuple[int, Stage] | None = None
    for index, stage in stages:
        if previous is not None:
            p_stage = previous[1]
            p_hi = p_stage.dpd[1]
            lo = stage.dpd[0]
            if p_hi is None or lo <= p_hi:
                c.add(
                    "cadences",
                    ("stages", index, "dpd"),
                    f"stage {stage.id}: dpd range {list(stage.dpd)} overlaps stage "
                    f"{p_stage.id} {list(p_stage.dpd)}",
                )
            elif lo > p_hi + 1:
                c.add(
                    "cadences",
                    ("stages", index, "dpd"),
                    f"stage {stage.id}: no stage covers dpd {p_hi + 1} to {lo - 1} "
                    f"(gap after {p_stage.id}); those accounts get no cadence",
                    level="warning",
                )
        if previous is None or previous[1].dpd[1] is not None:
            previous = (index, stage)


def _check_steps(
    c: _Checker, cadences: Cadences, channels: set[str] | None, templates_dir: Path | None
) -> dict[str, str]:
    """Every stage's steps; the step ids, with the stage each is in."""
    step_ids: dict[str, str] = {}
    for s_index, stage in enumerate(cadences.stages):
        for index, step in enumerate(stage.steps):
            base: tuple[Any, ...] = ("stages", s_index, "steps", index)
            if step.id in step_ids:
                c.add(
                    "cadences",
                    (*base, "id"),
                    f"duplicate step id {step.id!r} (also in {step_ids[step.id]})",
                )
            step_ids[step.id] = f"stage {stage.id}"
            _check_step_timing(c, base, stage, step)
            _check_send(c, base, step.id, step.channel, step.template, channels, templates_dir)
    return step_ids


def _check_step_timing(
    c: _Checker, base: tuple[Any, ...], stage: Stage, step: Step, *, part: str = "cadences"
) -> None:
    """One of on_dpd or every, whole days, DPDs inside the stage, a positive expiry."""
    if (step.on_dpd is None) == (step.every is None):
        c.add(part, base, f"step {step.id}: give exactly one of on_dpd or every", value=False)
    if step.every is not None and (step.every.unit != "d" or step.every.amount < 1):
        c.add(
            part,
            (*base, "every"),
            f"step {step.id}: every must be a whole number of days (e.g. 3d)",
        )
    for n, dpd in enumerate(step.on_dpd or []):
        if not stage.contains(dpd):
            c.add(
                part,
                (*base, "on_dpd", n),
                f"step {step.id}: dpd {dpd} is outside stage {stage.id} "
                f"{list(stage.dpd)}; it never fires",
                level="warning",
            )
    if step.expires.amount <= 0:
        c.add(part, (*base, "expires"), f"step {step.id}: expires must be positive")


def _check_triggers(
    c: _Checker,
    cadences: Cadences,
    ids: dict[str, tuple[Any, ...]],
    step_ids: dict[str, str],
    channels: set[str] | None,
    templates_dir: Path | None,
) -> None:
    for index, trigger in enumerate(cadences.triggers):
        base = ("triggers", index)
        if trigger.id in step_ids:
            c.add(
                "cadences",
                (*base, "id"),
                f"duplicate step id {trigger.id!r} (also in {step_ids[trigger.id]})",
            )
        step_ids[trigger.id] = "triggers"
        for n, name in enumerate(trigger.stages or []):
            if name not in ids:
                c.add(
                    "cadences",
                    (*base, "stages", n),
                    f"trigger {trigger.id}: unknown stage {name!r}{_suggest(name, list(ids))}",
                )
        _check_send(c, base, trigger.id, trigger.channel, trigger.template, channels, templates_dir)


def _check_send(
    c: _Checker,
    base: tuple[Any, ...],
    step_id: str,
    channel: str,
    template: str,
    channels: set[str] | None,
    templates_dir: Path | None,
    *,
    part: str = "cadences",
) -> None:
    if channels is not None and channel not in channels:
        c.add(
            part,
            (*base, "channel"),
            f"step {step_id}: unknown channel {channel!r}: not in channels.yaml"
            f"{_suggest(channel, sorted(channels))}",
        )
        return
    if templates_dir is None:
        return
    from orchestrator.content.rendering import TemplateRenderer

    renderer = TemplateRenderer(templates_dir)
    if renderer.resolve(channel, template, None) is not None:
        return
    folder = Path(templates_dir) / channel
    localized = sorted(folder.glob(f"{template}.*.j2")) if folder.is_dir() else []
    if localized:
        c.add(
            part,
            (*base, "template"),
            f"step {step_id}: template {template!r} has no default file for locales "
            f"without their own (only {', '.join(p.name for p in localized)})",
            level="warning",
        )
        return
    c.add(
        part,
        (*base, "template"),
        f"step {step_id}: template {template!r} not found for channel {channel} "
        f"(expected {folder / template}.<locale>.<ext>.j2)",
    )


def _lint_steps(c: _Checker, config: Config, templates_dir: Path) -> None:
    """A step whose template ``outreach templates lint`` rejects is an error at the step's
    ``template`` line. Each (channel, template) is linted once, and only its own files."""
    from orchestrator.content.template_lint import lint_templates

    sends: list[tuple[tuple[Any, ...], str, str, str]] = [
        (("stages", s, "steps", n), step.id, step.channel, step.template)
        for s, stage in enumerate(config.cadences.stages)
        for n, step in enumerate(stage.steps)
    ]
    sends += [
        (("triggers", n), t.id, t.channel, t.template)
        for n, t in enumerate(config.cadences.triggers)
    ]
    done: dict[str, list[Problem]] = {}
    for base, step_id, channel, template in sends:
        key = f"{channel}/{template}"
        if key not in done:
            if not (templates_dir / channel).is_dir():
                done[key] = []
                continue
            found = lint_templates(templates_dir, config, [key])
            done[key] = [
                p
                for p in found
                if p.level == "error" and not p.message.startswith("no template named")
            ]
        for problem in done[key]:
            c.add(
                "cadences",
                (*base, "template"),
                f"step {step_id}: template {template!r} fails `outreach templates lint`: "
                f"{problem.path}:{problem.line or 1}: {problem.message}",
            )


def _check_zone(c: _Checker, part: str, path: tuple[Any, ...], zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        c.add(part, path, f"unknown time zone {zone!r}")


def _check_task_stages(c: _Checker, policy: Policy, cadences: Cadences) -> None:
    """The stages of the ``unreached`` task rule are stages of cadences.yaml: a warning
    (a typo makes a rule that never fires for that stage, but harms no one, and a
    scenario with cadences of its own keeps the shipped policy's rule)."""
    unreached = policy.tasks.rules.unreached
    ids = [stage.id for stage in cadences.stages]
    for n, name in enumerate(unreached.stages if unreached else []):
        if name not in ids:
            c.add(
                "policy",
                ("tasks", "rules", "unreached", "stages", n),
                f"tasks.rules.unreached: unknown stage {name!r}{_suggest(name, ids)}; "
                "the rule never fires there",
                level="warning",
            )


def _check_stage_names(c: _Checker, parts: Mapping[str, Any]) -> None:
    """The stages other files name (task rules, settlements) are cadences.yaml's."""
    if "cadences" in parts and "policy" in parts:
        _check_task_stages(c, parts["policy"], parts["cadences"])
    if "cadences" in parts and "creditors" in parts:
        _check_settlement_stages(c, parts["creditors"], parts["cadences"])


def _check_settlement_stages(c: _Checker, creditors: Creditors, cadences: Cadences) -> None:
    """The stages of each creditor's ``settlement`` are stages of cadences.yaml: a
    warning, as for task rules (a typo offers no settlement there, and harms no one)."""
    ids = [stage.id for stage in cadences.stages]
    for key, creditor in creditors.creditors.items():
        terms = creditor.settlement
        for n, name in enumerate(terms.stages or [] if terms is not None else []):
            if name not in ids:
                c.add(
                    "creditors",
                    ("creditors", key, "settlement", "stages", n),
                    f"creditor {key}: settlement: unknown stage {name!r}{_suggest(name, ids)}; "
                    "no settlement is offered there",
                    level="warning",
                )


def _check_policy(c: _Checker, policy: Policy, known: set[str]) -> None:
    _check_zone(c, "policy", ("timezone", "default"), policy.timezone.default)
    limit_ids: set[str] = set()
    pause_ids: set[str] = set()

    def channel_list(path: tuple[Any, ...], names: list[str], what: str) -> None:
        _check_channel_names(c, path, names, what, known)

    def overlay(
        prefix: tuple[Any, ...],
        hours: Any,
        limits: Any,
        pauses: Any,
        holidays: Any,
    ) -> None:
        for key in hours or {}:
            if key != "default" and key not in known:
                c.add(
                    "policy",
                    (*prefix, "hours", key),
                    f"hours: unknown channel {key!r}{_suggest(key, sorted(known))}",
                    value=False,
                )
            spec = hours[key]
            if spec != "any" and spec.start >= spec.end:
                c.add(
                    "policy",
                    (*prefix, "hours", key),
                    f"hours.{key}: start {spec.start:%H:%M} is not before end",
                    value=True,
                )
        for n, limit in enumerate(limits):
            if limit.id in limit_ids:
                c.add("policy", (*prefix, "limits", n, "id"), f"duplicate limit id {limit.id!r}")
            limit_ids.add(limit.id)
            if limit.window.amount <= 0:
                c.add(
                    "policy",
                    (*prefix, "limits", n, "window"),
                    f"limit {limit.id}: window must be positive",
                )
            channel_list((*prefix, "limits", n, "channels"), limit.channels, f"limit {limit.id}")
        for n, pause in enumerate(pauses):
            if pause.id in pause_ids:
                c.add("policy", (*prefix, "pauses", n, "id"), f"duplicate pause id {pause.id!r}")
            pause_ids.add(pause.id)
            channel_list((*prefix, "pauses", n, "channels"), pause.channels, f"pause {pause.id}")
        if holidays is not None:
            channel_list((*prefix, "holidays", "channels"), holidays.channels, "holidays")
            _check_holidays(c, (*prefix, "holidays"), holidays)

    overlay((), policy.hours, policy.limits, policy.pauses, policy.holidays)
    for place, rules in policy.jurisdictions.items():
        if not _PLACE.match(place):
            c.add(
                "policy",
                ("jurisdictions", place),
                f"jurisdiction {place!r}: expected an ISO 3166 code such as US, CN or US-MA",
                value=False,
            )
        overlay(("jurisdictions", place), rules.hours, rules.limits, rules.pauses, rules.holidays)
    for name, rules in policy.profiles.items():
        overlay(("profiles", name), rules.hours, rules.limits, rules.pauses, rules.holidays)
    for n, rule in enumerate(policy.content):
        channel_list(("content", n, "channels"), rule.channels, f"content rule {rule.id}")
    _check_budgets(c, policy, known)


def _check_validation_notices(
    c: _Checker,
    policy: Policy,
    cadences: Cadences | None,
    channels: set[str] | None,
    templates_dir: Path | None,
) -> None:
    """Each ``validation_notice`` (base policy, jurisdictions, profiles): its channel is
    configured and its template found; no step of the cadences takes its step id."""
    from orchestrator.core.validation import VALIDATION_STEP

    notices: list[tuple[tuple[Any, ...], Any]] = [
        (("validation_notice",), policy.validation_notice)
    ]
    for group in ("jurisdictions", "profiles"):
        for key, overlay in getattr(policy, group).items():
            notices.append(((group, key, "validation_notice"), overlay.validation_notice))
    notices = [(path, notice) for path, notice in notices if notice is not None]
    for path, notice in notices:
        _check_send(
            c,
            path,
            VALIDATION_STEP,
            notice.channel,
            notice.template,
            channels,
            templates_dir,
            part="policy",
        )
    if notices and cadences is not None:
        ids = [step.id for stage in cadences.stages for step in stage.steps]
        ids += [trigger.id for trigger in cadences.triggers]
        if VALIDATION_STEP in ids:
            c.add(
                "policy",
                notices[0][0],
                f"step id {VALIDATION_STEP!r} is the validation notice's: "
                "rename that step of cadences.yaml",
            )


def _check_channel_names(
    c: _Checker, path: tuple[Any, ...], names: list[str], what: str, known: set[str]
) -> None:
    """Each of these channels in ``policy.yaml`` is one the configuration knows."""
    for n, name in enumerate(names):
        if name not in known:
            c.add(
                "policy",
                (*path, n),
                f"{what}: unknown channel {name!r}{_suggest(name, sorted(known))}",
            )


def _check_budgets(c: _Checker, policy: Policy, known: set[str]) -> None:
    """Budget ids once, known channels and zones, windows of whole hours or days."""
    budget_ids: set[str] = set()
    for n, budget in enumerate(policy.budgets):
        where = ("budgets", n)
        if budget.id in budget_ids:
            c.add("policy", (*where, "id"), f"duplicate budget id {budget.id!r}")
        budget_ids.add(budget.id)
        _check_channel_names(c, (*where, "channels"), budget.channels, f"budget {budget.id}", known)
        if budget.window.unit not in ("h", "d") or budget.window.amount < 1:
            c.add(
                "policy",
                (*where, "window"),
                f"budget {budget.id}: window must be whole hours or days (1h, 1d)",
            )
        if budget.zone is not None:
            _check_zone(c, "policy", (*where, "zone"), budget.zone)


def _check_priority(c: _Checker, policy: Policy, segments: Segments) -> None:
    """The segments a ``priority`` key lists are defined ones."""
    ids = sorted(segments.ids)
    for n, key in enumerate(policy.priority):
        if key.by != "segment" and key.segments is not None:
            c.add(
                "policy",
                ("priority", n, "segments"),
                f"priority {key.by}: segments apply to by: segment only",
            )
        for m, name in enumerate(key.segments or []):
            if name not in segments.ids:  # harmless (no account is in it): a warning
                c.add(
                    "policy",
                    ("priority", n, "segments", m),
                    f"priority: unknown segment {name!r}{_suggest(name, ids)}; it ranks no one",
                    level="warning",
                )


def _check_holidays(c: _Checker, path: tuple[Any, ...], rule: Any) -> None:
    if rule.country is None:
        return
    import holidays as holidays_lib

    try:
        holidays_lib.country_holidays(rule.country, subdiv=rule.region)
    except (NotImplementedError, KeyError) as exc:
        c.add("policy", (*path, "country"), f"holidays: unknown country or region ({exc})")


def _check_channels(c: _Checker, channels: dict[str, ChannelConfig]) -> None:
    from channels.registry import adapter_names, validate_channel_options

    names = adapter_names()
    for name, cfg in channels.items():
        if cfg.adapter not in names:
            c.add(
                "channels",
                (name, "adapter"),
                f"{name}: unknown adapter {cfg.adapter!r} (known: {', '.join(sorted(names))})",
            )
            continue
        if cfg.rate is not None and not _RATE.match(cfg.rate):
            c.add(
                "channels", (name, "rate"), f"{name}: rate {cfg.rate!r}: expected N/s, N/m or N/h"
            )
        for message in validate_channel_options(cfg.adapter, cfg.options):
            key = message.split(":", 1)[0].split(".")[0]
            c.add("channels", (name, key), f"{name}: {message}")


def _check_pay_link_templates(
    c: _Checker, channels: dict[str, ChannelConfig], templates_dir: Path
) -> None:
    """A call's "press 1" texts the payment link with the ``sms`` template named by the
    voice channel's ``pay_link_template``: it must exist, or the text fails mid-call."""
    from orchestrator.content.rendering import TemplateRenderer

    renderer = TemplateRenderer(templates_dir)
    for name, cfg in channels.items():
        if cfg.adapter != "twilio_voice":
            continue
        template = str(cfg.options.get("pay_link_template", "pay_link"))
        if renderer.resolve("sms", template, None) is None:
            key = "pay_link_template" if "pay_link_template" in cfg.options else "adapter"
            c.add(
                "channels",
                (name, key),
                f"{name}: pay_link_template {template!r}: no sms template of that name "
                f"(expected {templates_dir / 'sms' / template}.<locale>.txt.j2)",
            )


def _check_deployment(
    c: _Checker, channels: dict[str, ChannelConfig], env: Mapping[str, str]
) -> None:
    """What the environment must give channels that reach people (``deployment``): a
    public https ``OUTREACH_PUBLIC_URL`` (reported once, at the first such channel) and
    each provider's credentials, at the channel's line."""
    from orchestrator.config.deployment import (
        credential_problems,
        public_url_problem,
        reaches_people,
    )

    real = [(name, cfg) for name, cfg in channels.items() if reaches_people(cfg.adapter)]
    if real:
        problem = public_url_problem(env.get("OUTREACH_PUBLIC_URL"))
        if problem is not None:
            name, cfg = real[0]
            c.add(
                "channels",
                (name, "adapter"),
                f"{name}: adapter {cfg.adapter} reaches real people, but {problem}",
            )
    for name, cfg in real:
        for key, message in credential_problems(cfg.adapter, cfg.options, env):
            c.add(
                "channels", (name, key if key in cfg.options else "adapter"), f"{name}: {message}"
            )


def _check_creditors(c: _Checker, creditors: Creditors, policy: Policy | None) -> None:
    import phonenumbers

    for key, creditor in creditors.creditors.items():
        base = ("creditors", key)
        try:
            number = phonenumbers.parse(creditor.phone, None)
            valid = phonenumbers.is_possible_number(number)
        except phonenumbers.NumberParseException:
            valid = False
        if not valid:
            c.add(
                "creditors",
                (*base, "phone"),
                f"creditor {key}: phone {creditor.phone!r} is not an E.164 number (+...)",
            )
        if creditor.pay_url:
            try:
                creditor.pay_url.format(reference="R", account_id="A")
            except (KeyError, IndexError, ValueError) as exc:
                c.add(
                    "creditors",
                    (*base, "pay_url"),
                    f"creditor {key}: pay_url placeholder {exc} (use {{reference}} or "
                    f"{{account_id}})",
                )
        if creditor.policy is not None and policy is not None:
            if creditor.policy not in policy.profiles:
                c.add(
                    "creditors",
                    (*base, "policy"),
                    f"creditor {key}: unknown policy profile {creditor.policy!r} "
                    f"(profiles in policy.yaml: {', '.join(policy.profiles) or 'none'})",
                )


# --- entry points --------------------------------------------------------------------------


# --- segments ------------------------------------------------------------------------------


def _check_segments(c: _Checker, segments: Segments) -> None:
    """Each rule's id once, bounds in order, and no rule behind one that takes everyone."""
    seen: set[str] = set()
    catch_all: str | None = None
    for index, rule in enumerate(segments.segments):
        base = ("segments", index)
        if rule.id in seen:
            c.add("segments", (*base, "id"), f"duplicate segment id {rule.id!r}")
        seen.add(rule.id)
        when = rule.when.model_dump(exclude_none=True, exclude={"within"})
        for key, low in when.items():
            if key.endswith("_min"):
                high = when.get(key[:-4] + "_max")
                if high is not None and high < low:
                    c.add(
                        "segments",
                        (*base, "when", key),
                        f"segment {rule.id}: {key} {low} is above {key[:-4]}_max {high}: "
                        "no account can match",
                    )
        if catch_all is not None:
            c.add(
                "segments",
                (*base, "id"),
                f"segment {rule.id} is never reached: {catch_all} before it matches "
                "every account (the first rule that matches wins)",
                level="warning",
            )
        elif rule.when.always:
            catch_all = rule.id


def _check_segment_filters(c: _Checker, cadences: Cadences, segments: Segments) -> None:
    """``segments``/``except_segments`` name defined segments, one of the two at most;
    a step that no segment can reach is a warning."""
    ids = sorted(segments.ids)
    # Where an account can be: in a segment, or in none when no rule takes everyone.
    takes_all = any(rule.when.always for rule in segments.segments)
    universe: list[str | None] = [*ids] + ([] if takes_all else [None])

    def check(path: tuple[Any, ...], what: str, item: SegmentFilter) -> None:
        if item.segments is not None and item.except_segments is not None:
            c.add(
                "cadences",
                (*path, "except_segments"),
                f"{what}: give segments or except_segments, not both",
            )
        for key in ("segments", "except_segments"):
            for n, name in enumerate(getattr(item, key) or []):
                if name not in segments.ids:
                    known = (
                        f" (segments.yaml defines {', '.join(ids)})"
                        if ids
                        else " (no segments.yaml rules)"
                    )
                    c.add(
                        "cadences",
                        (*path, key, n),
                        f"{what}: unknown segment {name!r}{_suggest(name, ids) or known}",
                    )

    for s_index, stage in enumerate(cadences.stages):
        base = ("stages", s_index)
        check(base, f"stage {stage.id}", stage)
        for index, step in enumerate(stage.steps):
            where = (*base, "steps", index)
            check(where, f"step {step.id}", step)
            if not any(stage.admits(s) and step.admits(s) for s in universe):
                c.add(
                    "cadences",
                    (*where, "id"),
                    f"step {step.id}: no segment can reach it (stage {stage.id} and the step "
                    "admit no segment in common)",
                    level="warning",
                )
    for index, trigger in enumerate(cadences.triggers):
        check(("triggers", index), f"trigger {trigger.id}", trigger)


# --- experiments ---------------------------------------------------------------------------


def _check_experiments(
    c: _Checker,
    experiments: Experiments,
    cadences: Cadences,
    channels: set[str] | None,
    templates_dir: Path | None,
) -> None:
    """A known stage, dates in order, arms with distinct ids whose shares and the holdout
    make 1, arm steps checked as the stage's own (their ids unique over cadences too)."""
    stages = {s.id: s for s in cadences.stages}
    step_ids = {step.id for s in cadences.stages for step in s.steps}
    step_ids |= {t.id for t in cadences.triggers}
    seen: set[str] = set()
    for index, exp in enumerate(experiments.experiments):
        base = ("experiments", index)
        if exp.id in seen:
            c.add("experiments", (*base, "id"), f"duplicate experiment id {exp.id!r}")
        seen.add(exp.id)
        stage = stages.get(exp.stage)
        if stage is None:
            c.add(
                "experiments",
                (*base, "stage"),
                f"experiment {exp.id}: unknown stage {exp.stage!r}{_suggest(exp.stage, list(stages))}",
            )
        if exp.start is not None and exp.end is not None and exp.end < exp.start:
            c.add(
                "experiments",
                (*base, "end"),
                f"experiment {exp.id}: end {exp.end} is before start {exp.start}",
            )
        if not exp.arms:
            c.add("experiments", (*base, "arms"), f"experiment {exp.id}: give at least one arm")
        total = exp.holdout + sum(arm.share for arm in exp.arms)
        if exp.arms and abs(total - 1) > 1e-9:
            c.add(
                "experiments",
                (*base, "arms"),
                f"experiment {exp.id}: the holdout and the arms' shares add up to {total:g}, not 1",
            )
        arm_ids: set[str] = set()
        for a_index, arm in enumerate(exp.arms):
            where = (*base, "arms", a_index)
            if arm.id in arm_ids or arm.id == HOLDOUT:
                c.add(
                    "experiments",
                    (*where, "id"),
                    f"experiment {exp.id}: arm id {arm.id!r} is taken",
                )
            arm_ids.add(arm.id)
            for s_index, step in enumerate(arm.steps or []):
                s_base = (*where, "steps", s_index)
                if step.id in step_ids:
                    c.add("experiments", (*s_base, "id"), f"duplicate step id {step.id!r}")
                step_ids.add(step.id)
                if stage is not None:
                    _check_step_timing(c, s_base, stage, step, part="experiments")
                _check_send(
                    c,
                    s_base,
                    step.id,
                    step.channel,
                    step.template,
                    channels,
                    templates_dir,
                    part="experiments",
                )


def _check_webhooks(c: _Checker, webhooks: Webhooks, env: Mapping[str, str] | None) -> None:
    """Subscription ids are unique and name known events; with ``env`` (``run``,
    ``serve``), each secret is in the environment and is a ``whsec_`` secret."""
    from orchestrator.core.webhooks import EVENT_FAMILIES, decode_secret, known_event

    seen: set[str] = set()
    for i, sub in enumerate(webhooks.subscriptions):
        if sub.id in seen:
            c.add("webhooks", ("subscriptions", i, "id"), f"duplicate subscription id {sub.id!r}")
        seen.add(sub.id)
        for j, name in enumerate(sub.events):
            if not known_event(name):
                c.add(
                    "webhooks",
                    ("subscriptions", i, "events", j),
                    f"{sub.id}: unknown event {name!r} (one of *, "
                    f"{', '.join(EVENT_FAMILIES)}, or a type such as decision.sent)",
                )
        if env is None:
            continue
        where = ("subscriptions", i, "secret_env")
        value = env.get(sub.secret_env, "")
        if not value.strip():
            c.add("webhooks", where, f"{sub.id}: environment variable {sub.secret_env} is not set")
            continue
        try:
            decode_secret(value.strip())
        except ValueError as exc:
            c.add("webhooks", where, f"{sub.id}: {sub.secret_env}: {exc}")


def _load(
    config_dir: Path | str,
    templates_dir: Path | str | None,
    overrides: Mapping[str, Any] | None,
    override_source: str | None,
    env: Mapping[str, str] | None,
    lint: bool = False,
    deployment: bool = False,
) -> tuple[Config | None, list[Problem]]:
    problems: list[Problem] = []
    sources = _sources(Path(config_dir), overrides, override_source, problems)
    environ = os.environ if env is None else env
    for source in sources.values():
        _interpolate(source.node, source.path, environ, problems)
    parts: dict[str, Any] = {}
    for part, source in sources.items():
        if not isinstance(source.node, dict):
            line, col = _pos(source.node)
            problems.append(Problem(source.path, line, col, f"{part}: expected a mapping"))
            continue
        value = _validate(source, problems)
        if value is not None:
            parts[part] = value
    checker = _Checker(sources, problems)
    channel_cfg = parts.get("channels")
    configured = set(channel_cfg) if channel_cfg is not None else None
    templates = Path(templates_dir) if templates_dir is not None else None
    if channel_cfg is not None:
        _check_channels(checker, channel_cfg)
        if deployment:
            _check_deployment(checker, channel_cfg, environ)
        if templates is not None:
            _check_pay_link_templates(checker, channel_cfg, templates)
    if "cadences" in parts:
        _check_cadences(checker, parts["cadences"], configured, templates)
    if "policy" in parts:
        _check_policy(checker, parts["policy"], (configured or set()) | set(CHANNELS))
    if "policy" in parts:
        _check_validation_notices(
            checker, parts["policy"], parts.get("cadences"), configured, templates
        )
    if "creditors" in parts:
        _check_creditors(checker, parts["creditors"], parts.get("policy"))
    if "segments" in parts:
        _check_segments(checker, parts["segments"])
    if "policy" in parts:
        _check_priority(checker, parts["policy"], parts.get("segments", Segments()))
    _check_stage_names(checker, parts)
    if "cadences" in parts:
        _check_segment_filters(checker, parts["cadences"], parts.get("segments", Segments()))
        if "experiments" in parts:
            _check_experiments(
                checker, parts["experiments"], parts["cadences"], configured, templates
            )
    if "webhooks" in parts:
        _check_webhooks(checker, parts["webhooks"], environ if deployment else None)
    missing = [p for p in REQUIRED if p not in sources]
    if any(p.level == "error" for p in problems) or missing:
        return None, problems
    config = Config(
        cadences=parts.get("cadences", Cadences()),
        policy=parts.get("policy", Policy()),
        channels=parts.get("channels", {}),
        creditors=parts.get("creditors", Creditors()),
        segments=parts.get("segments", Segments()),
        experiments=parts.get("experiments", Experiments()),
        webhooks=parts.get("webhooks", Webhooks()),
    )
    if lint and templates is not None and templates.is_dir():
        _lint_steps(checker, config, templates)
        if any(p.level == "error" for p in problems):
            return None, problems
    return config, problems


M = TypeVar("M", bound=BaseModel)


def load_model_file(path: Path, model: type[M], what: str) -> M:
    """One YAML file read into ``model``, or ``ConfigError`` with every problem at its
    ``FILE:LINE:COL`` (for files beside the configuration: a response model)."""
    problems: list[Problem] = []
    node = _read_yaml(path, problems)
    if node is None:
        raise ConfigError(problems)
    if not isinstance(node, dict):
        line, col = _pos(node)
        raise ConfigError([Problem(str(path), line, col, f"{what}: expected a mapping")])
    try:
        return model.model_validate(_plain(node))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error.get("loc", ()))
            line, col = _locate(node, loc)
            text = _message(cast(dict[str, Any], error))
            field = ".".join(str(p) for p in loc)
            problems.append(Problem(str(path), line, col, f"{what}: {text}", field=field))
        raise ConfigError(problems) from None


def load_config(
    config_dir: Path | str,
    templates_dir: Path | str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    override_source: str | None = None,
    env: Mapping[str, str] | None = None,
    deployment: bool = False,
) -> Config:
    """The checked configuration; ``ConfigError`` lists every error found (not warnings).

    ``overrides`` replaces whole parts (a mapping, or a directory path holding that part's
    file), as a simulation scenario's ``config:`` does; ``override_source`` names the file
    those mappings came from. With ``templates_dir``, every step's template must exist.
    With ``deployment`` (``run``, ``serve``), channels that reach people must also have
    what the environment owes them (``orchestrator.config.deployment``).
    """
    config, problems = _load(
        config_dir, templates_dir, overrides, override_source, env, deployment=deployment
    )
    if config is None:
        raise ConfigError([p for p in problems if p.level == "error"])
    return config


def check_config(
    config_dir: Path | str,
    templates_dir: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    deployment: bool = False,
) -> list[Problem]:
    """Every problem, errors and warnings, in file then line order (for ``config check``).

    With ``templates_dir``, a step whose template fails ``outreach templates lint`` (an
    error, not a warning) is an error at the step's ``template`` line. ``deployment`` adds
    the checks of the environment that ``run`` and ``serve`` make (``load_config``)."""
    _, problems = _load(
        config_dir, templates_dir, None, None, env, lint=True, deployment=deployment
    )
    return sorted(problems, key=_order)


def _order(p: Problem) -> tuple[str, int, int]:
    return (p.path, p.line or 0, p.column or 0)


# --- JSON Schemas ----------------------------------------------------------------------------


class _YamlSchema(GenerateJsonSchema):
    """Defaults as the YAML spells them (``1m``, ``"21:00"``), not as the objects
    they parse into."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, Duration):
            return str(dft)
        if isinstance(dft, time):
            return dft.strftime("%H:%M")
        return super().encode_default(dft)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema (draft 2020-12) of each file of the configuration directory,
    ``PART.yaml``, from the models that load it (``outreach config schema``). It sees
    keys and types; what the models check across keys and files is ``config check``'s.
    ``channels.yaml`` allows each adapter's own keys, which only its adapter checks."""
    schemas = {}
    for part in PARTS:
        schema = _MODELS[part].json_schema(schema_generator=_YamlSchema)
        schemas[part] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"outreach {part}.yaml",
            "description": f"config/{part}.yaml; every key: docs/configuration.md",
            **{k: v for k, v in schema.items() if k not in ("title", "description")},
        }
    return schemas
