"""Engine, sessions and schema migrations.

``make_engine`` gives an engine configured the same way everywhere (SQLite: WAL,
foreign keys, a busy timeout so several workers can share the file, and the parent
directory created); ``upgrade`` runs the Alembic migrations shipped inside the
package, so ``outreach db upgrade`` works from any directory without an ini file.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SAWarning
from sqlmodel import Session, create_engine

if TYPE_CHECKING:  # alembic is imported when migrating, not by every command
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///var/outreach.db"

# SQLite has no decimal type: SQLAlchemy stores NUMERIC(18, 2) through a float and
# rounds back to 2 places on read, exact for every amount below 10^13.
warnings.filterwarnings(
    "ignore", message=r"Dialect sqlite\+pysqlite does \*not\* support Decimal", category=SAWarning
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the only PostgreSQL driver installed)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    _ensure_sqlite_dir(url)
    if make_url(url).get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any exception."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    config.attributes["url"] = normalize_url(url)
    return config


def upgrade(url: str = DEFAULT_URL, revision: str = "head") -> None:
    """Create or migrate the schema on ``url`` (idempotent)."""
    url = normalize_url(url)
    _ensure_sqlite_dir(url)
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@lru_cache(maxsize=1)
def schema_heads() -> frozenset[str]:
    """The migration revisions this release expects the schema to be at (its heads)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config(DEFAULT_URL)).get_heads())


def schema_problem(connection: Connection) -> str | None:
    """Why the schema on ``connection`` is not the one this release needs (never
    upgraded, behind, or ahead of it), else ``None``. A server on an empty database
    answered its health check and then failed every request."""
    from alembic.runtime.migration import MigrationContext

    current = set(MigrationContext.configure(connection).get_current_heads())
    expected = schema_heads()
    if current == expected:
        return None
    if not current:
        return "database schema missing: run `outreach db upgrade`"
    return (f"database schema at {', '.join(sorted(current))}, this release needs "
            f"{', '.join(sorted(expected))}: run `outreach db upgrade`")
