"""``one_of``: a list bound as one parameter means the same as ``IN (...)``, on SQLite and
PostgreSQL, for text and integer columns, with empty and one-element lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.store.inlist import converted_runs, one_of, pg_array

metadata = sa.MetaData()
item = sa.Table(
    "inlist_item",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String, nullable=True),
)
BY_KEY = sa.select(item.c.id).where(one_of(item.c.key, "keys")).order_by(item.c.id)
BY_ID = (
    sa.select(item.c.key)
    .where(one_of(item.c.id, "ids"), item.c.key.is_not(None))
    .order_by(item.c.id)
)
KEYS = ["a", "b", "O'Brien", "ü", "42", "", "a b", 'say "hi"', "back\\slash", "{x,y}", "NULL"]

# Text PostgreSQL stores (no NUL), with what an array literal must escape or quote:
# quotes, backslashes, braces, commas, spaces, the word NULL.
_texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
) | st.sampled_from(['"', "\\", "{}", "a,b", " x ", "NULL", ""])
_instants = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
    ),
)


def test_one_of_matches_in_on_both_backends(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(
            item.insert(),
            [{"id": i, "key": k} for i, k in enumerate(KEYS)] + [{"id": 99, "key": None}],
        )

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(st.sampled_from([*KEYS, "zz"]) | _texts, max_size=6),
        st.lists(st.integers(min_value=-1, max_value=100), max_size=6),
    )
    def check(keys: list[str], ids: list[int]) -> None:
        with engine.connect() as conn:
            assert (
                conn.execute(BY_KEY, {"keys": keys}).scalars().all()
                == conn.execute(
                    sa.select(item.c.id).where(item.c.key.in_(keys)).order_by(item.c.id)
                )
                .scalars()
                .all()
            )
            assert conn.execute(BY_ID, {"ids": ids}).scalars().all() == [
                KEYS[i] for i in sorted(set(ids)) if 0 <= i < len(KEYS)
            ]

    check()
    # the whole list is one parameter: one SQL text, whatever its length
    assert list(BY_KEY.compile(dialect=engine.dialect).params) == ["keys"]
    engine.dispose()


def test_pg_array_is_read_back_as_the_values_it_was_given(db_url: str) -> None:
    """``pg_array`` stands for the driver's own list adaptation: PostgreSQL must read its
    text back as the very values, NULLs included, for each array type the runner casts to."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL array text")
    engine = sa.create_engine(db_url)
    read = {
        kind: sa.text(f"SELECT CAST(:p AS {kind}[])")
        for kind in ("text", "bigint", "timestamptz", "boolean")
    }

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.none() | _texts, max_size=8),
        st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), max_size=8),
        st.lists(st.none() | _instants, max_size=8),
        st.lists(st.none() | st.booleans(), max_size=4),
    )
    def check(
        texts: list[str | None],
        ints: list[int | None],
        instants: list[datetime | None],
        flags: list[bool | None],
    ) -> None:
        with engine.connect() as conn:
            assert conn.execute(read["text"], {"p": pg_array(texts)}).scalar() == texts
            assert conn.execute(read["bigint"], {"p": pg_array(ints)}).scalar() == ints
            assert conn.execute(read["timestamptz"], {"p": pg_array(instants)}).scalar() == [
                None if i is None else i.astimezone(UTC) for i in instants
            ]
            assert conn.execute(read["boolean"], {"p": pg_array(flags)}).scalar() == flags

    check()
    engine.dispose()


def test_pg_array_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="naive"):
        pg_array([datetime(2026, 1, 1)])
    with pytest.raises(TypeError, match="float"):
        pg_array([1.5])


def test_each_instant_is_converted_once_and_folds_stay_apart() -> None:
    """A page's occurrences share a few planned times: each converts once. Equal
    datetimes that convert differently do not share a conversion: the two 01:30s of a
    fall-back night (``fold``) and the same instant written in another zone."""
    ny = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ny)  # EDT
    second = first.replace(fold=1)  # EST, an hour later
    same_in_utc = first.astimezone(UTC)
    again = datetime(2026, 11, 1, 1, 30, tzinfo=ny)  # equal to ``first``, another object
    values = [first, second, same_in_utc, "x", again, second, "x", None, first]
    calls: list[object] = []

    def convert(value: object) -> object:
        calls.append(value)
        return value.isoformat() if isinstance(value, datetime) else value

    out = converted_runs(values, convert)
    assert out == [v.isoformat() if isinstance(v, datetime) else v for v in values]
    assert out[0] != out[1]  # -04:00 and -05:00
    assert sum(isinstance(c, datetime) for c in calls) == 3
    assert pg_array([first, second]) == f'{{"{first.isoformat()}","{second.isoformat()}"}}'
