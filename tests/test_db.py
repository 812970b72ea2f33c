"""Schema: migrations create exactly the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from orchestrator.store import db, tables


def test_upgrade_is_idempotent_and_reaches_head(db_url: str) -> None:
    db.upgrade(db_url)
    db.upgrade(db_url)
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config(db_url)).get_current_head()
    assert head is not None and db.current_revision(db_url) == head
    engine = db.make_engine(db_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(tables.metadata.tables) <= names


def _not_the_partition_index(obj: Any, name: str | None, kind: str, *_: Any) -> bool:
    """Migration 0018's index on PostgreSQL (an expression, for planning partitions) is
    not in the models: SQLite has no such function and needs no partitions."""
    return not (kind == "index" and name == "ix_account_plan_partition")


def test_migrations_match_models(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            options = {"compare_type": True, "include_object": _not_the_partition_index}
            context = MigrationContext.configure(conn, opts=options)
            assert compare_metadata(context, tables.metadata) == []
    finally:
        engine.dispose()


def test_sqlite_directory_is_created_and_wal_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'nested' / 'o.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_instants_come_back_aware_utc_and_money_as_decimal(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    paris = timezone(timedelta(hours=1))
    try:
        with db.session_scope(engine) as session:
            session.add(tables.Debtor(id="D1"))
            session.flush()
            session.add(
                tables.AccountRow(
                    account_id="A1",
                    debtor_id="D1",
                    balance=Decimal("1234567890123.45"),
                    currency="USD",
                    due_date=date(2026, 2, 20),
                    stage_entered_at=datetime(2026, 3, 2, 10, 0, tzinfo=paris),
                )
            )
        with db.session_scope(engine) as session:
            row = session.get(tables.AccountRow, "A1")
            assert row is not None
            assert row.balance == Decimal("1234567890123.45")
            assert isinstance(row.balance, Decimal)
            assert row.stage_entered_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
            assert row.stage_entered_at.utcoffset() == timedelta(0)
    finally:
        engine.dispose()


def test_sessions_run_in_utc_whatever_the_database_default(db_url: str) -> None:
    """The driver reads instants a third faster in a UTC session: every session is put in
    UTC, over a database whose default is another zone, and options given in the URL
    are kept (a ``TimeZone`` given there wins)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL sessions")
    database = sa.engine.make_url(db_url).database
    admin = sa.create_engine(db.normalize_url(db_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # (the database is dropped after the test)
        conn.execute(sa.text(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Tokyo'"))
    admin.dispose()
    plain = sa.create_engine(db.normalize_url(db_url))
    ours = db.make_engine(db_url)
    given = db.make_engine(f"{db_url}?options=-c%20statement_timeout%3D4000")
    chosen = db.make_engine(f"{db_url}?options=-c%20TimeZone%3DAmerica/Chicago")
    show = sa.text("SELECT current_setting('TimeZone'), current_setting('statement_timeout')")
    instant = sa.text("SELECT CAST('2026-03-02 10:00:00+01' AS timestamptz)")
    try:
        with plain.connect() as conn:
            assert conn.execute(show).one()[0] == "Asia/Tokyo"
        for engine, expected in ((ours, ("UTC", "0")), (given, ("UTC", "4s"))):
            with engine.connect() as conn:
                assert tuple(conn.execute(show).one()) == expected
                assert conn.execute(instant).scalar() == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        with chosen.connect() as conn:
            assert conn.execute(show).one()[0] == "America/Chicago"
    finally:
        for engine in (plain, ours, given, chosen):
            engine.dispose()


def test_naive_instants_are_refused(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with pytest.raises(sa.exc.StatementError), db.session_scope(engine) as session:
            session.add(
                tables.AuditLog(time=datetime(2026, 3, 2), actor="t", action="x")  # noqa: DTZ001
            )
    finally:
        engine.dispose()


def test_idempotency_constraints(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    try:
        with db.session_scope(engine) as session:
            session.add(tables.Debtor(id="D1"))
            session.flush()
            session.add(
                tables.AccountRow(
                    account_id="A1",
                    debtor_id="D1",
                    balance=Decimal("1"),
                    currency="USD",
                    due_date=date(2026, 2, 1),
                )
            )
            session.flush()
            session.add(
                tables.OccurrenceRow(
                    account_id="A1",
                    step_id="s",
                    occurrence_key="k",
                    planned_at=now,
                    channel="sms",
                    kind="collection",
                )
            )
        with pytest.raises(sa.exc.IntegrityError), db.session_scope(engine) as session:
            session.add(
                tables.OccurrenceRow(
                    account_id="A1",
                    step_id="s",
                    occurrence_key="k",
                    planned_at=now,
                    channel="sms",
                    kind="collection",
                )
            )
    finally:
        engine.dispose()


def test_known_revisions_are_alembics_chain_of_migrations() -> None:
    """``db.known_revisions`` reads the migration files itself (Alembic's import is slow
    for every command): it must find the chain Alembic finds, head last."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    chain = tuple(s.revision for s in script.walk_revisions())[::-1]
    assert db.known_revisions() == chain
    assert chain[-1] == script.get_current_head()


def test_the_account_plan_moves_to_its_own_table_with_its_values(db_url: str) -> None:
    """Migration 0020 moves each account's planning due time and sequence out of the
    wide ``account`` row, values kept, on a database holding accounts and the rows that
    refer to them (SQLite drops the columns in place: no copy of ``account``)."""
    db.upgrade(db_url, "0019")
    engine = db.make_engine(db_url)
    due = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO debtor (id) VALUES ('D1')"))
            for account_id, plan_due_at, seq in (("A1", due, 3), ("A2", None, 0), ("A3", None, 2)):
                conn.execute(
                    sa.text(
                        "INSERT INTO account (account_id, debtor_id, currency, balance, "
                        "due_date, status, plan_due_at, plan_seq) VALUES (:a, 'D1', 'USD', 10, "
                        "'2026-02-01', 'open', :due, :seq)"
                    ),
                    {"a": account_id, "due": plan_due_at, "seq": seq},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO occurrence (account_id, step_id, occurrence_key, planned_at, "
                    "channel, kind, state, attempts) VALUES ('A1', 's', 'k', :at, 'sms', "
                    "'collection', 'pending', 0)"
                ),
                {"at": due},
            )
        db.upgrade(db_url)
        plans = tables.table_of(tables.AccountPlan)
        with engine.connect() as conn:
            moved = {
                r.account_id: (r.plan_due_at, r.plan_seq)
                for r in conn.execute(sa.select(plans)).all()
            }
            columns = {c["name"] for c in sa.inspect(conn).get_columns("account")}
            occurrences = conn.execute(sa.text("SELECT count(*) FROM occurrence")).scalar_one()
        # A2 was never planned and never changed: no row, which planning reads as due
        assert moved == {"A1": (due, 3), "A3": (None, 2)}
        assert not {"plan_due_at", "plan_seq"} & columns and occurrences == 1
    finally:
        engine.dispose()
