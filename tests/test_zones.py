"""Candidate and primary zones of an account (docs/configuration.md, ``timezone``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, cast

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_tz

from orchestrator.config.models import TimezonePolicy
from orchestrator.core.account import Account
from orchestrator.core.phones import GEOGRAPHIC, phone_facts
from orchestrator.core.zones import Zones, address_zones, candidate_zones, phone_zones

POLICY = TimezonePolicy()  # default America/New_York, sources explicit, address, phone


def acct(**fields: Any) -> Account:
    values: dict[str, Any] = {
        "account_id": "A1",
        "name": "Jane Doe",
        "currency": "USD",
        "balance": Decimal("1"),
        "due_date": date(2026, 1, 1),
    }
    values.update(fields)
    return Account(**values)


def keys(zones: Zones) -> list[str]:
    return [z.key for z in zones.candidates]


def test_spec_example_phone_new_york_address_oakland() -> None:
    zones = candidate_zones(
        acct(phone="+12125550100", city="Oakland", region="CA", country="US"), POLICY
    )
    assert keys(zones) == ["America/Los_Angeles", "America/New_York"]
    # sources order is explicit, address, phone: the address comes first
    assert zones.primary.key == "America/Los_Angeles"


def test_primary_follows_sources_order() -> None:
    policy = TimezonePolicy(sources=["phone", "address"])
    zones = candidate_zones(acct(phone="+12125550100", region="CA", country="US"), policy)
    assert zones.primary.key == "America/New_York"
    assert keys(zones) == ["America/Los_Angeles", "America/New_York"]


def test_explicit_zone_first_and_always_a_candidate() -> None:
    zones = candidate_zones(
        acct(timezone="America/Chicago", phone="+12125550100", region="NY", country="US"),
        POLICY,
    )
    assert zones.primary.key == "America/Chicago"
    assert keys(zones) == ["America/Chicago", "America/New_York"]


def test_sources_not_listed_are_ignored() -> None:
    policy = TimezonePolicy(sources=["address"])
    zones = candidate_zones(
        acct(timezone="Asia/Tokyo", phone="+12125550100", region="AZ", country="US"), policy
    )
    assert keys(zones) == ["America/Phoenix"]


def test_nothing_known_gives_the_default() -> None:
    zones = candidate_zones(acct(), TimezonePolicy(default="America/Denver"))
    assert zones.primary.key == "America/Denver"
    assert keys(zones) == ["America/Denver"]


def test_invalid_explicit_zone_and_bad_phone_fall_through() -> None:
    zones = candidate_zones(acct(timezone="Mars/Olympus", phone="+1999"), POLICY)
    assert keys(zones) == ["America/New_York"]


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("AZ", ["America/Phoenix"]),
        ("HI", ["Pacific/Honolulu"]),
        ("CA", ["America/Los_Angeles"]),
        ("US-CA", ["America/Los_Angeles"]),
        ("California", ["America/Los_Angeles"]),
        ("TN", ["America/Chicago", "America/New_York"]),
        ("FL", ["America/Chicago", "America/New_York"]),
        ("TX", ["America/Chicago", "America/Denver"]),
        ("OR", ["America/Boise", "America/Los_Angeles"]),
        ("ID", ["America/Denver", "America/Los_Angeles"]),
        ("KS", ["America/Chicago", "America/Denver"]),
        ("NE", ["America/Chicago", "America/Denver"]),
        ("SD", ["America/Chicago", "America/Denver"]),
        ("MI", ["America/Chicago", "America/New_York"]),
    ],
)
def test_us_states(region: str, expected: list[str]) -> None:
    assert keys(candidate_zones(acct(region=region, country="US"), POLICY)) == expected


@pytest.mark.parametrize("region", ["IN", "KY", "ND"])
def test_states_spanning_several_zones_yield_all(region: str) -> None:
    zones = candidate_zones(acct(region=region, country="US"), POLICY)
    assert {"America/Chicago"} <= set(keys(zones))
    assert len(zones.candidates) >= 3


def test_primary_of_a_multi_zone_state_is_the_capitals() -> None:
    assert candidate_zones(acct(region="TX", country="US"), POLICY).primary.key == "America/Chicago"
    assert (
        candidate_zones(acct(region="FL", country="US"), POLICY).primary.key == "America/New_York"
    )
    assert (
        candidate_zones(acct(region="IN", country="US"), POLICY).primary.key
        == "America/Indiana/Indianapolis"
    )


def test_zone_links_are_resolved_and_deduplicated() -> None:
    zones = candidate_zones(acct(region="IN", country="US", timezone="US/Eastern"), POLICY)
    assert zones.primary.key == "America/New_York"
    assert "America/Indianapolis" not in keys(zones)  # a link to America/Indiana/Indianapolis
    assert keys(zones) == sorted(set(keys(zones)))


def test_us_without_region_is_every_us_zone() -> None:
    zones = address_zones("US", None)
    assert zones[0] == "America/New_York"
    assert {"Pacific/Honolulu", "America/Anchorage", "America/Phoenix"} <= set(zones)


def test_china_is_beijing_time() -> None:
    zones = candidate_zones(acct(country="CN", region="BJ", phone="+8613800138000"), POLICY)
    assert keys(zones) == ["Asia/Shanghai"]
    assert zones.primary.key == "Asia/Shanghai"
    assert address_zones("CN", "XJ") == ("Asia/Shanghai", "Asia/Urumqi")


def test_other_countries_from_the_tz_table() -> None:
    assert address_zones("FR", None) == ("Europe/Paris",)
    assert address_zones("JP", "13") == ("Asia/Tokyo",)
    au = address_zones("AU", None)  # multi-zone, no known region: all of them
    assert "Australia/Sydney" in au and "Australia/Perth" in au
    assert address_zones("ZZ", None) == ()


def test_phone_zones() -> None:
    assert phone_zones("+12125550100") == ("America/New_York",)
    assert phone_zones("+15105550100") == ("America/Los_Angeles",)
    assert phone_zones("+8613800138000") == ("Asia/Shanghai",)
    # a toll-free number says nothing about where the person is
    assert phone_zones("+18005550100") == ()
    assert phone_zones("not a number") == ()
    assert phone_zones(None) == ()


def test_results_are_shared_between_accounts() -> None:
    a = candidate_zones(
        acct(account_id="A", phone="+12125550100", region="CA", country="US"), POLICY
    )
    b = candidate_zones(
        acct(account_id="B", phone="+12125550199", region="CA", country="US"), POLICY
    )
    assert a == b and hash(a) == hash(b)


@settings(max_examples=400, deadline=None)
@given(
    country=st.sampled_from([1, 7, 33, 44, 49, 52, 54, 55, 61, 62, 81, 86, 91, 800, 852, 882]),
    national=st.text(alphabet="0123456789", min_size=4, max_size=13),
)
def test_phone_facts_answer_as_phonenumbers_does(country: int, national: str) -> None:
    """One parse and one type lookup give what ``is_valid_number`` and
    ``time_zones_for_number`` give (the engine asks each number both)."""
    text = f"+{country}{national}"
    facts = phone_facts(text)
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        assert facts is None
        return
    assert facts is not None
    assert facts.valid == phonenumbers.is_valid_number(number)
    geographic = phonenumbers.number_type(number) in GEOGRAPHIC
    expected = tuple(phone_tz.time_zones_for_number(number)) if geographic else ()
    assert facts.zones == expected


@pytest.mark.parametrize(
    "text",
    [
        "+12125550100",
        "+8613800138000",
        "+441632960961",
        "+5215512345678",
        "+18005550100",
        "+12125550",
    ],
)
def test_phone_facts_of_known_numbers(text: str) -> None:
    number = phonenumbers.parse(text, None)
    facts = phone_facts(text)
    assert facts is not None and facts.valid == phonenumbers.is_valid_number(number)
    if facts.valid and phonenumbers.number_type(number) in GEOGRAPHIC:
        assert facts.zones == tuple(phone_tz.time_zones_for_number(number))


def test_an_invalid_number_is_blocked_unless_the_import_found_it_valid() -> None:
    """The gate blocks a text to a number that is no valid number (``invalid_contact``).
    Zones stored at import stand for the import's own check, under the same phonenumbers
    release (only valid numbers are imported): the gate does not parse the number again."""
    from types import SimpleNamespace

    from orchestrator.core.gate import contact_rule
    from orchestrator.core.planner import Occurrence
    from orchestrator.core.records import Reason
    from orchestrator.core.state import AccountState
    from orchestrator.core.zones import phone_zones_text, stored_phone_zones

    policy = TimezonePolicy()
    text = cast(Occurrence, SimpleNamespace(channel="sms"))  # contact_rule reads its channel
    bad = Account(
        "A1", "Jane Doe", "USD", Decimal("1"), date(2026, 3, 1), phone="+1555", country="US"
    )
    assert contact_rule(text, AccountState(bad, candidate_zones(bad, policy))) == (
        Reason.invalid_contact
    )
    good = Account(
        "A2", "Jane Doe", "USD", Decimal("1"), date(2026, 3, 1), phone="+12125550100", country="US"
    )
    assert contact_rule(text, AccountState(good, candidate_zones(good, policy))) is None
    imported = Account(
        "A2",
        "Jane Doe",
        "USD",
        Decimal("1"),
        date(2026, 3, 1),
        phone="+12125550100",
        country="US",
        phone_zones=stored_phone_zones(phone_zones_text(good)),
    )
    assert imported.phone_zones == ("America/New_York",)
    assert contact_rule(text, AccountState(imported, candidate_zones(imported, policy))) is None
    assert candidate_zones(imported, policy) == candidate_zones(good, policy)
