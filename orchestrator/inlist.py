"""``column IN (a list)`` with the whole list bound as one parameter.

``column.in_(values)`` renders one placeholder per value, so the SQL text changes with
the number of values: SQLAlchemy expands and casts every placeholder on each execution,
and PostgreSQL plans each text afresh. A daemon that asks for "the facts of these 100
accounts" many times a second pays more for that than for the query. ``one_of`` renders
a single parameter instead, the same text whatever the list:

- PostgreSQL: ``column = ANY(:p)``, the list sent as an array;
- SQLite: ``column IN (SELECT value FROM json_each(:p))``, the list sent as JSON text.

Statements built with it can be module constants, compiled once and, on PostgreSQL,
prepared by the driver.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ["ValueList", "one_of"]


class ValueList(sa.TypeDecorator[list[Any]]):
    """A list parameter: an array of ``item`` on PostgreSQL, JSON text on SQLite."""

    impl = sa.Text()
    cache_ok = True

    def __init__(self, item: sa.types.TypeEngine[Any]):
        super().__init__()
        self.item = item

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(self.item))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        values = list(value)
        return values if dialect.name == "postgresql" else json.dumps(values)


class _OneOf(ColumnElement[bool]):
    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a comparison: no ``= 1`` after it on SQLite
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], values: sa.BindParameter[Any]):
        self.column = column
        self.values = values


@compiles(_OneOf, "postgresql")
def _one_of_postgresql(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.values, **kw)})"


@compiles(_OneOf)
def _one_of_sqlite(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} IN "
            f"(SELECT value FROM json_each({compiler.process(element.values, **kw)}))")


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column`` is one of the list given as parameter ``name`` at execution (an empty
    list matches nothing)."""
    return _OneOf(column, sa.bindparam(name, type_=ValueList(column.type)))
