"""``keys rotate``: every token re-encrypted under the first key and every blind index
recomputed with the current index key, in one transaction, the sends' and opt-outs'
indexes moved along."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.core.crypto import DataCipher
from orchestrator.store.tables import ENCRYPTED_COLUMNS, AccountRow, OptOut, Send, table_of

__all__ = ["rotate_keys"]


def rotate_keys(
    engine: Engine,
    cipher: DataCipher,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> int:
    """Re-encrypt every token under the first key and recompute every blind index with
    the current index key, in one transaction. Returns the number of rows rewritten."""
    now = now or datetime.now(UTC)
    index_map: dict[str, str] = {}  # old index -> current index, for sends and opt-outs
    done = 0
    with engine.begin() as conn:
        for table_name, columns in ENCRYPTED_COLUMNS.items():
            table = AccountRow.metadata.tables[table_name]
            pk = next(iter(table.primary_key.columns))
            after = ""
            update = (
                table.update()
                .where(pk == sa.bindparam("b_pk"))
                .values(
                    {
                        c: sa.bindparam(c)
                        for c in (*columns, "phone_index", "email_index", "personal_digest")
                    }
                )
            )
            while True:
                rows = conn.execute(
                    sa.select(table).where(pk > after).order_by(pk).limit(batch)
                ).all()
                if not rows:
                    break
                params = []
                for r in rows:
                    clear = {c: cipher.decrypt(getattr(r, c)) for c in columns}
                    values: dict[str, Any] = {"b_pk": getattr(r, pk.name)}
                    values.update({c: cipher.rotate(getattr(r, c)) for c in columns})
                    for kind, col in (("phone", "phone_enc"), ("email", "email_enc")):
                        current = cipher.index(clear[col], kind)
                        values[f"{kind}_index"] = current
                        if current:
                            for old in cipher.index_candidates(clear[col], kind):
                                index_map[old] = current
                            old_stored = getattr(r, f"{kind}_index")
                            if old_stored:
                                index_map[old_stored] = current
                    personal = (
                        [clear.get(f"{f}_enc") for f in ("name", "phone", "email")]
                        + [clear.get("address_line1_enc"), clear.get("address_line2_enc")]
                        if table_name == "account"
                        else [clear.get("name_enc"), clear.get("phone_enc"), clear.get("email_enc")]
                    )
                    values["personal_digest"] = cipher.digest(personal)
                    params.append(values)
                conn.execute(update, params)
                done += len(params)
                after = getattr(rows[-1], pk.name)
                if progress:
                    progress(done)
        _remap(conn, table_of(Send), "to_index", index_map)
        _remap(conn, table_of(OptOut), "contact_index", index_map)
        from orchestrator.store.tables import AuditLog

        conn.execute(
            table_of(AuditLog)
            .insert()
            .values(
                time=now,
                actor="cli",
                action="keys.rotated",
                object_type="database",
                object_id=None,
                detail={"rows": done},
            )
        )
    return done


def _remap(conn: Connection, table: sa.Table, column: str, index_map: dict[str, str]) -> None:
    changes = {old: new for old, new in index_map.items() if old != new}
    if not changes:
        return
    col = table.c[column]
    stmt = (
        table.update().where(col == sa.bindparam("b_old")).values({column: sa.bindparam("b_new")})
    )
    conn.execute(stmt, [{"b_old": old, "b_new": new} for old, new in changes.items()])
