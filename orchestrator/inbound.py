"""Inbound SMS keywords (CONTRACT §10.7): opt-out, opt-in, help, or anything else.

The whole message is the keyword: case does not matter, and spaces and punctuation
around it are ignored ("  Stop! " opts out; "Stop texting me" is a reply, not a
keyword). ``OPT OUT`` may also be written ``opt-out`` or ``opt_out``. The Chinese
退订 and its usual abbreviation ``TD`` opt out too (an extension).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class InboundKind(StrEnum):
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"
    other = "other"


OPT_OUT_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        "退订",
        "td",
    }
)
OPT_IN_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info"})

_INNER_SEPARATORS = re.compile(r"[\s\-_]+")


def _is_edge(ch: str) -> bool:
    """Whitespace, punctuation and symbols (emoji included) around the keyword."""
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZC"


def normalize(body: str) -> str:
    """Full-width forms folded (NFKC), case folded, edges trimmed, inner separators single."""
    text = unicodedata.normalize("NFKC", body).casefold()
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return _INNER_SEPARATORS.sub(" ", text[start:end])


def classify_inbound(body: str) -> InboundKind:
    word = normalize(body)
    if word in OPT_OUT_WORDS:
        return InboundKind.opt_out
    if word in OPT_IN_WORDS:
        return InboundKind.opt_in
    if word in HELP_WORDS:
        return InboundKind.help
    return InboundKind.other
