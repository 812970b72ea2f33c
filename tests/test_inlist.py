"""``one_of``: a list bound as one parameter means the same as ``IN (...)``, on SQLite and
PostgreSQL, for text and integer columns, with empty and one-element lists."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.inlist import one_of

metadata = sa.MetaData()
item = sa.Table("inlist_item", metadata, sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("key", sa.String, nullable=True))
BY_KEY = sa.select(item.c.id).where(one_of(item.c.key, "keys")).order_by(item.c.id)
BY_ID = sa.select(item.c.key).where(one_of(item.c.id, "ids"), item.c.key.is_not(None)
                                    ).order_by(item.c.id)
KEYS = ["a", "b", "O'Brien", "ü", "42", "", "a b"]


def test_one_of_matches_in_on_both_backends(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(item.insert(), [{"id": i, "key": k} for i, k in enumerate(KEYS)]
                     + [{"id": 99, "key": None}])

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.sampled_from([*KEYS, "zz"]), max_size=6),
           st.lists(st.integers(min_value=-1, max_value=100), max_size=6))
    def check(keys: list[str], ids: list[int]) -> None:
        with engine.connect() as conn:
            assert conn.execute(BY_KEY, {"keys": keys}).scalars().all() == conn.execute(
                sa.select(item.c.id).where(item.c.key.in_(keys)).order_by(item.c.id)
            ).scalars().all()
            assert conn.execute(BY_ID, {"ids": ids}).scalars().all() == [
                KEYS[i] for i in sorted(set(ids)) if 0 <= i < len(KEYS)]

    check()
    # the whole list is one parameter: one SQL text, whatever its length
    assert list(BY_KEY.compile(dialect=engine.dialect).params) == ["keys"]
    engine.dispose()
