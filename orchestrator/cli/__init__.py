"""The ``outreach`` command line (docs/cli.md): parse, call one service function, print.

Each command group lives in its own module with a ``register(app)`` function.
Exit codes: 0 success, 1 runtime failure, 2 bad usage, configuration or input; what
the commands share (the database URL, its schema, reaching it) is said in one line by
the root group (``failures.OperatorErrors``), never as a traceback.
"""

from __future__ import annotations

import typer

from orchestrator.cli.failures import OperatorErrors

app = typer.Typer(
    cls=OperatorErrors,
    name="outreach",
    help="Compliant debt-collection outreach. Documentation: README.md and docs/.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion: bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)


def version() -> str:
    """This installation's version (``orchestrator.installed_version``)."""
    from orchestrator import installed_version

    return installed_version()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"outreach {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="print the version and exit",
    ),
) -> None:
    """Compliant debt-collection outreach. Documentation: README.md and docs/."""


def _register_all() -> None:
    from orchestrator.cli import (
        auditcmd,
        casescmd,
        configcmd,
        data,
        pausecmd,
        placementscmd,
        reportcmd,
        runcmd,
        simcmd,
        statuscmd,
        taskscmd,
        templatescmd,
        webhookscmd,
    )

    for module in (
        data,
        configcmd,
        simcmd,
        runcmd,
        statuscmd,
        pausecmd,
        templatescmd,
        reportcmd,
        casescmd,
        taskscmd,
        auditcmd,
        webhookscmd,
        placementscmd,
    ):
        module.register(app)


def main() -> None:
    _register_all()
    app()
