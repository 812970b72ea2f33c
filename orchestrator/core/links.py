"""Signed, tracked links: ``/p/<token>`` (payment) and ``/u/<token>`` (email unsubscribe).

A token carries the message id, what it is for and when it expires, signed with
HMAC-SHA256 under ``OUTREACH_SECRET_KEY``. It is compact because it travels in SMS
(a Chinese text has 134 characters for two segments): the expiry as a day number
(a link stays valid to the end of its expiry's UTC day), the kind and the id's form in
one byte, a message id of the engine's ``m_<hex>`` form as raw bytes, and the
signature truncated to 96 bits (forging one still takes ~2^96 guesses). Everything is
urlsafe base64 without padding: an engine link token is 36 characters.

Expiry, explicitly: a pay link counts clicks until ``LINK_LIFETIME`` after its send;
an unsubscribe link works until ``UNSUBSCRIBE_GRACE`` after that (``TokenData.honoured``).
Link previewers (chat apps, mail scanners) fetch links too: ``PREVIEW_AGENTS`` names
them, and they are redirected without a click being recorded.
The same inputs always give the same token, so ``simulate`` output is reproducible.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote

PAY = "pay"
UNSUBSCRIBE = "unsubscribe"
# How long a message's links work. A pay link past it still leads somewhere useful (the
# creditor's pay page, or where to pay and whom to call) but no longer counts as a click.
LINK_LIFETIME = timedelta(days=60)
# An unsubscribe link is honoured this long after its expiry, so 425 days after the
# email: CAN-SPAM asks for 30, and an old email in a mailbox must still let a person out.
UNSUBSCRIBE_GRACE = timedelta(days=365)

_KIND_CODES = {PAY: 1, UNSUBSCRIBE: 2}  # 0: the kind's name follows in full
_HEX_FLAG = 0x80  # the message id is m_<hex>, stored as raw bytes
_KIND_NAMES = {code: kind for kind, code in _KIND_CODES.items()}
_SIG_BYTES = 12
_DOMAIN = b"outreach-link-v1\x00"
_HEX_ID = re.compile(r"^m_((?:[0-9a-f]{2})+)$")
_MAX_DAY = 2**16 - 1  # 2149-06-06
_DAY = 86400


@dataclass(frozen=True)
class TokenData:
    message_id: str
    kind: str
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def honoured(self, now: datetime) -> bool:
        """Whether the link still does what it was sent for: an unsubscribe link until
        ``UNSUBSCRIBE_GRACE`` after its expiry, any other until its expiry."""
        grace = UNSUBSCRIBE_GRACE if self.kind == UNSUBSCRIBE else timedelta(0)
        return now < self.expires_at + grace


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: bytes) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(payload)
    return mac.digest()[:_SIG_BYTES]


@functools.lru_cache(maxsize=16)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC state after the key and the domain prefix: copied for each token (the
    key schedule is the costly part, and the secret rarely changes)."""
    return hmac.new(secret.encode("utf-8"), _DOMAIN, hashlib.sha256)


def _encode_kind(kind: str, hex_id: bool) -> bytes:
    flag = _HEX_FLAG if hex_id else 0
    code = _KIND_CODES.get(kind)
    if code is not None:
        return bytes([flag | code])
    raw = kind.encode("utf-8")
    if not raw or len(raw) > 255:
        raise ValueError(f"link kind must be 1-255 bytes: {kind!r}")
    return bytes([flag, len(raw)]) + raw


