"""Properties of the default mapping over generated data (Hypothesis)."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cosell.mapping import (
    load_mapping,
    new_referral_body,
    new_salesforce_records,
    partner_center_values,
    salesforce_values,
)
from cosell.mapping.countries import COUNTRIES
from cosell.mapping.referral_paths import referral_paths
from cosell.mapping.types import Value
from cosell.partnercenter.models import AssistanceRequestCode, DealType

MAPPING = load_mapping()
NAMES = [f.name for f in MAPPING.fields]

blank = st.sampled_from([None, ""])
scalar = st.one_of(blank, st.text(max_size=8), st.integers(0, 10**6), st.booleans())


def _member(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node: dict[str, Any] = {}
    current = node
    for segment in path[:-1]:
        current = current.setdefault(segment, {})
    current[path[-1]] = value
    return node


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif key not in into:
            into[key] = value


@st.composite
def messy_referrals(draw: st.DrawFn) -> dict[str, Any]:
    """A referral in which every mapped member is a valid value, null, "", or absent; and whole
    objects (details, customerProfile, consent, ...) may be null or absent."""
    referral: dict[str, Any] = {}
    valid = {
        "name": st.text(min_size=1, max_size=10),
        "details/dealValue": st.one_of(
            st.integers(0, 10**9), st.decimals(0, 10**6, places=2).map(str)
        ),
        "details/currency": st.sampled_from(["USD", "eur"]),
        "details/closingDateTime": st.sampled_from(
            ["2026-06-30T00:00:00Z", "2026-01-01T00:00:00.0000000Z"]
        ),
        "details/notes": st.text(max_size=10),
        "inviteContext/assistanceRequestCode": st.sampled_from(
            ["Unknown", "None", "GeneralOrOther"]
        ),
        "consent/consentToShareReferralWithMicrosoftSellers": st.booleans(),
        "trackingInfo/microsoftMsxId": st.text(max_size=5),
        "customerProfile/name": st.text(max_size=10),
        "customerProfile/address/addressLine1": st.text(max_size=10),
        "customerProfile/address/city": st.text(max_size=10),
        "customerProfile/address/state": st.text(max_size=3),
        "customerProfile/address/postalCode": st.text(max_size=6),
        "customerProfile/address/country": st.sampled_from(
            ["US", "de", "United Kingdom", "Atlantis"]
        ),
    }
    for path, strategy in valid.items():
        choice = draw(st.sampled_from(["value", "null", "empty", "absent"]))
        if choice == "absent":
            continue
        value = {"value": None, "null": None, "empty": ""}.get(choice)
        if choice == "value":
            value = draw(strategy)
        _merge(referral, _member(tuple(path.split("/")), value))
    for parent in ("details", "customerProfile", "consent", "inviteContext", "trackingInfo"):
        if draw(st.booleans()) and draw(st.booleans()):
            referral[parent] = draw(st.sampled_from([None, ""]))
    status = draw(st.sampled_from([None, "New", "Active", "Closed"]))
    if status is not None:
        referral["status"] = status
        referral["substatus"] = draw(st.sampled_from([None, "Pending", "Accepted", "Won", "Lost"]))
    return referral


@given(referral=messy_referrals())
def test_partner_center_values_read_any_shape_of_referral(referral: dict[str, Any]) -> None:
    values = partner_center_values(MAPPING, referral)
    assert list(values) == NAMES
    assert all(v is None or isinstance(v, str | bool) for v in values.values())
    assert values["visibility"] in (True, False)
    assert values["name"] != ""


@given(
    opportunity=st.fixed_dictionaries(
        {},
        optional={
            "Name": scalar,
            "Amount": st.one_of(blank, st.floats(0, 1e9, allow_nan=False)),
            "CurrencyIsoCode": st.one_of(blank, st.sampled_from(["USD", "EUR"])),
            "CloseDate": st.one_of(
                blank, st.dates(date(1700, 1, 1), date(4000, 12, 31)).map(lambda d: d.isoformat())
            ),
            "Description": scalar,
            "StageName": st.one_of(blank, st.sampled_from(["Prospecting", "Closed Won", "Other"])),
            "How_can_Microsoft_help__c": st.one_of(blank, st.just("General or other")),
            "Referral_Visibility__c": st.one_of(st.none(), st.booleans()),
            "Account": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"Name": scalar})),
        },
    )
)
def test_salesforce_values_read_any_shape_of_record(opportunity: dict[str, Any]) -> None:
    values = salesforce_values(MAPPING, {"Opportunity": opportunity})
    assert list(values) == NAMES
    assert all(v is None or isinstance(v, str | bool) for v in values.values())


canonical_values = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=20),
        "close_date": st.dates(date(1700, 1, 1), date(4000, 12, 31)).map(lambda d: d.isoformat()),
        "customer_name": st.text(min_size=1, max_size=20),
        "country": st.sampled_from([c[0] for c in COUNTRIES]),
    },
    optional={
        "deal_value": st.decimals(0, 10**9, places=2).map(lambda d: f"{d:.2f}"),
        "currency": st.sampled_from(["USD", "EUR", "JPY"]),
        "notes": st.text(min_size=1, max_size=30),
        "help": st.sampled_from(["GeneralOrOther", "QuotesOrLicensing"]),
        "visibility": st.booleans(),
        "msx_id": st.text(min_size=1, max_size=8),
        "street": st.text(min_size=1, max_size=10),
        "city": st.text(min_size=1, max_size=10),
        "state": st.text(min_size=1, max_size=3),
        "postal_code": st.text(min_size=1, max_size=6),
        "stage": st.sampled_from(["New/Pending", "Active/Accepted", "Closed/Won", "Closed/Lost"]),
    },
)


def _with_defaults(values: dict[str, Value]) -> dict[str, Value]:
    filled = {f.name: values.get(f.name, f.default_value) for f in MAPPING.fields}
    return {
        k: (False if MAPPING.field(k).transform.type == "boolean" and v is None else v)
        for k, v in filled.items()
    }


@given(values=canonical_values)
def test_a_record_created_from_values_reads_back_as_those_values(values: dict[str, Value]) -> None:
    records = new_salesforce_records(MAPPING, values, referral_id="r", referral_link="l")
    assert salesforce_values(MAPPING, records) == _with_defaults(values)


@given(values=canonical_values)
def test_a_referral_created_from_values_reads_back_as_those_values(
    values: dict[str, Value],
) -> None:
    body = new_referral_body(
        MAPPING, values, external_reference_id="006", share_with_microsoft=False
    )
    read = partner_center_values(MAPPING, body)
    creatable = {
        f.name
        for f in MAPPING.fields
        if referral_paths()[f.partner_center].creatable and not f.is_stage
    }
    expected = _with_defaults(values)
    # The deal type is no member of its own: it reads back as the consent and help it implies.
    shared, help_code = expected["visibility"], expected["help"]
    expected["deal_type"] = DealType.of(
        shared is True, None if help_code is None else AssistanceRequestCode(help_code)
    ).value
    assert {k: read[k] for k in creatable} == {k: expected[k] for k in creatable}
    assert read["msx_id"] is None  # Partner Center sets it; a create never sends it
