"""Keys: one spelling per referral and per Salesforce record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosell.store import KeyFormatError, canonical_record_id, parse_key, record_key, referral_key
from cosell.store.types import Link, LinkId, SyncStatus

ALPHANUMERIC = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def test_referral_key_round_trip() -> None:
    key = referral_key("2a1c5f0e-8d0b-4f4e-9b7a-5d1f3c2e7a10")
    assert key == "referral:2a1c5f0e-8d0b-4f4e-9b7a-5d1f3c2e7a10"
    assert parse_key(key) == ("referral", "2a1c5f0e-8d0b-4f4e-9b7a-5d1f3c2e7a10")


def test_record_key_round_trip_with_the_18_character_id() -> None:
    key = record_key("Opportunity", "006000000000001AAA")
    assert key == "salesforce:Opportunity:006000000000001AAA"
    assert parse_key(key) == ("salesforce", "Opportunity", "006000000000001AAA")


@pytest.mark.parametrize(
    ("short", "long"),
    [
        # Salesforce's documented example, and ids whose case bits differ per chunk.
        ("001A0000006Vm9r", "001A0000006Vm9rIAC"),
        ("006000000000001", "006000000000001AAA"),
        ("00Q7Y00000AbCdE", "00Q7Y00000AbCdEUAV"),
    ],
)
def test_fifteen_character_ids_become_their_18_character_form(short: str, long: str) -> None:
    assert canonical_record_id(short) == long
    assert canonical_record_id(long) == long
    assert record_key("Lead", short) == record_key("Lead", long)
    assert parse_key(f"salesforce:Lead:{short}") == ("salesforce", "Lead", long)


@given(st.text(ALPHANUMERIC, min_size=15, max_size=15))
def test_the_suffix_tells_ids_that_differ_only_in_case_apart(short: str) -> None:
    long = canonical_record_id(short)
    assert long[:15] == short
    assert canonical_record_id(short.swapcase()) != long or short == short.swapcase()
    assert parse_key(record_key("Opportunity", short)) == ("salesforce", "Opportunity", long)


REFERRAL_ID_TAIL = st.text(st.sampled_from("abcdefXYZ0123456789-._~"), max_size=59)


@given(ALPHANUMERIC, REFERRAL_ID_TAIL)
def test_any_referral_id_of_url_safe_characters_round_trips(first: str, rest: str) -> None:
    referral_id = first + rest
    assert parse_key(referral_key(referral_id)) == ("referral", referral_id)


@pytest.mark.parametrize(
    "referral_id",
    [".", "..", "/", "%2F", "", "a/b", "a b", "\ud800", "x\u0000", "-x", "a" * 129, "r\u00e9f"],
)
def test_an_id_that_would_name_another_url_or_cannot_be_stored_is_refused(
    referral_id: str,
) -> None:
    # `.` put in the referral's URL once fetched the list endpoint as a referral; a lone
    # surrogate once failed a whole group commit of the webhook inbox.
    with pytest.raises(KeyFormatError, match="not a referral id"):
        referral_key(referral_id)
    with pytest.raises(KeyFormatError, match="not a"):
        parse_key("referral:" + referral_id)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "referral:",
        "referral: r1",
        "opportunity:006000000000001AAA",
        "salesforce:Opportunity",
        "salesforce::006000000000001AAA",
        "salesforce:Opportunity:006",
        "salesforce:Opp ortunity:006000000000001AAA",
        "salesforce:Opportunity:006000000000001AAA:extra",
    ],
)
def test_malformed_keys_say_what_a_key_looks_like(key: str) -> None:
    with pytest.raises(KeyFormatError, match=r"expected|not a"):
        parse_key(key)


def test_a_key_error_is_a_value_error() -> None:
    with pytest.raises(
        ValueError, match="referral:<referral id> or salesforce:<SObject>:<record id>"
    ):
        parse_key("nonsense")


def test_match_on_a_parsed_key() -> None:
    match parse_key("salesforce:Opportunity:006000000000001AAA"):
        case ("referral", referral_id):
            pytest.fail(f"parsed as referral {referral_id}")
        case ("salesforce", sobject, record_id):
            assert (sobject, record_id) == ("Opportunity", "006000000000001AAA")


def test_link_keys_name_the_known_sides() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 5, tzinfo=UTC)
    half = Link(
        id=LinkId("x"),
        tenant="default",
        referral_id=None,
        engagement_id=None,
        sobject="Opportunity",
        record_id="006000000000001AAA",
        sync_status=SyncStatus.PENDING,
        last_error=None,
        created_at=now,
        updated_at=now,
        last_synced_at=None,
    )
    assert half.keys == ("salesforce:Opportunity:006000000000001AAA",)
