"""``column IN (a list)`` with the whole list bound as one parameter.

``column.in_(values)`` renders one placeholder per value, so the SQL text changes with
the number of values: SQLAlchemy expands and casts every placeholder on each execution,
and PostgreSQL plans each text afresh. A daemon that asks for "the facts of these 100
accounts" many times a second pays more for that than for the query. ``one_of`` renders
a single parameter instead, the same text whatever the list:

- PostgreSQL: ``column = ANY(CAST(:p AS type[]))``, the list sent as the text of an
  array (``pg_array``);
- SQLite: ``column IN (SELECT value FROM json_each(:p))``, the list sent as JSON text.

Statements built with it can be module constants, compiled once and, on PostgreSQL,
prepared by the driver.

``pg_array`` also serves statements that take whole columns as arrays
(``unnest(CAST(:ids AS bigint[]), ...)``). The driver would adapt a Python list element
by element, looking up an adapter for each and escaping it on its own: for the hundred
ids of a batch that cost more than running the statement, and up to a millisecond for
two hundred blind indexes. One string is adapted once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ["ValueList", "converted_runs", "one_of", "pg_array"]


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        if "\\" not in value and '"' not in value:
            return '"' + value + '"'
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware instants only")
        return '"' + value.isoformat() + '"'
    raise TypeError(f"no PostgreSQL array element for {type(value).__name__}")


def pg_array(values: Iterable[Any]) -> str:
    """The text of a PostgreSQL array holding ``values`` (text, whole numbers, decimals,
    booleans, aware datetimes, ``None`` for NULL), for a parameter the statement casts to
    the array type it means (``CAST(:p AS text[])``). Every text element is quoted, so
    none can be read as NULL, split at a comma or lose its spaces.

    A list of plain text (ids: no quote or backslash in any) or of whole numbers is
    joined at once; a datetime is written once however often it comes (a page's
    occurrences share a handful of planned times)."""
    values = values if isinstance(values, list) else list(values)
    if not values:
        return "{}"
    kinds = set(map(type, values))
    if kinds == {str}:
        body = '","'.join(values)
        if "\\" not in body and body.count('"') == 2 * (len(values) - 1):
            return '{"' + body + '"}'
    elif kinds == {int}:
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join(converted_runs(values, _element)) + "}"


def converted_runs(values: Iterable[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``convert`` of each value, called once for a run of the same object (a column's
    constants: now, a state, a default) and once for each instant however often it
    comes (a page's occurrences share a handful of planned times), not once a row."""
    out = []
    last_in: Any = _NOTHING
    last_out: Any = None
    instants: dict[tuple[datetime, Any, int], Any] = {}
    for value in values:
        if value is not last_in:
            last_in = value
            if type(value) is datetime:
                # Equal datetimes can still differ in what they convert to: another
                # zone, or the other side of a fall-back hour (``fold``).
                key = (value, value.tzinfo, value.fold)
                last_out = instants.get(key, _NOTHING)
                if last_out is _NOTHING:
                    last_out = instants[key] = convert(value)
            else:
                last_out = convert(value)
        out.append(last_out)
    return out


_NOTHING = object()


class ValueList(sa.TypeDecorator[list[Any]]):
    """A list parameter: the text of an array of ``item`` on PostgreSQL (``pg_array``),
    JSON text on SQLite."""

    impl = sa.Text()
    cache_ok = True

    def __init__(self, item: sa.types.TypeEngine[Any]):
        super().__init__()
        self.item = item

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        values = list(value)
        return pg_array(values) if dialect.name == "postgresql" else json.dumps(values)


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
    array = compiler.dialect.type_compiler_instance.process(element.column.type) + "[]"
    return (
        f"{compiler.process(element.column, **kw)} = "
        f"ANY(CAST({compiler.process(element.values, **kw)} AS {array}))"
    )


@compiles(_OneOf)
def _one_of_sqlite(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return (
        f"{compiler.process(element.column, **kw)} IN "
        f"(SELECT value FROM json_each({compiler.process(element.values, **kw)}))"
    )


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column`` is one of the list given as parameter ``name`` at execution (an empty
    list matches nothing)."""
    return _OneOf(column, sa.bindparam(name, type_=ValueList(column.type)))
