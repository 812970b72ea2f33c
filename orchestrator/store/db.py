"""Engine, sessions and schema migrations.

``make_engine`` gives an engine configured the same way everywhere (SQLite: WAL,
foreign keys, a busy timeout so several workers can share the file, and the parent
directory created); ``upgrade`` runs the Alembic migrations shipped inside the
package, so ``outreach db upgrade`` works from any directory without an ini file.

What an operator can get wrong about the database is said here once, in words: a URL
of a database the product does not run on (``parse_url``), a database with no schema
or an older one (``require_schema``), one that cannot be reached (``failure_reason``).
Messages show the URL without its password (``display_url``).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SAWarning
from sqlmodel import Session, create_engine

from orchestrator.errors import ConfigError, Problem

if TYPE_CHECKING:  # alembic is imported when migrating, not by every command
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///var/outreach.db"
URL_VARIABLE = "OUTREACH_DATABASE_URL"  # the only way a database URL comes in (docs/cli.md)
SUPPORTED = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}  # the drivers installed
CONNECT_TIMEOUT = 10  # seconds: an unreachable PostgreSQL host fails, rather than hangs

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
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _url_error(
                f"cannot create the directory of {display_url(parsed)}: {exc.strerror}"
            ) from None


def _url_error(message: str) -> ConfigError:
    return ConfigError([Problem(URL_VARIABLE, None, None, message)])


def parse_url(url: str | URL) -> URL:
    """The URL, if it names a database outreach runs on (SQLite, or PostgreSQL through
    psycopg 3: the drivers installed); else a ``ConfigError`` naming the variable. Said
    before anything connects: SQLAlchemy's own failures for another database are a
    missing module's traceback. An unparsable value is not echoed (it may hold a
    password)."""
    try:
        parsed = make_url(normalize_url(url) if isinstance(url, str) else url)
    except ArgumentError:
        raise _url_error(f"not a database URL ({SUPPORTED})") from None
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS or (
        "+" in parsed.drivername and parsed.get_driver_name() != _DRIVERS[backend]
    ):
        raise _url_error(f"unsupported database {parsed.drivername!r} ({SUPPORTED})")
    return parsed


def display_url(url: str | URL) -> str:
    """The URL to show an operator: no password, no query (which may hold one)."""
    try:
        parsed = make_url(normalize_url(url) if isinstance(url, str) else url)
    except ArgumentError:
        return URL_VARIABLE
    shown = URL.create(
        parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database
    )
    return shown.render_as_string(hide_password=False)


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the only PostgreSQL driver installed)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def insert_for(conn: Connection) -> Any:
    """The ``insert`` construct of the connection's database (PostgreSQL's or SQLite's),
    which has ``on_conflict_do_nothing`` and ``on_conflict_do_update``."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def make_engine(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    _ensure_sqlite_dir(url)
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = kwargs.setdefault("connect_args", {})
    if "connect_timeout" not in parsed.query:
        connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT)
    # Sessions in UTC whatever the server's default: instants come back the same either
    # way (aware, turned to UTC by ``UTCDateTime``), but the driver reads them a third
    # faster in UTC than in a named zone, ``Etc/UTC`` included (a planning round reads
    # four dates and instants an account). Options given in the URL are kept.
    given = connect_args.get("options", parsed.query.get("options", ""))
    if "timezone" not in str(given).lower():
        connect_args["options"] = f"{given} -c TimeZone=UTC".strip()
    return create_engine(url, **kwargs)


def open_database(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    """``make_engine``, for a command that reads or writes the tables: refuses (with
    ``require_schema``'s message) a database whose schema is missing or not this
    release's, instead of failing later on the first table it lacks."""
    engine = make_engine(url, **kwargs)
    try:
        require_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


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


_REVISION = re.compile(r"""^revision: [^=]+= ['"]([^'"]+)['"]""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision: [^=]+= (?:['"]([^'"]+)['"]|None)""", re.MULTILINE)


@functools.cache
def known_revisions() -> tuple[str, ...]:
    """The shipped migrations' revisions, oldest first; the last is the schema this
    release needs. Read from the files' ``revision`` and ``down_revision`` lines, not
    through Alembic, whose import would add 0.2 s to every command."""
    parent: dict[str | None, str] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision and down:
            parent[down.group(1)] = revision.group(1)
    chain: list[str] = []
    while (nxt := parent.get(chain[-1] if chain else None)) is not None:
        chain.append(nxt)
    return tuple(chain)


def schema_problem(conn: Connection) -> str | None:
    """What keeps this release from using the database's schema, in words, or ``None``
    when it is at this release's revision."""
    revisions = known_revisions()
    head = revisions[-1]
    current = None
    if sa.inspect(conn).has_table("alembic_version"):
        current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    if current == head:
        return None
    if current is None:
        return f"has no schema (expected revision {head}): run `outreach db upgrade`"
    if current in revisions:
        return f"is at revision {current}, expected {head}: run `outreach db upgrade`"
    return (
        f"is at revision {current}, which this release of outreach does not know "
        f"(it needs {head}): run the release that migrated it, or a newer one"
    )


def require_schema(engine: Engine) -> None:
    """A ``ConfigError`` (an operator's setup step is missing: exit 2) unless the
    database's schema is this release's. One connection and one or two small queries."""
    with engine.connect() as conn:
        problem = schema_problem(conn)
    if problem is not None:
        raise _url_error(f"the database at {display_url(engine.url)} {problem}")


def failure_reason(exc: BaseException, url: str | URL) -> str:
    """A database driver's error as a short phrase ("connection refused", "password
    authentication failed for user ..."), for one line: the last clause of its first
    line, with the URL's password, should the driver have quoted it, masked."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    reason = first.rsplit(": ", 1)[-1].strip() or first
    try:
        parsed = make_url(normalize_url(url) if isinstance(url, str) else url)
    except ArgumentError:
        return reason[:1].lower() + reason[1:]
    for secret in (parsed.password, parsed.query.get("password")):
        if secret and isinstance(secret, str):
            reason = reason.replace(secret, "***")
    return reason[:1].lower() + reason[1:]


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def database_revision(url: str) -> str | None:
    """The revision of the schema on ``url``, ``None`` when it has none. Only reads: a
    SQLite file that does not exist is not created (it has no schema)."""
    parsed = parse_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not Path(database).expanduser().exists()
    ):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return None if current is None else str(current)
    finally:
        engine.dispose()


def migrations() -> list[tuple[str, str]]:
    """``(revision, what it does)`` of every shipped migration, newest first, through
    Alembic's script directory (the first line of each migration's docstring)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [(s.revision, " ".join((s.doc or "").split())) for s in script.walk_revisions()]
