"""Every CSV the product writes goes through here: no cell is a spreadsheet formula.

A debtor's name is whatever the creditor's file said. Written as is, ``=HYPERLINK(...)``
in the print vendor's manifest becomes a live link (or worse, ``=cmd|...``, a command)
when someone opens the file in a spreadsheet ("CSV injection", OWASP). The rule, as
OWASP gives it:

- a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
  single quote in front (``'=HYPERLINK(...)``): spreadsheets show it as text;
- except a plain decimal number (an optional sign, digits, an optional fraction:
  ``-12.50``, ``+12125550100``): a spreadsheet reads it as that number, no formula, so
  balances and E.164 phone numbers keep their meaning and their form;
- numbers given as numbers (``int``, ``Decimal``, ``float``) are written as they are.

``outreach import`` reads such a cell back as the value it stands for: a cell starting
with a single quote and then one of those characters loses the quote
(``unquote_cell``), so a portfolio written by ``outreach demo`` imports as generated.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_QUOTED = tuple("'" + start for start in FORMULA_START)


def safe_cell(value: Any) -> Any:
    """``value`` as a cell no spreadsheet evaluates (the module's rule)."""
    if value is None or isinstance(value, int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def unquote_cell(value: str) -> str:
    """The value behind a cell ``safe_cell`` quoted (an imported file may come from us, or
    from a tool that follows the same rule)."""
    return value[1:] if value.startswith(_QUOTED) else value


class SafeWriter:
    """``csv.writer`` whose every cell passes ``safe_cell``."""

    def __init__(self, handle: Any, **options: Any):
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
