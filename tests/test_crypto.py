from __future__ import annotations

import phonenumbers
import pytest
from cryptography.fernet import Fernet, InvalidToken
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from orchestrator.core.crypto import (
    DataCipher,
    ephemeral_keys,
    mask_email,
    mask_name,
    mask_phone,
    normalize_phone,
)
from orchestrator.errors import ConfigError


def test_masks() -> None:
    assert mask_phone("+12125550100") == "+1 212 *** **00"
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_name("Jane Doe") == "J*** D**"
    assert mask_phone(None) is None


def test_encrypt_roundtrip_and_rotation() -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = DataCipher([k1])
    token = old.encrypt("Jane Doe")
    assert token and "Jane" not in token
    both = DataCipher([k2, k1])
    assert both.decrypt(token) == "Jane Doe"
    rotated = both.rotate(token)
    assert DataCipher([k2]).decrypt(rotated) == "Jane Doe"
    with pytest.raises(InvalidToken):
        DataCipher([k2]).decrypt(token)
    assert old.encrypt(None) is None and old.decrypt(None) is None


def test_blind_index_normalises_and_is_keyed() -> None:
    cipher = DataCipher(ephemeral_keys())
    assert cipher.index("+12125550100") == cipher.index(" +1 212-555-0100 ")
    assert cipher.index("Jane@Example.com ", "email") == cipher.index("jane@example.com", "email")
    assert cipher.index("+12125550100") != DataCipher(ephemeral_keys()).index("+12125550100")
    assert cipher.index(None) is None


def test_dedicated_index_key_survives_rotation() -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    a = DataCipher([k1], index_secret="stable")
    b = DataCipher([k2], index_secret="stable")
    assert a.index("+12125550100") == b.index("+12125550100")


def test_index_candidates_cover_every_key() -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = DataCipher([k1]).index("+12125550100")
    assert old in DataCipher([k2, k1]).index_candidates("+12125550100")


def test_missing_or_bad_keys_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="OUTREACH_DATA_KEYS"):
        DataCipher([])
    with pytest.raises(ConfigError, match="OUTREACH_DATA_KEYS"):
        DataCipher(["not-a-key"])


def test_normalize_phone() -> None:
    assert normalize_phone("(212) 555-0100", "US") == "+12125550100"
    assert normalize_phone("12", "US") is None


def test_legacy_fernet_tokens_still_decrypt_and_rotate() -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    legacy = Fernet(k1.encode()).encrypt(b"Jane Doe").decode()
    assert DataCipher([k1]).decrypt(legacy) == "Jane Doe"
    both = DataCipher([k2, k1])
    rotated = both.rotate(legacy)
    assert rotated and rotated.startswith("o2.")
    assert DataCipher([k2]).decrypt(rotated) == "Jane Doe"
    with pytest.raises(InvalidToken):
        DataCipher([k1]).decrypt(rotated)


def test_tokens_are_randomised_and_tamper_evident() -> None:
    cipher = DataCipher(ephemeral_keys())
    a, b = cipher.encrypt("北京 Jane"), cipher.encrypt("北京 Jane")
    assert a and b and a != b and a.startswith("o2.")
    assert cipher.decrypt(a) == cipher.decrypt(b) == "北京 Jane"
    # another instance (another salt) of the same key opens them too
    again = DataCipher(cipher._keys)
    assert again.decrypt(a) == "北京 Jane"
    flipped = a[:-3] + ("A" if a[-3] != "A" else "B") + a[-2:]
    for bad in (flipped, "o2.", "o2.!!", "o2." + a[3:20], "garbage", "é"):
        with pytest.raises(InvalidToken):
            cipher.decrypt(bad)


@settings(max_examples=300, deadline=None)
@given(
    region=st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
    kind=st.sampled_from([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]),
    tail=st.integers(0, 99),
)
def test_mask_phone_reads_e164_as_phonenumbers_does(region: str, kind: int, tail: int) -> None:
    """The masking shortcut (country code by prefix, no parse) splits every valid E.164
    number where ``phonenumbers`` does."""
    example = phonenumbers.example_number_for_type(region, kind)
    assume(example is not None)
    assert example is not None
    national = phonenumbers.national_significant_number(example)
    example.national_number = int(national[:-2] + f"{tail:02d}")
    assume(phonenumbers.is_valid_number(example))
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    number = phonenumbers.parse(e164, None)
    head = phonenumbers.national_significant_number(number)
    assert mask_phone(e164) == mask_phone(f"+{number.country_code} {head}")
    masked = mask_phone(e164)
    assert masked is not None and masked.split()[0] == f"+{number.country_code}"


def test_digest_and_index_are_stable_keyed_hmacs() -> None:
    """Stored digests and blind indexes must not change between releases (a re-import
    compares digests; an inbound text finds its debtor by index): both are HMAC-SHA256
    under the index key, of a fixed layout."""
    import base64
    import hashlib
    import hmac

    cipher = DataCipher(ephemeral_keys())
    key = cipher.index_key
    layout = b"".join(
        len(raw).to_bytes(4, "big") + raw for raw in (b"\x01a", b"\x00", b"\x01\xe4\xb8\xad")
    )
    expected = hmac.new(key, b"outreach digest v1" + layout, hashlib.sha256).digest()[:18]
    assert cipher.digest(["a", None, "中"]) == base64.urlsafe_b64encode(expected).decode()
    assert (
        cipher.index("+1 212 555 0100")
        == hmac.new(key, b"phone:+12125550100", hashlib.sha256).hexdigest()
    )
