"""Plain inserts of many rows into one table, below the per-row cost of Core.

``conn.execute(table.insert(), rows)`` runs every value of every row through
SQLAlchemy's parameter machinery, and on PostgreSQL sends one statement per row; at a
million imported rows, or a decision row per send, that costs more than the database
itself. ``BulkInsert`` applies each column's own bind processor and hands the rows to
the driver in one call: ``executemany`` on SQLite, ``COPY ... FROM STDIN`` on
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from orchestrator.store.inlist import converted_runs

__all__ = ["BulkInsert"]


class BulkInsert:
    """Inserts into ``table`` of rows giving ``columns``, for one dialect.

    Each column's bind processor (the one Core would apply: ``Numeric`` to float and
    ``Date`` to text on SQLite, ``UTCDateTime`` everywhere) runs once per distinct
    consecutive value. The rows go on the connection's own transaction, so a rollback
    undoes them like any other statement. Columns left out get their scalar Python
    default.
    """

    def __init__(
        self,
        table: sa.Table,
        columns: Sequence[str],
        dialect: Dialect,
        *,
        unless_exists: Sequence[str] | None = None,
        on_conflict: str | None = None,
    ):
        """``unless_exists``: the columns of a unique key; a row whose key is there
        already is left out (``ON CONFLICT ... DO NOTHING``); ``on_conflict``: the
        statement's own ``ON CONFLICT`` clause instead. SQLite only: ``COPY`` has no
        such clause."""
        self.columns = tuple(columns)
        self.extra: tuple[Any, ...] = ()
        defaults: list[Any] = []
        missing: list[str] = []
        for column in table.c:
            if column.name in self.columns:
                continue
            default = column.default
            if default is not None and getattr(default, "is_scalar", False):
                missing.append(column.name)
                defaults.append(default.arg)  # type: ignore[attr-defined]
        self.all_columns = self.columns + tuple(missing)
        self.extra = tuple(defaults)
        self.processors = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.all_columns
        ]
        quote = dialect.identifier_preparer.quote
        names = ", ".join(quote(name) for name in self.all_columns)
        self.postgresql = dialect.name == "postgresql"
        if self.postgresql:
            if unless_exists or on_conflict:
                raise ValueError("COPY has no ON CONFLICT: unless_exists is SQLite's")
            self.sql = f"COPY {quote(table.name)} ({names}) FROM STDIN"
        else:
            marks = ", ".join("?" for _ in self.all_columns)
            self.sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"
            if unless_exists:
                key = ", ".join(quote(name) for name in unless_exists)
                self.sql += f" ON CONFLICT ({key}) DO NOTHING"
            elif on_conflict:
                self.sql += f" {on_conflict}"
            if dialect.paramstyle != "qmark":  # pragma: no cover - SQLite is always qmark
                raise RuntimeError(f"unexpected paramstyle {dialect.paramstyle}")

    def __call__(self, conn: Connection, rows: list[tuple[Any, ...]]) -> int:
        """Insert ``rows`` (tuples in the order of ``columns``) on ``conn``; how many
        were inserted."""
        if not rows:
            return 0
        extra = self.extra
        if extra:
            rows = [row + extra for row in rows]
        if any(self.processors):
            columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
            for i, process in enumerate(self.processors):
                if process is not None:
                    columns[i] = converted_runs(columns[i], _or_none(process))
            rows = list(zip(*columns, strict=True))
        if self.postgresql:
            raw = conn.connection.driver_connection
            with raw.cursor() as cursor, cursor.copy(self.sql) as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)
            return len(rows)
        return conn.exec_driver_sql(self.sql, rows).rowcount


def _or_none(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A bind processor that leaves NULL as it is."""
    return lambda value: None if value is None else process(value)
