"""Plain values shared by the importer, the database layer and the pure engine.

``Account`` is one debt with its debtor's contact details in clear (decrypted). The
database stores personal fields encrypted; the engine only ever sees these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

ACCOUNT_COLUMNS = (
    "account_id",
    "debtor_id",
    "name",
    "phone",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "timezone",
    "locale",
    "email_type",
    "currency",
    "balance",
    "due_date",
    "creditor",
    "reference",
    "consent_sms",
    "consent_voice",
    "consent_email",
    "segment",
    "product",
    "risk_score",
    "principal",
    "interest",
    "fees",
)
REQUIRED_ACCOUNT_COLUMNS = ("account_id", "name", "currency", "balance", "due_date")
PERSONAL_FIELDS = ("name", "phone", "email", "address_line1", "address_line2")


@dataclass
class Account:
    account_id: str
    name: str
    currency: str
    balance: Decimal
    due_date: date
    debtor_id: str = ""
    phone: str | None = None  # E.164
    email: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    timezone: str | None = None  # explicit IANA zone
    locale: str | None = None
    email_type: str | None = None  # personal | work
    creditor: str | None = None
    reference: str | None = None
    consent_sms: bool | None = None
    consent_voice: bool | None = None
    consent_email: bool | None = None
    segment: str | None = None  # the lender's own label, as imported (``imported`` in rules)
    product: str | None = None  # e.g. card, personal-loan: for segment rules
    risk_score: Decimal | None = None  # the lender's score, for segment rules
    # What the balance is made of (optional; shown on the e-bill page)
    principal: Decimal | None = None
    interest: Decimal | None = None
    fees: Decimal | None = None
    status: str = "open"  # open | closed
    created_at: datetime | None = None
    # The phone's zone keys, found when the number was checked (``parse_account``) and
    # stored at import (``zones.stored_phone_zones``), which also says the number is valid
    # under this phonenumbers release; None: not known here, the number is parsed for
    # both. Not an account's own data.
    phone_zones: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.debtor_id:
            self.debtor_id = self.account_id

    @property
    def first_name(self) -> str:
        parts = self.name.split()
        return parts[0] if parts else self.name

    def consent(self, channel: str) -> bool | None:
        return {
            "sms": self.consent_sms,
            "voice": self.consent_voice,
            "email": self.consent_email,
        }.get(channel)

    @property
    def places(self) -> list[str]:
        """Jurisdiction keys of the address: ``US`` and ``US-MA`` (docs/configuration.md)."""
        if not self.country:
            return []
        places = [self.country.upper()]
        if self.region:
            places.append(f"{self.country.upper()}-{self.region.upper()}")
        return places
