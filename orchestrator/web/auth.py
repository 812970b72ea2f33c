"""Comparing the credentials a request carries with ours, safely.

The API takes ``Authorization: Bearer <token>``; the payment webhook an HMAC of its body
(``services.payments``). Both compare in constant time, and a malformed credential is
only ever a wrong one: never an error, never a 500.
"""

from __future__ import annotations

import hmac

__all__ = ["bearer_token", "same_secret"]


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of two header values. Starlette decodes header bytes as
    latin-1, and ``hmac.compare_digest`` refuses non-ASCII text (a TypeError, a 500):
    compare their UTF-8 bytes instead, so a stray byte is just a wrong credential."""
    return hmac.compare_digest(
        given.encode("utf-8", "replace"), expected.encode("utf-8", "replace")
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750); the scheme is matched
    case-insensitively (RFC 7235). A bare token or another scheme is no credential: a
    token pasted without its scheme must not work by accident in one place only."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
