"""Inbound SMS keywords (docs/http.md): opt-out, opt-in, help, a revocation in the
person's own words, or anything else.

The whole message is the keyword: case does not matter, and spaces and punctuation
around it are ignored ("  Stop! " opts out; "STOP 2" is not a keyword). ``OPT OUT`` may
also be written ``opt-out`` or ``opt_out``. The Chinese 退订 and its usual abbreviation
``TD`` opt out too (an extension).

A person may also revoke consent in a sentence ("please stop calling me", 不要再打了).
The policy's ``revocation_phrases`` (per language) are looked for anywhere in a text
that is not a keyword: Latin-script phrases as whole words ("don't" and "dont" alike),
Chinese ones as they stand. Such a text is a ``revocation``: it stops every automated
channel at that number (``orchestrator.web.inbound``). Everything else is ``other``, kept on
the timeline for people to read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.config.models import Creditor


class InboundKind(StrEnum):
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"
    revocation = "revocation"  # "stop calling me": an opt-out in the person's own words
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


def classify_inbound(body: str, phrases: Iterable[str] = ()) -> InboundKind:
    """The keyword a whole message is, else a revocation if one of ``phrases`` (the
    policy's ``revocation_phrases``) is in it, else ``other``."""
    word = normalize(body)
    if word in OPT_OUT_WORDS:
        return InboundKind.opt_out
    if word in OPT_IN_WORDS:
        return InboundKind.opt_in
    if word in HELP_WORDS:
        return InboundKind.help
    phrases = tuple(phrases)
    if phrases and revocation_pattern(phrases).search(_fold(body)):
        return InboundKind.revocation
    return InboundKind.other


_APOSTROPHES = re.compile(r"['‘’ʼ`´]")
_NON_WORD = re.compile(r"[\W_]+")


def _fold(text: str) -> str:
    """Full-width forms folded, case folded, apostrophes dropped ("don't" = "dont"), every
    run of spaces and punctuation one space: what phrases are matched in."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).casefold())
    return " " + _NON_WORD.sub(" ", text).strip() + " "


@lru_cache(maxsize=16)
def revocation_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for every phrase: an ASCII phrase must stand as whole words (so
    "td" is not found in "outstanding"); a Chinese one is found anywhere (Chinese has no
    spaces between words)."""
    parts = []
    for phrase in phrases:
        folded = _fold(phrase).strip()
        if not folded:
            continue
        escaped = re.escape(folded)
        parts.append(f" {escaped} " if folded.isascii() else escaped)
    return re.compile("|".join(parts) if parts else r"(?!)")  # (?!) matches nothing


# --- the replies to a keyword (docs/http.md) --------------------------------------------------

OPT_OUT_CONFIRMATION = "opt_out_confirmation"  # the step name each reply is recorded under
HELP_REPLY = "help_reply"
# A number gets at most one opt-out confirmation within this window (inclusive).
CONFIRMATION_WINDOW = timedelta(minutes=5)

_REPLIES = {
    OPT_OUT_CONFIRMATION: {
        "zh": "您已退订{creditor}的短信，今后不会再收到短信。回复START可重新订阅。",
        "en": "{creditor}: you are unsubscribed and will receive no more texts. "
        "Reply START to resubscribe.",
    },
    HELP_REPLY: {
        "zh": "{creditor}：如需帮助请致电{phone}。回复STOP退订。",
        "en": "{creditor}: for help call {phone}. Reply STOP to opt out.",
    },
}


def language(locale: str | None) -> str:
    """The language of our texts and voice prompts to an account: ``zh`` for a ``zh*``
    locale, else ``en``."""
    return "zh" if (locale or "").lower().startswith("zh") else "en"


def reply_text(step: str, creditor: Creditor | None, locale: str | None) -> str:
    """The reply to an opt-out (``OPT_OUT_CONFIRMATION``) or a help request
    (``HELP_REPLY``), in the account's language (Chinese for ``zh*``, else English)."""
    return _REPLIES[step][language(locale)].format(
        creditor=creditor.name if creditor else "", phone=creditor.phone if creditor else ""
    )
