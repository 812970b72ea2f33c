"""Candidate and primary time zones of an account (docs/configuration.md, ``timezone``).

Every zone that a listed source suggests is a candidate, and permitted hours must hold
in all of them (Reg F: conflicting or ambiguous location information). The *primary*
zone, used for everything counted in local days, is the first source in
``tz_policy.sources`` order that yields a zone, else ``tz_policy.default``.

Sources:

- ``explicit``: the account's own ``timezone``.
- ``address``: the zone(s) of ``country`` + ``region``. US states come from the ``us``
  package (a state spanning several zones yields all of them); other countries from the
  tz database's ``zone.tab`` (a multi-zone country without a known region yields all of
  its zones: the safe side, since hours then hold everywhere the debtor may be).
- ``phone``: ``phonenumbers``' zones for a geographic number. A non-geographic number
  (toll-free, premium, VoIP...) says nothing about where the person is and yields none.

Pure and cached: a million accounts share a handful of distinct results.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
import us

from orchestrator.config.models import TimezonePolicy
from orchestrator.core.account import Account
from orchestrator.core.phones import PhoneFacts, phone_facts

__all__ = [
    "Zones",
    "account_phone_zones",
    "address_zones",
    "candidate_zones",
    "local_date",
    "number_zones",
    "phone_zones",
    "phone_zones_text",
    "place_zones",
    "stored_phone_zones",
]

# China legally runs on Beijing time everywhere; Xinjiang also keeps a local clock.
_COUNTRY_OVERRIDE: dict[str, tuple[str, ...]] = {"CN": ("Asia/Shanghai",)}
_REGION_ZONES: dict[tuple[str, str], tuple[str, ...]] = {
    ("CN", "XJ"): ("Asia/Shanghai", "Asia/Urumqi"),
    ("CN", "65"): ("Asia/Shanghai", "Asia/Urumqi"),
}


@dataclass(frozen=True)
class Zones:
    """The account's primary zone and every candidate zone (sorted by key, primary included)."""

    primary: ZoneInfo
    candidates: tuple[ZoneInfo, ...]


def candidate_zones(account: Account, tz_policy: TimezonePolicy) -> Zones:
    """Candidate and primary zones of ``account`` under ``tz_policy`` (docs/configuration.md)."""
    found: list[tuple[str, ...]] = []
    for source in tz_policy.sources:
        if source == "explicit":
            found.append(_explicit_zones(account.timezone))
        elif source == "address":
            found.append(address_zones(account.country, account.region))
        elif source == "phone":
            found.append(account_phone_zones(account))
    return _combine(tuple(found), tz_policy.default)


def account_phone_zones(account: Account) -> tuple[str, ...]:
    """Zone keys of the account's phone: those it carries (found when its number was
    checked, at import or in the file it came from), else read from the number."""
    known = account.phone_zones
    return phone_zones(account.phone) if known is None else known


def phone_zones_text(account: Account) -> str:
    """``account_phone_zones`` as the account row stores them (``phone_zones``): the
    phonenumbers release they come from, then the keys. A release with other data makes
    them unknown again, so they are read afresh from the number, never trusted stale."""
    return " ".join((_PHONE_DATA, *account_phone_zones(account)))


def stored_phone_zones(text: str | None) -> tuple[str, ...] | None:
    """The keys ``phone_zones_text`` stored, or None when there are none or they come
    from another phonenumbers release. Importing a number is the only way a row's phone
    changes, and it writes both together; it stores valid numbers only, so keys read
    here (even none) also say the number is valid under this release (the gate relies
    on it)."""
    if not text:
        return None
    release, *keys = text.split(" ")
    return tuple(keys) if release == _PHONE_DATA else None


def local_date(account: Account, tz_policy: TimezonePolicy, now: datetime) -> date:
    """The date at ``now`` in the account's primary zone: the day its DPD counts on."""
    return now.astimezone(candidate_zones(account, tz_policy).primary).date()


def place_zones(
    timezone: str | None, country: str | None, region: str | None, tz_policy: TimezonePolicy
) -> Zones:
    """Zones from the explicit zone and the address only, never the phone: for reports,
    which read stored accounts without decrypting personal data. The same as
    ``candidate_zones`` for every account whose explicit zone or address gives one."""
    found: list[tuple[str, ...]] = []
    for source in tz_policy.sources:
        if source == "explicit":
            found.append(_explicit_zones(timezone))
        elif source == "address":
            found.append(address_zones(country, region))
    return _combine(tuple(found), tz_policy.default)


