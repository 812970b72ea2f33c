"""One validator for account rows (docs/csv.md), wherever they come from.

The CSV importer, the REST API and ``simulate``'s scenario accounts all call
``parse_account``: values may be strings (CSV) or native types (YAML dates, numbers,
booleans). It never raises on bad input; it returns the problems, each naming the
column, so a caller can report every one of them.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
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
    "account_id": 100,
    "debtor_id": 100,
    "name": 200,
    "phone": 40,
    "email": 254,
    "address_line1": 200,
    "address_line2": 200,
    "city": 100,
    "region": 100,
    "postal_code": 20,
    "country": 10,
    "timezone": 64,
    "locale": 35,
    "email_type": 10,
    "currency": 10,
    "balance": 40,
    "due_date": 40,
    "creditor": 100,
    "reference": 100,
    "consent_sms": 10,
    "consent_voice": 10,
    "consent_email": 10,
    "segment": 100,
    "product": 100,
    "risk_score": 40,
    "principal": 40,
    "interest": 40,
    "fees": 40,
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
def _cached_phone(
    phone: str, region: str | None
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


def _country(text: str, raw: Any, parsed: Mapping[str, Any]) -> str:
    country = text.upper()
    if country not in _countries():
        raise ValueError(f"unknown country {text!r} (ISO 3166-1 alpha-2)")
    return country


def _phone(
    text: str, raw: Any, parsed: Mapping[str, Any]
) -> tuple[str | None, tuple[str, ...] | None]:
    """``(E.164, zone keys)``: the zones are found with the check of the number, read in
    the account's country (hence after it)."""
    phone, zones, problem = _cached_phone(text, parsed["country"])
    if problem is not None:
        raise ValueError(problem)
    return phone, zones


def _email(text: str, raw: Any, parsed: Mapping[str, Any]) -> str:
    if not _EMAIL.fullmatch(text):
        raise ValueError(f"invalid email address {text!r}")
    return text.lower()


def _balance(text: str, raw: Any, parsed: Mapping[str, Any]) -> Decimal:
    balance = parse_decimal(raw)
    if balance < 0:
        raise ValueError(f"balance must not be negative, got {text}")
    if balance >= AMOUNT_LIMIT:  # before quantize, which fails on huge values
        raise ValueError(f"balance too large: {text}")
    if balance != balance.quantize(_CENT):
        raise ValueError(f"more than 2 decimal places: {text}")
    return balance


def _part(text: str, raw: Any, parsed: Mapping[str, Any]) -> Decimal:
    """A part of the balance (``principal``, ``interest``, ``fees``): an amount as the
    balance is (not negative, 2 decimal places)."""
    amount = parse_decimal(raw)
    if not amount.is_finite() or amount < 0 or amount >= AMOUNT_LIMIT:
        raise ValueError(f"must be an amount from 0 to below 10^16, got {text}")
    if amount != amount.quantize(_CENT):
        raise ValueError(f"more than 2 decimal places: {text}")
    return amount


def _risk_score(text: str, raw: Any, parsed: Mapping[str, Any]) -> Decimal:
    score = parse_decimal(raw)
    if not score.is_finite() or abs(score) >= Decimal("1e8"):
        raise ValueError(f"risk score out of range: {text}")
    if score != score.quantize(Decimal("0.0001")):
        raise ValueError(f"more than 4 decimal places: {text}")
    return score


def _due_date(text: str, raw: Any, parsed: Mapping[str, Any]) -> date:
    due = _cached_date(text) if raw.__class__ is str else None
    if not isinstance(due, date):  # a YAML date, or no date: parsed as given, so that
        due = parse_iso_date(raw)  # the message quotes the value as given
    out_of_range = due_date_problem(due)
    if out_of_range is not None:  # the planner's date arithmetic stays in range
        raise ValueError(out_of_range)
    return due


def _currency(text: str, raw: Any, parsed: Mapping[str, Any]) -> str:
    currency = text.upper()
    if not valid_currency(currency):
        raise ValueError(f"unknown currency {text!r} (ISO 4217)")
    return currency


