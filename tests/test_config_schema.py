"""``outreach config schema``: the JSON Schemas shipped in config/schema/ are what the
models give (never stale), every shipped YAML of config/ names its schema and passes
it, and the schema catches a typo'd key as ``config check`` does."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.config.loading import PARTS, json_schemas

SHIPPED = ROOT / "config" / "schema"


def _as_json(value: Any) -> Any:
    """The YAML's data as JSON has it (dates as ISO strings), what an editor validates."""
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _load(text: str) -> Any:
    return _as_json(YAML(typ="safe").load(text) or {})


def _errors(part: str, document: Any) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SHIPPED / f"{part}.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_the_shipped_schemas_are_what_the_models_give(tmp_path: Path) -> None:
    _register_all()
    result = CliRunner().invoke(app, ["config", "schema", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{part}.schema.json" for part in PARTS)
    assert sorted(p.name for p in SHIPPED.iterdir()) == written
    stale = [
        name
        for name in written
        if (tmp_path / "out" / name).read_text(encoding="utf-8")
        != (SHIPPED / name).read_text(encoding="utf-8")
    ]
    assert not stale, f"run `outreach config schema` and commit config/schema/: {stale}"
    assert set(json_schemas()) == set(PARTS)


def test_without_out_it_writes_beside_the_configuration(tmp_path: Path) -> None:
    _register_all()
    result = CliRunner().invoke(
        app, ["config", "schema"], env={"OUTREACH_CONFIG": str(tmp_path / "cfg")}
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cfg" / "schema" / "policy.schema.json").is_file()
    assert f"wrote {tmp_path / 'cfg' / 'schema' / 'policy.schema.json'}" in result.output


def test_an_unwritable_directory_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    _register_all()
    result = CliRunner().invoke(app, ["config", "schema", "--out", str(blocker / "schema")])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"{blocker / 'schema'}: error: cannot write: Not a directory"
    ]


@pytest.mark.parametrize("part", PARTS)
def test_each_shipped_yaml_names_its_schema_and_passes_it(part: str) -> None:
    text = (ROOT / "config" / f"{part}.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# yaml-language-server: $schema=./schema/{part}.schema.json"
    assert _errors(part, _load(text)) == []


def test_a_typo_is_reported_by_the_schema() -> None:
    policy = _load((ROOT / "config" / "policy.yaml").read_text(encoding="utf-8"))
    policy["quiet_hourz"] = policy.pop(next(iter(policy)))
    errors = _errors("policy", policy)
    assert any("quiet_hourz" in e and "unexpected" in e for e in errors), errors

    cadences = _load((ROOT / "config" / "cadences.yaml").read_text(encoding="utf-8"))
    step = cadences["stages"][0]["steps"][0]
    step["templte"] = step.pop("template")
    errors = _errors("cadences", cadences)
    assert any("templte" in e for e in errors), errors
    assert any("'template' is a required property" in e for e in errors), errors


def test_channels_allow_adapter_keys_but_check_the_common_ones() -> None:
    channels = _load((ROOT / "config" / "channels.yaml").read_text(encoding="utf-8"))
    name = next(iter(channels))
    channels[name] = {**channels[name], "from": "+15550100", "account_sid": "AC123"}
    assert _errors("channels", channels) == []
    channels[name]["retry"] = {"attemps": 3}
    assert any("attemps" in e for e in _errors("channels", channels))
    del channels[name]["retry"]
    channels[name].pop("adapter")
    assert any("'adapter' is a required property" in e for e in _errors("channels", channels))


def test_durations_and_times_are_checked_as_the_yaml_spells_them() -> None:
    cadences = _load((ROOT / "config" / "cadences.yaml").read_text(encoding="utf-8"))
    step = cadences["stages"][0]["steps"][0]
    step["at"] = "9am"
    step["expires"] = "3 days"
    errors = _errors("cadences", cadences)
    assert len(errors) == 2, errors
