"""What an operator can get wrong, said in one line with its exit code, for every command.

Commands handle the problems of their own input; what they share (the database URL,
its schema, reaching it, a configuration problem no command caught) is translated here
once, by the root command group, instead of a traceback: exit 2 for a setup mistake
(an unsupported URL, no schema or an older one: the operator fixes it and runs again),
exit 1 for a runtime failure (the database cannot be reached or failed a statement).
An error this does not recognise keeps its traceback: it is a bug to report.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from orchestrator.config.settings import Settings
from orchestrator.errors import ConfigError, InputError, OutreachError

if TYPE_CHECKING:  # SQLAlchemy is imported by the commands that use a database, not here
    from sqlalchemy.exc import DBAPIError


class OperatorErrors(TyperGroup):
    """The root group: runs the command, and turns a known failure into its message."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click)
        try:
            return super().invoke(ctx)
        except Exception as exc:  # noqa: BLE001 - what ``explain`` does not know is raised again
            explained = explain(exc, Settings.from_env().database_url)
            if explained is None:
                raise
            code, lines = explained
            for line in lines:
                typer.echo(line, err=True)
            raise typer.Exit(code) from None


def explain(exc: BaseException, url: str) -> tuple[int, list[str]] | None:
    """(exit code, lines) for a failure an operator can act on, else ``None``."""
    if isinstance(exc, (ConfigError, InputError)):
        return 2, [str(p) for p in exc.problems]
    if isinstance(exc, OutreachError):
        return 1, [f"error: {exc}"]
    if "sqlalchemy" not in sys.modules:  # then it cannot be one of its errors
        return None
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return _url_problem(url)
    if isinstance(exc, DBAPIError):
        return _database_failure(exc, url)
    return None


def _url_problem(url: str) -> tuple[int, list[str]] | None:
    """The URL's own problem (``db.parse_url``); ``None`` if the URL is fine (the
    argument error was about something else)."""
    from orchestrator.store import db

    try:
        db.parse_url(url)
    except ConfigError as exc:
        return 2, [str(p) for p in exc.problems]
    return None


def _database_failure(exc: DBAPIError, url: str) -> tuple[int, list[str]] | None:
    """Could not connect, lost the connection, a schema this release cannot use, or a
    statement the database refused (disk full, locked); ``None`` for anything else."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if exc.statement is None:  # raised while connecting
        return _runtime(url, "cannot connect to the database at", exc)
    if exc.connection_invalidated:
        return _runtime(url, "lost the connection to the database at", exc)
    schema = _schema_problem(url)
    if schema is not None:
        return schema
    if isinstance(exc, (OperationalError, InterfaceError)):  # the database's, not our SQL's
        return _runtime(url, "a statement failed on the database at", exc)
    return None


def _runtime(url: str, what: str, exc: BaseException) -> tuple[int, list[str]]:
    """Exit 1 and ``OUTREACH_DATABASE_URL: error: WHAT URL: reason`` (no password)."""
    from orchestrator.store import db

    return 1, [
        f"{db.URL_VARIABLE}: error: {what} {db.display_url(url)}: {db.failure_reason(exc, url)}"
    ]


def _schema_problem(url: str) -> tuple[int, list[str]] | None:
    """A statement failed: was it for want of the schema (a table or column missing)?"""
    from sqlalchemy.exc import DBAPIError

    from orchestrator.store import db

    try:
        engine = db.make_engine(url)
    except ConfigError as exc:
        return 2, [str(p) for p in exc.problems]
    try:
        db.require_schema(engine)
    except ConfigError as exc:
        return 2, [str(p) for p in exc.problems]
    except DBAPIError as exc:
        return _runtime(url, "cannot connect to the database at", exc)
    finally:
        engine.dispose()
    return None
