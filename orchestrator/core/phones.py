"""Phone numbers parsed, and judged, once while they are in use.

Deciding one send reads the debtor's number three times: the gate asks whether it is
valid, the time zones where it rings, the decision record how to mask it. Parsing is
slow (tens of microseconds), and so is telling a number's type, which validity and
zones both need (``phonenumbers`` works out the number's region and then its type for
each question asked). ``phone_facts`` answers all of them from one parse and one
type, through a small cache. Callers must not modify the ``PhoneNumber`` they get.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberType
from phonenumbers import timezone as phone_tz

__all__ = ["GEOGRAPHIC", "PhoneFacts", "number_facts", "parse_phone", "phone_facts"]

# Number types that carry a place (at least the country); toll-free, premium, VoIP, ...
# numbers carry none.
GEOGRAPHIC = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
)


@dataclass(frozen=True, slots=True)
class PhoneFacts:
    """What the engine asks of one number."""

    number: PhoneNumber
    valid: bool  # ``phonenumbers.is_valid_number``
    # ``phonenumbers``' zone keys for a geographic number (as ``time_zones_for_number``
    # gives them, ``Etc/Unknown`` included); ``()`` for any other number
    zones: tuple[str, ...]


@lru_cache(maxsize=4096)
def parse_phone(text: str) -> PhoneNumber | None:
    """``text`` (E.164, or with a leading ``+``) parsed, or ``None`` if it is no number."""
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


@lru_cache(maxsize=65536)
def phone_facts(text: str) -> PhoneFacts | None:
    """Validity and zones of ``text`` (E.164), from one parse and one type lookup;
    ``None`` if it is no number at all."""
    number = parse_phone(text)
    return None if number is None else number_facts(number)


def number_facts(number: PhoneNumber) -> PhoneFacts:
    """Validity and zones of a parsed number, from one type lookup."""
    # ``is_valid_number`` is "the type is known": both look up the number's region,
    # then match its national number against that region's patterns.
    kind = phonenumbers.number_type(number)
    zones: tuple[str, ...] = ()
    if kind in GEOGRAPHIC:
        if phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
            zones = tuple(phone_tz.time_zones_for_geographical_number(number))
        else:  # a mobile number of a country whose mobiles carry no area: the country's
            zones = tuple(phone_tz.time_zones_for_number(number))
    return PhoneFacts(number, kind != PhoneNumberType.UNKNOWN, zones)
