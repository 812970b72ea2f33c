"""Alembic environment: the URL (or an open connection) comes from config attributes,
set by ``orchestrator.store.db.upgrade``; there is no alembic.ini."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from orchestrator.store import tables
from orchestrator.store.db import make_engine

config = context.config
target_metadata = tables.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
    """Render project types as plain SQLAlchemy so migrations never import tables."""
    if type_ == "type":
        if isinstance(obj, tables.UTCDateTime):
            return "sa.DateTime(timezone=True)"
        if type(obj).__module__.startswith("sqlmodel"):
            return "sa.String()"
    return False


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or ""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_item=render_item
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