def address_zones(country: str | None, region: str | None) -> tuple[str, ...]:
    """Zone keys of an address, its most likely zone first; ``()`` if none is known."""
    c = (country or "").strip().upper()
    r = (region or "").strip().upper()
    if r.startswith(f"{c}-"):
        r = r[len(c) + 1 :]
    return _address_zones(c, r)


def phone_zones(phone: str | None) -> tuple[str, ...]:
    """Zone keys of a geographic phone number (E.164); ``()`` if it gives no place."""
    if not phone:
        return ()
    return _phone_zones(phone.strip())


# --- internals ---------------------------------------------------------------------------

_PHONE_DATA = f"phonenumbers-{phonenumbers.__version__}"


@lru_cache(maxsize=1024)
def _combine(found: tuple[tuple[str, ...], ...], default: str) -> Zones:
    primary: ZoneInfo | None = None
    candidates: dict[str, ZoneInfo] = {}
    for keys in found:
        for key in keys:
            zone = _zone(key)
            if zone is None:
                continue
            if primary is None:
                primary = zone
            candidates.setdefault(zone.key, zone)
    if primary is None:
        primary = ZoneInfo(_canonical(default))
        candidates[primary.key] = primary
    return Zones(primary, tuple(candidates[k] for k in sorted(candidates)))


@lru_cache(maxsize=4096)
def _zone(key: str) -> ZoneInfo | None:
    """A ZoneInfo for ``key`` under its canonical name (links resolved); None if unknown."""
    try:
        return ZoneInfo(_canonical(key))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _canonical(key: str) -> str:
    return _links().get(key, key)


@lru_cache(maxsize=1)
def _links() -> dict[str, str]:
    """Backward links of the tz database (``America/Indianapolis`` → ``America/Indiana/...``)."""
    links: dict[str, str] = {}
    for text in _tz_files("tzdata.zi"):
        for line in text.splitlines():
            if line.startswith("L "):
                _, target, name = line.split()[:3]
                links[name] = target
        break
    return links


@lru_cache(maxsize=1)
def _country_table() -> dict[str, tuple[str, ...]]:
    """ISO country → zone keys, in ``zone.tab`` order (the most populous area first)."""
    table: dict[str, list[str]] = {}
    for text in _tz_files("zone.tab"):
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) >= 3:
                table.setdefault(parts[0].upper(), []).append(parts[2])
        break
    return {c: tuple(z) for c, z in table.items()}


def _tz_files(name: str) -> Iterable[str]:
    """The text of a tz database file from the system zoneinfo, else the tzdata package."""
    for root in zoneinfo.TZPATH:
        path = Path(root) / name
        if path.is_file():
            yield path.read_text(encoding="utf-8", errors="replace")
    try:  # pragma: no cover - only where the system has no tz database
        from importlib.resources import files

        yield (files("tzdata") / "zoneinfo" / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return


def _explicit_zones(key: str | None) -> tuple[str, ...]:
    if not key or not key.strip():
        return ()
    return (key.strip(),) if _zone(key.strip()) is not None else ()


@lru_cache(maxsize=4096)
def _address_zones(country: str, region: str) -> tuple[str, ...]:
    if not country:
        return ()
    if country == "US" and region:
        state = us.states.lookup(region)
        if state is not None and state.time_zones:
            keys = _valid(state.time_zones)
            capital = getattr(state, "capital_tz", None)
            first = _canonical(capital) if capital else None
            if first not in keys:
                first = sorted(keys)[0] if keys else None
            if first is not None:
                return (first, *sorted(k for k in keys if k != first))
    if region and (country, region) in _REGION_ZONES:
        return _REGION_ZONES[(country, region)]
    if country in _COUNTRY_OVERRIDE:
        return _COUNTRY_OVERRIDE[country]
    return _valid(_country_table().get(country, ()))


def _phone_zones(phone: str) -> tuple[str, ...]:
    return number_zones(phone_facts(phone))


def number_zones(facts: PhoneFacts | None) -> tuple[str, ...]:
    """Zone keys of a number, from its ``phone_facts``: a geographic number maps to its
    area's zones; a mobile number of a country whose mobiles are not geographic maps to
    the country's zones."""
    if facts is None:
        return ()
    return _valid(k for k in facts.zones if k != "Etc/Unknown")


def _valid(keys: Iterable[str]) -> tuple[str, ...]:
    """Known zones under canonical names, order kept, duplicates dropped."""
    out: dict[str, None] = {}
    for key in keys:
        zone = _zone(key)
        if zone is not None:
            out.setdefault(zone.key, None)
    return tuple(out)
