"""Reading and writing account state through the tables, with personal data decrypted
only here: load accounts as ``domain.Account`` and record decisions (``timeline`` builds
what ``account show`` tells, ``keys`` re-encrypts everything on ``keys rotate``)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from orchestrator.core.account import PERSONAL_FIELDS, Account
from orchestrator.core.crypto import DataCipher, mask_phone
from orchestrator.core.records import DecisionRecord
from orchestrator.core.zones import stored_phone_zones
from orchestrator.store.tables import AccountRow, Decision, table_of

__all__ = [
    "SealedAccount",
    "account_from_row",
    "decision_values",
    "iter_accounts",
    "load_account",
    "record_decision",
]

account_t = table_of(AccountRow)
decision_t = table_of(Decision)


class _Sealed:
    """A personal field of a ``SealedAccount``: decrypted when first read. Planning and
    most of the gate never read one (zones come from the stored ``phone_zones``), so a
    planning round decrypts nothing, where it decrypted five fields an account."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        fields = obj.__dict__
        try:
            return fields[self.name]
        except KeyError:
            value = fields["_cipher"].decrypt(fields["_sealed"].pop(self.name))
            if self.name == "name":
                value = value or ""
            fields[self.name] = value
            return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


class SealedAccount(Account):
    """An ``Account`` read from its row (``account_from_row``), its personal fields
    decrypted on first read."""

    name = _Sealed()
    phone = _Sealed()
    email = _Sealed()
    address_line1 = _Sealed()
    address_line2 = _Sealed()

    def __eq__(self, other: object) -> bool:
        """Equal to an ``Account`` (sealed or not) with the same fields."""
        if not isinstance(other, Account):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _COMPARED)

    __hash__ = None  # type: ignore[assignment]  # as ``Account``'s: mutable


_COMPARED = tuple(f.name for f in fields(Account) if f.compare)
# The account row's columns an ``Account`` takes as they are (its personal fields are
# sealed, ``phone_zones`` parsed).
_CLEAR_FIELDS = tuple(
    f.name for f in fields(Account) if f.name not in PERSONAL_FIELDS and f.name != "phone_zones"
)


def account_from_row(row: Row[Any] | Any, cipher: DataCipher, *, sealed: bool = False) -> Account:
    """An ``Account`` from an ``account`` row, its personal fields decrypted now, or
    with ``sealed`` when first read (planning reads none: a data key that opens
    nothing is then found by the first part that does read one, as at dispatch).

    Built field by field (the dataclass's ``__init__`` would pass each personal field
    through its descriptor only to take it back out), a row's values taken by position:
    a planning round builds one for every account it plans."""
    clear, personal = _getters(row)
    account = SealedAccount.__new__(SealedAccount)
    values = account.__dict__
    values.update(zip(_CLEAR_FIELDS, clear(row), strict=True))
    values["phone_zones"] = stored_phone_zones(row.phone_zones)
    values["_cipher"] = cipher
    values["_sealed"] = dict(zip(PERSONAL_FIELDS, personal(row), strict=True))
    if not values["debtor_id"]:  # ``Account.__post_init__``
        values["debtor_id"] = values["account_id"]
    if not sealed:
        for name in PERSONAL_FIELDS:
            getattr(account, name)
    return account


_Getter = Callable[[Any], tuple[Any, ...]]
_GETTERS: dict[tuple[str, ...], tuple[_Getter, _Getter]] = {}


# The getters of the last result read (its rows share one description, ``Row._parent``):
# a row's ``_fields`` builds a new tuple at every read, a fifth of a planning round's
# cost of building its accounts when asked once per row.
# One tuple, read and replaced whole, so that threads never pair one's with another's.
_LAST: list[tuple[Any, Any]] = [(None, None)]


def _getters(row: Any) -> tuple[_Getter, _Getter]:
    """What reads an ``Account``'s clear columns and its sealed ones from ``row``: by
    position for a result row (per column list), by name for anything else."""
    parent = getattr(row, "_parent", None)
    last_parent, last_found = _LAST[0]
    if parent is not None and parent is last_parent:
        return last_found  # type: ignore[no-any-return]
    found = _getters_of(row)
    if parent is not None:
        _LAST[0] = (parent, found)
    return found


def _getters_of(row: Any) -> tuple[_Getter, _Getter]:
    columns = getattr(row, "_fields", None)
    if columns is None:
        return (
            lambda r: tuple(getattr(r, name) for name in _CLEAR_FIELDS),
            lambda r: tuple(getattr(r, f"{name}_enc") for name in PERSONAL_FIELDS),
        )
    found = _GETTERS.get(columns)
    if found is None:
        at = {name: i for i, name in enumerate(columns)}
        found = (
            _tuple_getter([at[name] for name in _CLEAR_FIELDS]),
            _tuple_getter([at[f"{name}_enc"] for name in PERSONAL_FIELDS]),
        )
        _GETTERS[columns] = found
    return found


def _tuple_getter(positions: list[int]) -> _Getter:
    get = operator.itemgetter(*positions)
    return get if len(positions) > 1 else lambda r: (get(r),)


def load_account(conn: Connection, cipher: DataCipher, account_id: str) -> Account | None:
    row = conn.execute(sa.select(account_t).where(account_t.c.account_id == account_id)).first()
    return None if row is None else account_from_row(row, cipher)


def iter_accounts(
    engine: Engine, cipher: DataCipher, *, status: str | None = "open", batch: int = 1000
) -> Iterator[Account]:
    """Every account (by default the open ones), in ``account_id`` order, paged by key so
    memory stays flat however large the portfolio."""
    after = ""
    while True:
        query = sa.select(account_t).where(account_t.c.account_id > after)
        if status is not None:
            query = query.where(account_t.c.status == status)
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(account_t.c.account_id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield account_from_row(row, cipher)
        after = rows[-1].account_id


def decision_values(record: DecisionRecord, *, occurrence_id: int | None = None) -> dict[str, Any]:
    """The ``decision`` row of one record; ``record.to`` is stored masked, never in clear."""
    to = record.to
    masked = mask_phone(to) if to and to.startswith("+") else _mask_any(to)
    return {
        "occurrence_id": occurrence_id,
        "time": record.time,
        "local_time": record.local_time,
        "account_id": record.account,
        "debtor_id": record.debtor,
        "stage": record.stage,
        "step": record.step,
        "channel": record.channel,
        "kind": record.kind,
        "decision": str(record.decision),
        "reason": record.reason,
        "until": record.until,
        "message_id": record.message_id,
        "to_masked": masked,
        "subject": record.subject,
        "segment": record.segment,
        "experiment": record.experiment,
        "variant": record.variant,
    }


def record_decision(
    conn: Connection, record: DecisionRecord, *, occurrence_id: int | None = None
) -> int:
    """Insert one decision; ``record.to`` is stored masked, never in clear."""
    result = conn.execute(
        decision_t.insert().values(decision_values(record, occurrence_id=occurrence_id))
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _mask_any(to: str | None) -> str | None:
    from orchestrator.core.crypto import mask_email

    if not to:
        return None
    if "@" in to:
        return mask_email(to)
    return "***"  # a postal address or anything else: never stored