def _timezone(text: str, raw: Any, parsed: Mapping[str, Any]) -> str:
    if text not in _zones():
        raise ValueError(f"unknown time zone {text!r} (IANA, e.g. America/New_York)")
    return text


def _locale(text: str, raw: Any, parsed: Mapping[str, Any]) -> str:
    locale = text.replace("_", "-")
    if not _locale_ok(locale):
        raise ValueError(f"unknown locale {text!r} (BCP 47, e.g. en-US)")
    return locale


def _email_type(text: str, raw: Any, parsed: Mapping[str, Any]) -> str:
    email_type = text.lower()
    if email_type not in ("personal", "work"):
        raise ValueError(f"expected personal or work, got {text!r}")
    return email_type


def _region(text: str, raw: Any, parsed: Mapping[str, Any]) -> str:
    return text.upper()


def _consent(text: str, raw: Any, parsed: Mapping[str, Any]) -> bool | None:
    return parse_bool(raw)


# A column's check: its text (stripped, never empty), the value as given (a CSV string,
# or a YAML or JSON date, number or boolean) and the columns checked before it -> the
# value normalised, or a ValueError whose message is the column's problem. Problems are
# reported in this order; a column not listed is kept as text.
_Check = Callable[[str, Any, Mapping[str, Any]], Any]
_CHECKS: dict[str, _Check] = {
    "country": _country,
    "phone": _phone,  # after the country, which reads a national number
    "email": _email,
    "balance": _balance,
    "risk_score": _risk_score,
    **dict.fromkeys(("principal", "interest", "fees"), _part),
    "due_date": _due_date,
    "currency": _currency,
    "timezone": _timezone,
    "locale": _locale,
    "email_type": _email_type,
    "region": _region,
    **dict.fromkeys(_CONSENTS, _consent),
}


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
    values = _texts(row)  # each column's text, then its value as checked
    bad = _bad_texts(values)
    for column, message in bad.items():
        err(column, message)
        values[column] = None  # reported once: no second message quoting it
    for column in REQUIRED_ACCOUNT_COLUMNS:
        if values[column] is None and column not in bad:
            err(column, "required value is missing")
    get = row.get
    for column, check in _CHECKS.items():
        text = values[column]
        if text is not None:
            try:
                values[column] = check(text, get(column), values)
            except ValueError as exc:
                err(column, str(exc))
                values[column] = None
    if problems:
        return None, problems
    return _account(values), []


def _texts(row: Mapping[str, Any]) -> dict[str, Any]:
    """Each column's value as text, stripped; ``None`` for an absent or empty one."""
    values: dict[str, Any] = {}
    get = row.get
    for column in ACCOUNT_COLUMNS:
        raw = get(column)
        if raw.__class__ is str:  # the CSV case: no conversion needed
            values[column] = raw.strip() or None
        else:
            values[column] = _text(raw)
    return values


def _account(parsed: Mapping[str, Any]) -> Account:
    """The ``Account`` of a row every check passed."""
    assert parsed["balance"] is not None and parsed["due_date"] is not None
    assert parsed["currency"] is not None
    phone, phone_zones = parsed["phone"] or (None, None)
    return Account(
        account_id=parsed["account_id"] or "",
        debtor_id=parsed["debtor_id"] or "",
        name=parsed["name"] or "",
        phone=phone,
        email=parsed["email"],
        address_line1=parsed["address_line1"],
        address_line2=parsed["address_line2"],
        city=parsed["city"],
        region=parsed["region"],
        postal_code=parsed["postal_code"],
        country=parsed["country"],
        timezone=parsed["timezone"],
        locale=parsed["locale"],
        email_type=parsed["email_type"],
        currency=parsed["currency"],
        balance=parsed["balance"],
        due_date=parsed["due_date"],
        creditor=parsed["creditor"],
        reference=parsed["reference"],
        consent_sms=parsed["consent_sms"],
        consent_voice=parsed["consent_voice"],
        consent_email=parsed["consent_email"],
        segment=parsed["segment"],
        product=parsed["product"],
        risk_score=parsed["risk_score"],
        principal=parsed["principal"],
        interest=parsed["interest"],
        fees=parsed["fees"],
        phone_zones=phone_zones,  # found with the check of the number
    )
