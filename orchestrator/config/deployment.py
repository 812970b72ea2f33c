"""What a configuration needs from the environment before it may reach a real person.

``config check``, ``run`` and ``serve`` ask these questions of every channel whose
adapter delivers to people (anything but ``outbox`` and ``simulated``):

- is ``OUTREACH_PUBLIC_URL`` a public https URL? Unset, it defaults to
  ``http://127.0.0.1:8000``, and every pay and unsubscribe link in a text, email or
  letter would point at the debtor's own phone;
- are the provider's credentials there (Twilio's account SID and auth token, an SMTP
  host and password)? Without them the daemon used to start, then fail at the first
  send, with no file or line to go on.

The answers are plain messages; ``configload`` puts each at its channel's line in
``channels.yaml``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

OFFLINE_ADAPTERS = frozenset({"outbox", "simulated"})  # they reach nobody
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def reaches_people(adapter: str) -> bool:
    return adapter not in OFFLINE_ADAPTERS


def public_url_problem(value: str | None) -> str | None:
    """Why ``OUTREACH_PUBLIC_URL`` (as set, or ``None``) cannot go into a real message."""
    if not value:
        return (
            f"OUTREACH_PUBLIC_URL is not set, so links would point to "
            f"{DEFAULT_PUBLIC_URL}: set it to the public https URL of `outreach serve`"
        )
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return (
            f"OUTREACH_PUBLIC_URL {value!r} is not an https URL: links in messages "
            "must use https (set it to the public https URL of `outreach serve`)"
        )
    if _is_loopback(host):
        return (
            f"OUTREACH_PUBLIC_URL {value!r} is a loopback address no debtor can reach: "
            "set it to the public https URL of `outreach serve`"
        )
    return None


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def credential_problems(
    adapter: str, options: Mapping[str, Any], env: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``(option key, message)`` for each credential or setting the adapter lacks."""
    if adapter in ("twilio_sms", "twilio_voice"):
        return _twilio(adapter, options, env)
    if adapter == "smtp":
        return _smtp(options)
    return []


def _twilio(
    adapter: str, options: Mapping[str, Any], env: Mapping[str, str]
) -> list[tuple[str, str]]:
    found = []
    for option, variable in (
        ("account_sid", "TWILIO_ACCOUNT_SID"),
        ("auth_token", "TWILIO_AUTH_TOKEN"),
    ):
        if not options.get(option) and not env.get(variable):
            found.append(
                (
                    "adapter",
                    f"{adapter} needs {variable} in the environment "
                    f"(or {option} in channels.yaml): it is not set",
                )
            )
    if not options.get("from") and not (
        adapter == "twilio_sms" and options.get("messaging_service_sid")
    ):
        needed = "'from' or 'messaging_service_sid'" if adapter == "twilio_sms" else "'from'"
        found.append(("adapter", f"{adapter} needs {needed}"))
    return found


def _smtp(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = []
    if not str(options.get("host") or "").strip():
        found.append(("host", "smtp needs a host: it is empty"))
    if options.get("username") and not options.get("password"):
        found.append(("password", "smtp has a username but no password"))
    return found