def make_token(secret: str, message_id: str, kind: str, expires_at: datetime) -> str:
    if not secret:
        raise ValueError("a link token needs a non-empty secret")
    if expires_at.tzinfo is None:
        raise ValueError(f"naive expiry {expires_at!r}: every instant must carry its zone")
    day = min(max(-(-int(expires_at.timestamp()) // _DAY), 0), _MAX_DAY)  # rounded up
    m = _HEX_ID.match(message_id)
    ident = bytes.fromhex(m.group(1)) if m else message_id.encode("utf-8")
    payload = struct.pack(">H", day) + _encode_kind(kind, m is not None) + ident
    return _b64encode(payload + _sign(secret, payload))


def read_token(secret: str, token: str, now: datetime) -> TokenData | None:
    """The token's data if it is genuine and unexpired, else ``None`` (never raises)."""
    data = open_token(secret, token)
    return None if data is None or data.expired(now) else data


def open_token(secret: str, token: str) -> TokenData | None:
    """The token's data if we signed it, expired or not, else ``None`` (never raises):
    the server tells a forged link (404, nothing recorded) from an old one (still useful
    to the person who has it)."""
    if not secret or not token or len(token) > 1024:
        return None
    try:
        raw = _b64decode(token)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 2 + 1 + _SIG_BYTES:
        return None
    payload, signature = raw[:-_SIG_BYTES], raw[-_SIG_BYTES:]
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    try:
        (day,) = struct.unpack(">H", payload[:2])
        head, rest = payload[2], payload[3:]
        code = head & ~_HEX_FLAG
        if code == 0:
            kind = rest[1 : 1 + rest[0]].decode("utf-8")
            rest = rest[1 + rest[0] :]
        else:
            kind = _KIND_NAMES[code]
        message_id = "m_" + rest.hex() if head & _HEX_FLAG else rest.decode("utf-8")
    except (IndexError, KeyError, UnicodeDecodeError, struct.error):
        return None
    if not message_id or not kind:
        return None
    return TokenData(
        message_id=message_id, kind=kind, expires_at=datetime.fromtimestamp(day * _DAY, UTC)
    )


def pay_link(public_url: str, secret: str, message_id: str, expires_at: datetime) -> str:
    return f"{public_url.rstrip('/')}/p/{make_token(secret, message_id, PAY, expires_at)}"


def unsubscribe_link(public_url: str, secret: str, message_id: str, expires_at: datetime) -> str:
    token = make_token(secret, message_id, UNSUBSCRIBE, expires_at)
    return f"{public_url.rstrip('/')}/u/{token}"


class _HasPayUrl(Protocol):
    @property
    def pay_url(self) -> str: ...


class _HasReference(Protocol):
    @property
    def account_id(self) -> str: ...

    @property
    def reference(self) -> str | None: ...


def creditor_pay_url(creditor: _HasPayUrl, account: _HasReference) -> str | None:
    """The creditor's own pay URL with ``{reference}`` and ``{account_id}`` filled in
    (docs/configuration.md), the two placeholders ``config check`` accepts.

    The reference is the account's ``reference``, else its ``account_id``; both are
    URL-quoted. ``None`` when the creditor has no pay URL.
    """
    if not creditor.pay_url:
        return None
    reference = account.reference or account.account_id
    return creditor.pay_url.replace("{reference}", quote(reference, safe="")).replace(
        "{account_id}", quote(account.account_id, safe="")
    )


# User-Agent fragments of link previewers and crawlers: they fetch a link when it is
# pasted or received, before (or instead of) the person. Matched case-insensitively
# anywhere in the header. The one list; ``is_preview_agent`` is the one test. Only agents
# that fetch on their own belong here, not apps whose in-app browser names itself in its
# User-Agent (Line, Viber, WeChat): there a person clicked.
PREVIEW_AGENTS = (
    "Slackbot",
    "facebookexternalhit",
    "Facebot",
    "Twitterbot",
    "WhatsApp",
    "TelegramBot",
    "LinkedInBot",
    "Discordbot",
    "SkypeUriPreview",
    "Googlebot",
    "Google-PageRenderer",
    "bingbot",
    "BingPreview",
    "Applebot",
    "Pinterestbot",
    "redditbot",
    "Embedly",
    "Iframely",
    "vkShare",
    "YandexBot",
    "Baiduspider",
    "DuckDuckBot",
    "MicrosoftPreview",
    "KakaoTalk-scrap",
)
_PREVIEW = re.compile("|".join(re.escape(agent) for agent in PREVIEW_AGENTS), re.IGNORECASE)


def is_preview_agent(user_agent: str | None) -> bool:
    """Whether a request comes from a link previewer, not a person (``PREVIEW_AGENTS``)."""
    return bool(user_agent) and _PREVIEW.search(user_agent or "") is not None
