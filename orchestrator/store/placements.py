"""Agency placement (委外): accounts placed with a collection agency, and recalled.

While an account is placed (a ``placement`` row not recalled), the gate suppresses our
own collection and service sends with reason ``placed`` (notices still go); recalling it
gives the account back. Placing writes the agency's placement file, CSV and JSON, with
only the fields its agreement names (``agencies`` in ``creditors.yaml``): personal
fields are decrypted for those fields only, and the files, which hold them in clear,
are written atomically (a temporary file, then a rename). Every placement and recall is
in the audit log with its actor. The callers (CLI, API) commit.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchestrator.config.models import PERSONAL_PLACEMENT_FIELDS, Agency, Config
from orchestrator.core.crypto import DataCipher
from orchestrator.core.state import REACHED
from orchestrator.errors import Invalid, Unknown
from orchestrator.store import audit
from orchestrator.store.facts import replan
from orchestrator.store.inlist import one_of
from orchestrator.store.tables import AccountRow, Placement, Send, table_of

__all__ = [
    "PlacementView",
    "Placed",
    "find_placement",
    "list_placements",
    "parse_rule",
    "place",
    "recall",
    "select_by_rule",
]

placement_t = table_of(Placement)
account_t = table_of(AccountRow)
send_t = table_of(Send)

RULE_KEYS = ("stage", "no_contact_days")


@dataclass(frozen=True)
class PlacementView:
    id: int
    account_id: str
    agency: str
    placed_at: datetime
    recalled_at: datetime | None
    actor: str
    recalled_by: str | None

    @classmethod
    def of(cls, row: Row[Any]) -> PlacementView:
        return cls(
            row.id,
            row.account_id,
            row.agency,
            row.placed_at,
            row.recalled_at,
            row.actor,
            row.recalled_by,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "agency": self.agency,
            "placed_at": _iso(self.placed_at),
            "recalled_at": _iso(self.recalled_at),
            "actor": self.actor,
            "recalled_by": self.recalled_by,
            "in_force": self.recalled_at is None,
        }


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Placed:
    """What a placement did: the placements made, the accounts placed already (left as
    they were), and the placement files written."""

    placements: list[PlacementView]
    already: list[str]
    files: list[Path]


def parse_rule(text: str) -> dict[str, Any]:
    """``stage=M3+,no_contact_days=30`` → ``{"stage": "M3+", "no_contact_days": 30}``;
    ``Invalid`` (field ``rule``) naming what is wrong."""
    rule: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in RULE_KEYS or not value:
            raise Invalid(
                [
                    {
                        "field": "rule",
                        "message": f"{part!r}: expected KEY=VALUE with KEY one of "
                        f"{', '.join(RULE_KEYS)}",
                    }
                ],
                "invalid",
            )
        if key == "no_contact_days":
            if not value.isdigit() or not 1 <= int(value) <= 3650:
                raise Invalid(
                    [{"field": "rule", "message": "no_contact_days: a whole number, 1 to 3650"}],
                    "invalid",
                )
            rule[key] = int(value)
        else:
            rule[key] = value
    if not rule:
        raise Invalid([{"field": "rule", "message": "an empty rule selects nothing"}], "invalid")
    return rule


def select_by_rule(conn: Connection, rule: dict[str, Any], now: datetime) -> list[str]:
    """The open accounts not placed now that the rule selects: in stage ``stage`` (as the
    planner last wrote it), and with no send that reached the person (delivered,
    answered, ...) in the last ``no_contact_days`` days."""
    query = sa.select(account_t.c.account_id).where(
        account_t.c.status != "closed",
        ~sa.exists().where(
            placement_t.c.account_id == account_t.c.account_id, placement_t.c.recalled_at.is_(None)
        ),
    )
    if "stage" in rule:
        query = query.where(account_t.c.stage == rule["stage"])
    if "no_contact_days" in rule:
        since = now - timedelta(days=rule["no_contact_days"])
        query = query.where(
            ~sa.exists().where(
                send_t.c.account_id == account_t.c.account_id,
                send_t.c.status.in_(sorted(REACHED)),
                send_t.c.sent_at > since,
            )
        )
    return list(conn.execute(query.order_by(account_t.c.account_id)).scalars())


def place(
    conn: Connection,
    config: Config,
    cipher: DataCipher,
    *,
    agency: str,
    account_ids: Sequence[str],
    actor: str,
    now: datetime,
) -> Placed:
    """Place these accounts with ``agency`` and write its placement file. ``Invalid`` for
    an agency not in ``creditors.yaml``; ``Unknown`` for an account that does not exist
    (nothing is placed then). An account placed already (with any agency) stays so."""
    terms = config.creditors.agencies.get(agency)
    if terms is None:
        known = ", ".join(sorted(config.creditors.agencies)) or "none configured"
        raise Invalid(
            [{"field": "agency", "message": f"unknown agency {agency!r} ({known})"}], "invalid"
        )
    ids = sorted(set(account_ids))
    rows = {r.account_id: r for r in _accounts(conn, ids)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise Unknown(f"unknown account {missing[0]!r}", "unknown_account")
    placed_now = set(_in_force(conn, ids))
    made: list[PlacementView] = []
    for account_id in ids:
        if account_id in placed_now:
            continue
        row = conn.execute(
            placement_t.insert()
            .values(account_id=account_id, agency=agency, placed_at=now, actor=actor)
            .returning(*placement_t.c)
        ).one()
        view = PlacementView.of(row)
        made.append(view)
        audit.write(
            conn,
            now=now,
            actor=actor,
            action="placement.place",
            object_type="placement",
            object_id=str(view.id),
            account_id=account_id,
            detail={"agency": agency, "fields": list(terms.fields)},
        )
    files = _write_files(agency, terms, [rows[p.account_id] for p in made], cipher, now, made)
    return Placed(made, sorted(placed_now), files)


def recall(
    conn: Connection,
    *,
    account_ids: Sequence[str] | None = None,
    agency: str | None = None,
    placement_id: int | None = None,
    actor: str,
    now: datetime,
) -> list[PlacementView]:
    """Recall the placements in force of these accounts, all of ``agency``'s, or the one
    ``placement_id``: our own collection resumes (the accounts are planned again)."""
    query = sa.select(placement_t).where(placement_t.c.recalled_at.is_(None))
    if placement_id is not None:
        query = query.where(placement_t.c.id == placement_id)
    if account_ids is not None:
        query = query.where(one_of(placement_t.c.account_id, "ids"))
    if agency is not None:
        query = query.where(placement_t.c.agency == agency)
    rows = conn.execute(query.order_by(placement_t.c.id), {"ids": list(account_ids or [])}).all()
    out: list[PlacementView] = []
    for row in rows:
        conn.execute(
            placement_t.update()
            .where(placement_t.c.id == row.id)
            .values(recalled_at=now, recalled_by=actor)
        )
        out.append(replace(PlacementView.of(row), recalled_at=now, recalled_by=actor))
        audit.write(
            conn,
            now=now,
            actor=actor,
            action="placement.recall",
            object_type="placement",
            object_id=str(row.id),
            account_id=row.account_id,
            detail={"agency": row.agency},
        )
    replan(conn, [p.account_id for p in out])
    return out


def list_placements(
    conn: Connection,
    *,
    agency: str | None = None,
    account_id: str | None = None,
    in_force: bool = False,
) -> list[PlacementView]:
    """Placements, oldest first."""
    query = sa.select(placement_t)
    if agency is not None:
        query = query.where(placement_t.c.agency == agency)
    if account_id is not None:
        query = query.where(placement_t.c.account_id == account_id)
    if in_force:
        query = query.where(placement_t.c.recalled_at.is_(None))
    rows = conn.execute(query.order_by(placement_t.c.placed_at, placement_t.c.id)).all()
    return [PlacementView.of(r) for r in rows]


def find_placement(conn: Connection, placement_id: int) -> PlacementView | None:
    row = conn.execute(sa.select(placement_t).where(placement_t.c.id == placement_id)).first()
    return None if row is None else PlacementView.of(row)


def _accounts(conn: Connection, ids: list[str]) -> list[Row[Any]]:
    if not ids:
        return []
    return list(
        conn.execute(
            sa.select(account_t).where(one_of(account_t.c.account_id, "ids")), {"ids": ids}
        ).all()
    )


def _in_force(conn: Connection, ids: list[str]) -> list[str]:
    if not ids:
        return []
    return list(
        conn.execute(
            sa.select(placement_t.c.account_id).where(
                one_of(placement_t.c.account_id, "ids"), placement_t.c.recalled_at.is_(None)
            ),
            {"ids": ids},
        ).scalars()
    )


# --- the placement file ---------------------------------------------------------------------

_ENCRYPTED = {field: f"{field}_enc" for field in PERSONAL_PLACEMENT_FIELDS}


def placement_record(row: Row[Any], fields: Sequence[str], cipher: DataCipher) -> dict[str, Any]:
    """One account as its agency's file holds it: the agreed fields only, a personal
    field decrypted only when it is one of them."""
    out: dict[str, Any] = {}
    for field in fields:
        if field in _ENCRYPTED:
            out[field] = cipher.decrypt(getattr(row, _ENCRYPTED[field]))
        elif field == "reference":
            out[field] = row.reference or row.account_id
        elif field == "balance":
            out[field] = str(row.balance)
        elif field == "due_date":
            out[field] = row.due_date.isoformat()
        else:
            out[field] = getattr(row, field)
    return out


def _write_files(
    agency: str,
    terms: Agency,
    rows: list[Row[Any]],
    cipher: DataCipher,
    now: datetime,
    made: list[PlacementView],
) -> list[Path]:
    """``<dir>/<agency>/<agency>-<UTC time>-<first placement id>.csv`` and ``.json``."""
    if not rows:
        return []
    records = [placement_record(r, terms.fields, cipher) for r in rows]
    folder = Path(terms.dir) / agency
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{agency}-{now.strftime('%Y%m%dT%H%M%SZ')}-{made[0].id}"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[str(f) for f in terms.fields], lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in records])
    document = {
        "agency": agency,
        "placed_at": _iso(now),
        "fields": list(terms.fields),
        "accounts": records,
    }
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    _atomic(csv_path, text.getvalue())
    _atomic(json_path, json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    return [csv_path, json_path]


def _atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, readable by its owner only (it holds PII)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
