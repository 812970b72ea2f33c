"""A generated sample portfolio: US and Chinese debtors in every stage, with events.

Deterministic for a given seed, so the demo and the benchmarks are repeatable. Phone
numbers use the fictional 555-01xx range in the US and test ranges in China.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from orchestrator.core.account import ACCOUNT_COLUMNS, Account
from orchestrator.core.csvsafe import SafeWriter

# (region, city, area code, postal code)
US_PLACES = [
    ("NY", "New York", "212", "10001"),
    ("CA", "Oakland", "510", "94612"),
    ("IL", "Chicago", "312", "60601"),
    ("TX", "Austin", "512", "78701"),
    ("MA", "Boston", "617", "02108"),
    ("WA", "Seattle", "206", "98101"),
    ("AZ", "Phoenix", "602", "85001"),
    ("HI", "Honolulu", "808", "96813"),
    ("FL", "Miami", "305", "33101"),
    ("CO", "Denver", "303", "80202"),
]
CN_PLACES = [
    ("BJ", "北京", "100000"),
    ("SH", "上海", "200000"),
    ("GD", "广州", "510000"),
    ("ZJ", "杭州", "310000"),
]
US_FIRST = [
    "Maria",
    "James",
    "Linda",
    "Robert",
    "Daniel",
    "Aisha",
    "Kevin",
    "Emily",
    "Jose",
    "Grace",
]
US_LAST = [
    "Lopez",
    "Smith",
    "Johnson",
    "Kim",
    "Brown",
    "Nguyen",
    "Garcia",
    "Miller",
    "Davis",
    "Patel",
]
CN_SURNAME = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"]
CN_GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "强", "洋", "艳", "军"]


@dataclass(frozen=True)
class SampleEvent:
    at: datetime
    account: str
    type: str
    data: dict[str, Any]


def generate_accounts(
    n: int, *, today: date, seed: int = 7, chinese_share: float = 0.25
) -> Iterator[Account]:
    """``n`` accounts; ``chinese_share`` of the debtors Chinese (about a quarter), the
    others in ten US states over six time zones; DPD spread over 1..120 (every stage);
    some debtors owe two or three accounts."""
    rng = random.Random(seed)
    i = 0
    debtor = 0
    while i < n:
        debtor += 1
        chinese = rng.random() < chinese_share
        count = min(n - i, rng.choice([1, 1, 1, 1, 2, 2, 3]))
        if chinese:
            region, city, postal = rng.choice(CN_PLACES)
            name = rng.choice(CN_SURNAME) + rng.choice(CN_GIVEN) + rng.choice(CN_GIVEN)
            phone = f"+86138{debtor % 100000000:08d}"
            email = f"user{debtor}@example.cn"
            base = dict(
                country="CN",
                region=region,
                city=city,
                postal_code=postal,
                locale="zh-CN",
                currency="CNY",
                creditor="huaxia",
                address_line1=f"{city}市中心路{debtor % 900 + 1}号",
            )
        else:
            region, city, area, postal = rng.choice(US_PLACES)
            name = f"{rng.choice(US_FIRST)} {rng.choice(US_LAST)}"
            phone = f"+1{area}55501{debtor % 100:02d}"
            email = f"{name.split()[0].lower()}.{debtor}@example.com"
            base = dict(
                country="US",
                region=region,
                city=city,
                postal_code=postal,
                locale="en-US",
                currency="USD",
                creditor="acme",
                address_line1=f"{debtor % 9000 + 100} Main Street",
            )
        for k in range(count):
            i += 1
            dpd = rng.randint(1, 120)
            if i % 10 == 0:  # one in ten not due yet: the pre-due stage's reminders
                dpd = -(dpd % 7)
            balance = Decimal(rng.randint(5000, 500000)) / 100
            yield Account(
                account_id=f"{'C' if chinese else 'U'}-{i:06d}",
                debtor_id=f"D-{debtor:06d}",
                name=name,
                phone=phone,
                email=email if rng.random() < 0.85 else None,
                balance=balance,
                due_date=today - timedelta(days=dpd),
                reference=f"REF-{debtor:06d}-{k + 1}",
                consent_voice=rng.random() > 0.05,
                consent_email=None,
                segment=rng.choice(["low", "mid", "high"]),
                **base,  # type: ignore[arg-type]
            )


def generate_events(
    accounts: list[Account], *, start: datetime, days: int, seed: int = 11
) -> list[SampleEvent]:
    """Promises (kept and broken), payments, STOPs, disputes, plans, conversations."""
    rng = random.Random(seed)
    events: list[SampleEvent] = []
    for account in accounts:
        roll = rng.random()
        at = start + timedelta(days=rng.randint(0, max(days - 1, 0)), hours=rng.randint(13, 23))
        aid = account.account_id
        if roll < 0.12:
            amount = (account.balance / 2).quantize(Decimal("0.01"))
            due = (at + timedelta(days=rng.randint(3, 10))).date()
            events.append(SampleEvent(at, aid, "promise", {"amount": amount, "due": due}))
            if rng.random() < 0.6:
                pay_at = at + timedelta(days=rng.randint(1, 3))
                events.append(SampleEvent(pay_at, aid, "payment", {"amount": amount}))
        elif roll < 0.17:
            events.append(SampleEvent(at, aid, "payment", {"amount": account.balance}))
        elif roll < 0.21:
            events.append(SampleEvent(at, aid, "inbound_sms", {"body": "STOP"}))
        elif roll < 0.23:
            events.append(SampleEvent(at, aid, "dispute", {}))
        elif roll < 0.26:
            first = (at + timedelta(days=5)).date()
            part = (account.balance / 3).quantize(Decimal("0.01"))
            instalments = [
                {"due": first + timedelta(days=14 * k), "amount": part} for k in range(3)
            ]
            events.append(SampleEvent(at, aid, "plan", {"instalments": instalments}))
        elif roll < 0.30:
            events.append(SampleEvent(at, aid, "conversation", {"channel": "voice"}))
        elif roll < 0.31:
            events.append(SampleEvent(at, aid, "cease", {}))
    events.sort(key=lambda e: (e.at, e.account))
    return events


# Stand-ins for provider callbacks in the demo: how often each channel's sends end in
# each delivery status (a share per status, in order), and how often a delivered text or
# email has its payment link followed.
RECEIPT_SHARES: dict[str, tuple[tuple[str, float], ...]] = {
    "sms": (("delivered", 0.93), ("undelivered", 0.05), ("failed", 0.02)),
    "email": (("delivered", 0.62), ("opened", 0.33), ("undelivered", 0.05)),
    "voice": (("answered", 0.42), ("machine", 0.28), ("no_answer", 0.25), ("busy", 0.05)),
    "letter": (("delivered", 0.97), ("undelivered", 0.03)),
}
CLICK_SHARE = 0.12


def sample_receipts(sends: list[tuple[str, str]], *, seed: int = 7) -> dict[str, str]:
    """A final delivery status for each ``(message_id, channel)`` send, as the demo's
    providers would have reported it; deterministic for the same sends."""
    rng = random.Random(seed)
    found = {}
    for message_id, channel in sends:
        shares = RECEIPT_SHARES.get(channel, (("delivered", 1.0),))
        roll, status = rng.random(), shares[-1][0]
        for name, share in shares:
            if roll < share:
                status = name
                break
            roll -= share
        if (
            channel in ("sms", "email")
            and status in ("delivered", "opened")
            and rng.random() < CLICK_SHARE
        ):
            status = "clicked"
        found[message_id] = status
    return found


def write_csv(accounts: list[Account] | Iterator[Account], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = SafeWriter(handle)  # an import-format file: `outreach import` unquotes
        writer.writerow(ACCOUNT_COLUMNS)
        for account in accounts:
            row = []
            for column in ACCOUNT_COLUMNS:
                value = getattr(account, column)
                if value is None:
                    row.append("")
                elif isinstance(value, bool):
                    row.append("true" if value else "false")
                else:
                    row.append(str(value))
            writer.writerow(row)
            n += 1
    return n
