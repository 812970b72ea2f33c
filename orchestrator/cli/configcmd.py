"""``outreach config check``: every problem in the configuration, at once; ``outreach
config schema``: the JSON Schema of each configuration file, for editors."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from orchestrator.errors import Problem

config_app = typer.Typer(
    help="Check the configuration directory, or write its JSON Schemas.\n\n"
    "Reference: docs/configuration.md.",
    no_args_is_help=True,
)


@config_app.command("check")
def check(
    config: Path | None = typer.Option(None, "--config", help="configuration directory"),
    templates: Path | None = typer.Option(None, "--templates", help="template directory"),
) -> None:
    """Validate every config file and every template a step names, and what the
    environment must give channels that reach people (OUTREACH_PUBLIC_URL, credentials).

    Prints PATH:LINE:COL: error: MESSAGE per problem (warnings too); exits 2 on any error.
    Every key and check: docs/configuration.md.
    """
    from orchestrator.config.loading import check_config

    config_dir = config or Path(os.environ.get("OUTREACH_CONFIG") or "config")
    templates_dir = templates or Path(os.environ.get("OUTREACH_TEMPLATES") or "templates")
    if not config_dir.is_dir():
        typer.echo(f"{config_dir}: error: no such configuration directory", err=True)
        raise typer.Exit(2)
    report_problems(check_config(config_dir, templates_dir, deployment=True), config_dir)


@config_app.command("schema")
def schema(
    out: Path | None = typer.Option(
        None, "--out", help="directory to write to (default: the configuration's schema/)"
    ),
) -> None:
    """Write the JSON Schema of each configuration file (PART.schema.json), for editors
    that complete and check YAML as you type.

    Reference: docs/cli.md."""
    from orchestrator.config.loading import json_schemas

    target = out or Path(os.environ.get("OUTREACH_CONFIG") or "config") / "schema"
    try:
        target.mkdir(parents=True, exist_ok=True)
        for part, document in json_schemas().items():
            path = target / f"{part}.schema.json"
            path.write_text(schema_text(document), encoding="utf-8")
            typer.echo(f"wrote {path}")
    except OSError as exc:
        typer.echo(f"{target}: error: cannot write: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


def schema_text(document: dict[str, object]) -> str:
    """One schema file's text: indented JSON, keys in the models' order, a final newline."""
    import json

    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def report_problems(problems: list[Problem], where: Path) -> None:
    """Print each problem; exit 2 when any is an error, else say OK with the warnings."""
    for problem in problems:
        typer.echo(str(problem))
    errors = sum(1 for p in problems if p.level == "error")
    warnings = len(problems) - errors
    if errors:
        typer.echo(f"{errors} error(s), {warnings} warning(s) in {where}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{where}: OK ({warnings} warning(s))")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(config_app, name="config")
