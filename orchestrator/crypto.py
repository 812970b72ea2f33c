"""Personal data at rest: field encryption, blind indexes and masking.

Encryption. Every personal field (name, phone, email, street lines) is stored as a
Fernet token. ``DataCipher`` wraps a ``MultiFernet`` over ``OUTREACH_DATA_KEYS``: the
first key encrypts, every key decrypts, so keys rotate by prepending a new key,
running ``outreach keys rotate`` and then dropping the old one.

Blind indexes. Looking an account up by phone or email (an inbound STOP, an opt-out,
a limit counted per number) cannot use a randomised token, so each contact also gets
``HMAC-SHA256(index_key, normalised value)``. The index key is derived with HKDF from
``OUTREACH_INDEX_KEY`` when that is set (a secret that never rotates, so indexes never
change), else from the *first* data key. In the second case the index key changes when
a new key is prepended; ``keys rotate`` then recomputes every index (accounts, debtors,
sends, opt-outs) with the current key, and until it has run, ``index_candidates``
gives the index of a value under every configured key so lookups keep working during
the rotation window.

Masking. Logs, decision records and the human timeline show ``mask_phone``,
``mask_email`` and ``mask_name`` forms, never the clear value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from orchestrator.errors import ConfigError, Problem

__all__ = [
    "DataCipher",
    "InvalidToken",
    "blind_index",
    "derive_index_key",
    "ephemeral_keys",
    "mask_email",
    "mask_name",
    "mask_phone",
    "normalize_email",
    "normalize_phone",
]

_INDEX_INFO = b"outreach blind index v1"
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def derive_index_key(secret: str) -> bytes:
    """A 32-byte HMAC key derived from ``secret`` (a Fernet key or any string)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INDEX_INFO).derive(
        secret.encode("utf-8")
    )


def normalize_phone(value: str | None, region: str | None = None) -> str | None:
    """E.164 form of a valid phone number, else ``None``."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def _normalize(value: str, kind: str) -> str:
    if kind == "email":
        return normalize_email(value) or ""
    if kind == "phone":
        text = value.strip()
        if _E164.fullmatch(text):  # already normalised: skip the costly parse
            return text
        return normalize_phone(text) or text
    return value.strip()


def blind_index(value: str | None, key: bytes, kind: str = "phone") -> str | None:
    """Hex HMAC-SHA256 of the normalised ``value`` (``kind``: phone | email | raw)."""
    if value is None:
        return None
    normalised = _normalize(str(value), kind)
    if not normalised:
        return None
    return hmac.new(key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def ephemeral_keys() -> list[str]:
    """A fresh single-key list for demo, simulate and tests: nothing persists it."""
    return [Fernet.generate_key().decode("ascii")]


class DataCipher:
    """Encrypts and decrypts personal fields; computes blind indexes."""

    def __init__(self, keys: list[str], *, index_secret: str | None = None):
        keys = [k.strip() for k in keys if k and k.strip()]
        if not keys:
            raise ConfigError(
                [
                    Problem(
                        "environment",
                        None,
                        None,
                        "OUTREACH_DATA_KEYS is not set",
                        field="OUTREACH_DATA_KEYS",
                    )
                ]
            )
        try:
            self._fernets = [Fernet(k.encode("ascii")) for k in keys]
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigError(
                [
                    Problem(
                        "environment",
                        None,
                        None,
                        f"OUTREACH_DATA_KEYS: not a Fernet key (32 url-safe base64 bytes): {exc}",
                        field="OUTREACH_DATA_KEYS",
                    )
                ]
            ) from exc
        self._multi = MultiFernet(self._fernets)
        self._keys = keys
        self._index_secret = index_secret
        self.index_key = derive_index_key(index_secret or keys[0])
        candidates = [self.index_key]
        if index_secret is None:
            candidates += [derive_index_key(k) for k in keys[1:]]
        self._candidate_keys = candidates

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DataCipher:
        keys = [k for k in (env.get("OUTREACH_DATA_KEYS") or "").split(",") if k.strip()]
        return cls(keys, index_secret=env.get("OUTREACH_INDEX_KEY") or None)

    @classmethod
    def ephemeral(cls) -> DataCipher:
        return cls(ephemeral_keys())

    # -- encryption -------------------------------------------------------------

    def encrypt(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self._fernets[0].encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str | None) -> str | None:
        """Clear text of ``token``; raises ``InvalidToken`` if no configured key opens it."""
        if token is None:
            return None
        return self._multi.decrypt(token.encode("ascii")).decode("utf-8")

    def rotate(self, token: str | None) -> str | None:
        """``token`` re-encrypted under the first key (same clear text)."""
        if token is None:
            return None
        return self._multi.rotate(token.encode("ascii")).decode("ascii")

    # -- blind indexes ----------------------------------------------------------

    def index(self, value: str | None, kind: str = "phone") -> str | None:
        return blind_index(value, self.index_key, kind)

    def index_candidates(self, value: str | None, kind: str = "phone") -> list[str]:
        """The index of ``value`` under every configured key, current key first."""
        out: list[str] = []
        for key in self._candidate_keys:
            idx = blind_index(value, key, kind)
            if idx is not None and idx not in out:
                out.append(idx)
        return out

    def digest(self, parts: Iterable[str | None]) -> str:
        """Keyed fingerprint of several clear values: detects a change without decrypting."""
        mac = hmac.new(self.index_key, b"outreach digest v1", hashlib.sha256)
        for part in parts:
            raw = b"\x00" if part is None else b"\x01" + part.encode("utf-8")
            mac.update(len(raw).to_bytes(4, "big") + raw)
        return base64.urlsafe_b64encode(mac.digest()[:18]).decode("ascii")


# -- masking -----------------------------------------------------------------------


def mask_phone(value: str | None) -> str | None:
    """``+12125550100`` → ``+1 212 *** **00``: country code, 3 first and 2 last digits."""
    if not value:
        return None
    try:
        number = phonenumbers.parse(value, None)
        country = f"+{number.country_code}"
        national = phonenumbers.national_significant_number(number)
    except phonenumbers.NumberParseException:
        digits = "".join(ch for ch in value if ch.isdigit())
        country, national = "", digits
    if len(national) <= 5:
        masked = "*" * max(len(national) - 2, 0) + national[-2:]
        return f"{country} {masked}".strip()
    head, rest = national[:3], national[3:]
    hidden = "*" * (len(rest) - 2) + rest[-2:]
    return f"{country} {head} {hidden[:3]} {hidden[3:]}".strip()


def mask_email(value: str | None) -> str | None:
    """``jane.doe@example.com`` → ``j***@example.com``."""
    if not value:
        return None
    local, at, domain = value.partition("@")
    if not at:
        return (value[:1] + "***") if value else None
    return f"{local[:1]}***@{domain}"


def mask_name(value: str | None) -> str | None:
    """``Jane Doe`` → ``J*** D**``."""
    if not value:
        return None
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in value.split())
