"""One validator for account rows (docs/csv.md), wherever they come from.

The CSV importer, the REST API and ``simulate``'s scenario accounts all call
``parse_account``: values may be strings (CSV) or native types (YAML dates, numbers,
booleans). It never raises on bad input; it returns the problems, each naming the
column, so a caller can report every one of them.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import babel
import babel.numbers
import phonenumbers

from orchestrator.core.account import ACCOUNT_COLUMNS, REQUIRED_ACCOUNT_COLUMNS, Account
from orchestrator.core.bounds import AMOUNT_LIMIT, due_date_problem
from orchestrator.core.phones import number_facts
from orchestrator.core.zones import number_zones
from orchestrator.errors import Problem

__all__ = [
    "CONTROL",
    "MAX_LENGTH",
    "format_input_problem",
    "parse_account",
    "parse_bool",
    "parse_decimal",
    "parse_iso_date",
    "valid_currency",
]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}
_KNOWN = frozenset(ACCOUNT_COLUMNS)

# The longest value each column takes, from the CSV and the API alike: far above any real
# one, low enough that one row cannot carry megabytes into every table, letter and log.
MAX_LENGTH: dict[str, int] = {
    "account_id": 100, "debtor_id": 100, "name": 200, "phone": 40, "email": 254,
    "address_line1": 200, "address_line2": 200, "city": 100, "region": 100,
    "postal_code": 20, "country": 10, "timezone": 64, "locale": 35, "email_type": 10,
    "currency": 10, "balance": 40, "due_date": 40, "creditor": 100, "reference": 100,
    "consent_sms": 10, "consent_voice": 10, "consent_email": 10, "segment": 100,
}
# Never part of a name, an address or an id: C0 and C1 controls and DEL (PostgreSQL
# refuses a NUL outright; the rest break CSV manifests, letters and log lines), the line
# and paragraph separators, and lone surrogates (which cannot even be encoded to UTF-8).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def format_input_problem(problem: Problem) -> str:
    """``FILE:LINE: COLUMN: message`` — the import error format (docs/csv.md)."""
    where = problem.path
    if problem.line is not None:
        where += f":{problem.line}"
    if problem.field:
        return f"{where}: {problem.field}: {problem.message}"
    return f"{where}: {problem.message}"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(babel.numbers.list_currencies())


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    territories = babel.Locale("en").territories
    codes = {str(t) for t in territories if isinstance(t, str) and len(t) == 2 and t.isalpha()}
    return frozenset(codes | set(phonenumbers.SUPPORTED_REGIONS))


@lru_cache(maxsize=512)
def _locale_ok(value: str) -> bool:
    try:
        babel.Locale.parse(value, sep="-")
    except (ValueError, TypeError, babel.UnknownLocaleError):
        return False
    return True


def valid_currency(code: str) -> bool:
    return code in _currencies()


def parse_bool(value: Any) -> bool | None:
    """true/false/yes/no/1/0; empty or absent is ``None``. Raises ``ValueError``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_decimal(value: Any) -> Decimal:
    """An exact decimal from a string or number (never through float arithmetic)."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return _iso_date_text(str(value).strip(), value)


def _iso_date_text(text: str, value: Any) -> date:
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"expected an ISO date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a valid date: {value!r}") from None


# Imports repeat the same few values row after row (due dates, phone numbers of a
# debtor's several accounts, currencies): each is validated once, the answer cached.
# The caches are bounded so that memory stays flat however long the file.


@lru_cache(maxsize=8192)
def _cached_date(text: str) -> date | str:
    """The date of an ISO ``text`` (already stripped), or the error message."""
    try:
        return _iso_date_text(text, text)
    except ValueError as exc:
        return str(exc)


@lru_cache(maxsize=32768)
def _cached_phone(phone: str, region: str | None
                  ) -> tuple[str | None, tuple[str, ...] | None, str | None]:
    """``(E.164, zone keys, None)`` for a valid number, else ``(None, None, error
    message)``.

    ``phonenumbers`` is by far the slowest validator: one ``parse`` and one type lookup
    per distinct ``(number, region)``, which give its validity and its zones together
    (the import stores them: ``zones.phone_zones_text``)."""
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as exc:
        return None, None, f"invalid phone number {phone!r}: {exc}"
    facts = number_facts(number)
    if facts.valid:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return e164, number_zones(facts), None
    return None, None, f"invalid phone number {phone!r}"


_CENT = Decimal("0.01")
_CONSENTS = ("consent_sms", "consent_voice", "consent_email")


def text_problem(text: str, limit: int) -> str | None:
    """Why ``text`` cannot be stored (too long, or a control character), else ``None``.
    The message never quotes the value: it may be personal data, or megabytes."""
    if len(text) > limit:
        return f"too long: {len(text)} characters (at most {limit})"
    found = CONTROL.search(text)
    if found is not None:
        return f"control character U+{ord(found.group()):04X} is not allowed"
    return None


def _bad_texts(values: Mapping[str, str | None]) -> dict[str, str]:
    """``{column: message}`` for the values ``text_problem`` refuses. Every import row
    passes here: one search over all the values together and a length test each settle
    the usual case (about 2 us a row); a column is looked at alone only when something
    is wrong."""
    if CONTROL.search("".join(filter(None, values.values()))) is None:
        for column, text in values.items():
            if text and len(text) > MAX_LENGTH[column]:
                break
        else:
            return {}
    bad = {}
    for column, text in values.items():
        problem = None if text is None else text_problem(text, MAX_LENGTH[column])
        if problem is not None:
            bad[column] = problem
    return bad


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def parse_account(
    row: Mapping[str, Any], *, source: str, line: int | None
) -> tuple[Account | None, list[Problem]]:
    """Validate and normalise one account row; ``(None, problems)`` if anything is wrong."""
    problems: list[Problem] = []

    def err(column: str, message: str) -> None:
        problems.append(Problem(path=source, line=line, column=None, message=message, field=column))

    if not _KNOWN.issuperset(row):
        for key in row:
            if key not in _KNOWN:
                err(str(key), f"unknown column {key!r}")

    values: dict[str, str | None] = {}
    get = row.get
    for column in ACCOUNT_COLUMNS:
        raw = get(column)
        if raw.__class__ is str:  # the CSV case: no conversion needed
            values[column] = raw.strip() or None
        else:
            values[column] = _text(raw)
    bad = _bad_texts(values)
    for column, message in bad.items():
        err(column, message)
        values[column] = None  # reported once: no second message quoting it
    for column in REQUIRED_ACCOUNT_COLUMNS:
        if values[column] is None and column not in bad:
            err(column, "required value is missing")

    country = values["country"]
    if country is not None:
        country = country.upper()
        if country not in _countries():
            err("country", f"unknown country {values['country']!r} (ISO 3166-1 alpha-2)")
            country = None

    phone = values["phone"]
    phone_zones = None
    if phone is not None:
        phone, phone_zones, problem = _cached_phone(phone, country)
        if problem is not None:
            err("phone", problem)

    email = values["email"]
    if email is not None:
        if _EMAIL.fullmatch(email):
            email = email.lower()
        else:
            err("email", f"invalid email address {email!r}")

    balance: Decimal | None = None
    if values["balance"] is not None:
        try:
            balance = parse_decimal(get("balance"))
        except ValueError as exc:
            err("balance", str(exc))
        else:
            if balance < 0:
                err("balance", f"balance must not be negative, got {values['balance']}")
                balance = None
            elif balance >= AMOUNT_LIMIT:  # before quantize, which fails on huge values
                err("balance", f"balance too large: {values['balance']}")
                balance = None
            elif balance != balance.quantize(_CENT):
                err("balance", f"more than 2 decimal places: {values['balance']}")
                balance = None

    due: date | None = None
    due_text = values["due_date"]
    if due_text is not None:
        raw_due = get("due_date")
        if raw_due.__class__ is str:
            cached = _cached_date(due_text)
            if isinstance(cached, date):
                due = cached
            else:  # the message quotes the value as given
                try:
                    due = parse_iso_date(raw_due)
                except ValueError as exc:
                    err("due_date", str(exc))
        else:
            try:
                due = parse_iso_date(raw_due)
            except ValueError as exc:
                err("due_date", str(exc))
        out_of_range = due_date_problem(due) if due is not None else None
        if out_of_range is not None:  # the planner's date arithmetic stays in range
            err("due_date", out_of_range)
            due = None

    currency = values["currency"]
    if currency is not None:
        currency = currency.upper()
        if not valid_currency(currency):
            err("currency", f"unknown currency {values['currency']!r} (ISO 4217)")

    tz = values["timezone"]
    if tz is not None and tz not in _zones():
        err("timezone", f"unknown time zone {tz!r} (IANA, e.g. America/New_York)")

    locale = values["locale"]
    if locale is not None:
        locale = locale.replace("_", "-")
        if not _locale_ok(locale):
            err("locale", f"unknown locale {values['locale']!r} (BCP 47, e.g. en-US)")

    email_type = values["email_type"]
    if email_type is not None:
        email_type = email_type.lower()
        if email_type not in ("personal", "work"):
            err("email_type", f"expected personal or work, got {values['email_type']!r}")

    consents: dict[str, bool | None] = {}
    for column in _CONSENTS:
        if column in bad:
            continue
        try:
            consents[column] = parse_bool(get(column))
        except ValueError as exc:
            err(column, str(exc))

    if problems:
        return None, problems
    assert balance is not None and due is not None and currency is not None
    region = values["region"]
    account = Account(
        account_id=values["account_id"] or "",
        debtor_id=values["debtor_id"] or "",
        name=values["name"] or "",
        phone=phone,
        email=email,
        address_line1=values["address_line1"],
        address_line2=values["address_line2"],
        city=values["city"],
        region=region.upper() if region else None,
        postal_code=values["postal_code"],
        country=country,
        timezone=tz,
        locale=locale,
        email_type=email_type,
        currency=currency,
        balance=balance,
        due_date=due,
        creditor=values["creditor"],
        reference=values["reference"],
        consent_sms=consents["consent_sms"],
        consent_voice=consents["consent_voice"],
        consent_email=consents["consent_email"],
        segment=values["segment"],
        phone_zones=phone_zones,  # found with the check of the number
    )
    return account, []
