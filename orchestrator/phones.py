"""Phone numbers parsed once while they are in use.

Deciding one send reads the debtor's number three times: the gate asks whether it is
valid, the time zones where it rings, the decision record how to mask it. Parsing is
the slow part of each (tens of microseconds), so the parsed number is shared through a
small cache. Callers must not modify the ``PhoneNumber`` they get.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumber

__all__ = ["parse_phone"]


@lru_cache(maxsize=4096)
def parse_phone(text: str) -> PhoneNumber | None:
    """``text`` (E.164, or with a leading ``+``) parsed, or ``None`` if it is no number."""
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
