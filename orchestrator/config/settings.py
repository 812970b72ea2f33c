"""Environment (docs/cli.md) → typed settings. Secrets live only here, never in YAML."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError, Problem

if TYPE_CHECKING:
    from orchestrator.core.crypto import DataCipher

# HMAC-SHA256 keys shorter than the hash add no strength an attacker must overcome, and a
# short one can be guessed offline from any link (RFC 2104 §3, NIST SP 800-107 §5.3.4).
MIN_SECRET_BYTES = 32


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


BARE_TOKEN_NAME = "api"  # the name of a token given without one
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class ApiToken:
    """One bearer token of the REST API and the name it acts under: the actor of the
    audit log entries and the assignee of the tasks its requests claim."""

    name: str
    token: str = field(repr=False)


def parse_api_tokens(entries: list[str]) -> list[ApiToken]:
    """``OUTREACH_API_TOKENS``'s entries: ``name:token`` or a bare ``token`` (named
    ``api``). ``ConfigError`` naming the variable (never the token) for a bad name, an
    empty token or one token given twice (which of its names would act?)."""
    tokens: list[ApiToken] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, 1):
        name, colon, token = entry.partition(":")
        if not colon:
            name, token = BARE_TOKEN_NAME, entry
        name, token = name.strip(), token.strip()
        if not TOKEN_NAME.fullmatch(name):
            problems.append(
                f"entry {number}: the name before ':' must be 1 to 64 letters, digits or "
                "._@- (a token itself holds no ':')"
            )
        elif not token:
            problems.append(f"entry {number} ({name}): the token after ':' is empty")
        elif any(t.token == token for t in tokens):
            problems.append(f"entry {number} ({name}): this token is given twice")
        else:
            tokens.append(ApiToken(name, token))
    if problems:
        raise ConfigError(
            [
                Problem(
                    "environment",
                    None,
                    None,
                    f"OUTREACH_API_TOKENS {p}",
                    field="OUTREACH_API_TOKENS",
                )
                for p in problems
            ]
        )
    return tokens


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/outreach.db"
    config_dir: Path = Path("config")
    templates_dir: Path = Path("templates")
    secret_key: str | None = None
    data_keys: list[str] = field(default_factory=list)
    index_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    api_tokens: list[str] = field(default_factory=list)
    payment_webhook_secret: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        return cls(
            database_url=env.get("OUTREACH_DATABASE_URL") or "sqlite:///var/outreach.db",
            config_dir=Path(env.get("OUTREACH_CONFIG") or "config"),
            templates_dir=Path(env.get("OUTREACH_TEMPLATES") or "templates"),
            secret_key=env.get("OUTREACH_SECRET_KEY") or None,
            data_keys=_split(env.get("OUTREACH_DATA_KEYS")),
            index_key=env.get("OUTREACH_INDEX_KEY") or None,
            public_url=(env.get("OUTREACH_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
            api_tokens=_split(env.get("OUTREACH_API_TOKENS")),
            payment_webhook_secret=env.get("OUTREACH_PAYMENT_WEBHOOK_SECRET") or None,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        )

    def named_api_tokens(self) -> list[ApiToken]:
        """The REST API's tokens with their names (``parse_api_tokens``)."""
        return parse_api_tokens(self.api_tokens)

    def require(self, name: str) -> str:
        """The value of a required secret, or a clear error naming the variable."""
        value = {
            "OUTREACH_SECRET_KEY": self.secret_key,
            "OUTREACH_DATA_KEYS": ",".join(self.data_keys) or None,
            "OUTREACH_PAYMENT_WEBHOOK_SECRET": self.payment_webhook_secret,
        }.get(name)
        if not value:
            raise ConfigError(
                [Problem("environment", None, None, f"{name} is not set", field=name)]
            )
        if name == "OUTREACH_SECRET_KEY" and len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                [
                    Problem(
                        "environment",
                        None,
                        None,
                        f"{name} is {len(value.encode())} bytes long: it signs every payment and "
                        f"unsubscribe link, use at least {MIN_SECRET_BYTES} random bytes (e.g. "
                        "python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                        field=name,
                    )
                ]
            )
        return value

    def cipher(self) -> DataCipher:
        """The personal-data cipher: every command that reads or writes personal data
        builds it here, so all of them agree on the blind-index key (a lookup under one
        key would miss a fact stored under another: an inbound STOP that matches no
        account)."""
        from orchestrator.core.crypto import DataCipher

        self.require("OUTREACH_DATA_KEYS")
        return DataCipher(self.data_keys, index_secret=self.index_key)
