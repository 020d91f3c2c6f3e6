"""The write side: JSON Patch for Partner Center, field maps for Salesforce, create payloads.

Patches are applied with the Partner Center sandbox's own JSON Patch implementation (an
independent reading of RFC 6902 as the API supports it), then read back through the mapping:
writing a change and reading it again must give the change.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosell.mapping import (
    MappingError,
    ValueMappingError,
    load_mapping,
    new_referral_body,
    new_salesforce_records,
    parse_mapping,
    partner_center_operations,
    partner_center_values,
    salesforce_query_fields,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping.loader import default_mapping_text
from cosell.mapping.model import ACCOUNT, OPPORTUNITY
from cosell.mapping.types import Value
from cosell.partnercenter.models import AssistanceRequestCode, DealType, NewReferral
from cosell_sandbox.partnercenter.patching import apply_operation, parse_patch
from cosell_sandbox.partnercenter.validation import normalize_referral

MAPPING = load_mapping()


def apply(referral: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    patched = copy.deepcopy(referral)
    if not ops:
        return patched
    for operation in parse_patch(copy.deepcopy(ops)):
        apply_operation(patched, operation)
    return patched


def accepted_referral() -> dict[str, Any]:
    return {
        "id": "r-1",
        "name": "Fabrikam - Dynamics",
        "status": "Active",
        "substatus": "Accepted",
        "customerProfile": {"name": "Fabrikam", "address": {"country": "DE"}},
        "consent": {"consentToShareReferralWithMicrosoftSellers": False},
        "details": {"dealValue": 1000, "currency": "EUR", "closingDateTime": None},
    }


def test_changes_become_replace_for_existing_members_and_add_for_absent_ones() -> None:
    referral = accepted_referral()
    ops = partner_center_operations(
        MAPPING,
        {"deal_value": "2500.50", "notes": "Bigger scope", "close_date": "2026-09-30"},
        referral,
    )
    assert ops == [
        {"op": "replace", "path": "/details/dealValue", "value": 2500.5},
        {"op": "replace", "path": "/details/closingDateTime", "value": "2026-09-30T00:00:00Z"},
        {"op": "add", "path": "/details/notes", "value": "Bigger scope"},
    ]


def test_members_under_an_absent_parent_are_added_as_one_object() -> None:
    referral = accepted_referral()
    del referral["details"]
    referral["inviteContext"] = None
    ops = partner_center_operations(
        MAPPING,
        {"currency": "USD", "deal_value": "10.00", "help": "GeneralOrOther"},
        referral,
    )
    assert ops == [
        {"op": "add", "path": "/details", "value": {"dealValue": 10, "currency": "USD"}},
        {
            "op": "add",
            "path": "/inviteContext",
            "value": {"assistanceRequestCode": "GeneralOrOther"},
        },
    ]
    patched = apply(referral, ops)
    values = partner_center_values(MAPPING, patched)
    assert (values["currency"], values["deal_value"], values["help"]) == (
        "USD",
        "10.00",
        "GeneralOrOther",
    )


writable = {
    "name": st.text(min_size=1, max_size=20),
    "deal_value": st.decimals(min_value=0, max_value=10**9, places=2).map(lambda d: f"{d:.2f}"),
    "currency": st.sampled_from(["USD", "EUR", "GBP"]),
    "close_date": st.dates(date(1700, 1, 1), date(4000, 12, 31)).map(lambda d: d.isoformat()),
    "notes": st.none() | st.text(min_size=1, max_size=50),
    "help": st.sampled_from(["GeneralOrOther", "QuotesOrLicensing"]),
    "visibility": st.booleans(),
    "stage": st.sampled_from(["Active/Accepted", "Closed/Won", "Closed/Lost"]),
}


@given(
    changes=st.fixed_dictionaries({}, optional=writable),
    drop=st.sets(st.sampled_from(["details", "consent", "inviteContext"])),
)
def test_applying_the_patch_then_reading_gives_the_changes(
    changes: dict[str, Value], drop: set[str]
) -> None:
    referral = accepted_referral()
    for key in drop:
        referral.pop(key, None)
    ops = partner_center_operations(MAPPING, changes, referral)
    assert {op["op"] for op in ops} <= {"add", "replace"}
    patched = apply(referral, ops)
    values = partner_center_values(MAPPING, patched)
    assert {name: values[name] for name in changes} == changes
    # The deal type is read from the consent and the help: it follows the changes of those.
    help_code = values["help"]
    assert values["deal_type"] == (
        DealType.of(
            values["visibility"] is True,
            None if help_code is None else AssistanceRequestCode(help_code),
        ).value
    )
    untouched = partner_center_values(MAPPING, referral)
    assert {k: v for k, v in values.items() if k not in changes and k != "deal_type"} == {
        k: v for k, v in untouched.items() if k not in changes and k != "deal_type"
    }


def test_stage_writes_status_and_substatus() -> None:
    referral = {"status": "New", "substatus": "Pending"}
    assert partner_center_operations(MAPPING, {"stage": "Active/Accepted"}, referral) == [
        {"op": "replace", "path": "/status", "value": "Active"},
        {"op": "replace", "path": "/substatus", "value": "Accepted"},
    ]


def test_losing_needs_a_reason_default_or_from_the_reason_field() -> None:
    referral = accepted_referral()
    ops = partner_center_operations(MAPPING, {"stage": "Closed/Lost"}, referral)
    assert ops[-1] == {"op": "add", "path": "/statusReason", "value": "Lost in Salesforce"}
    fields, lead_marker, lead = default_mapping_text().partition("\n# Lead sync")
    with_reason = parse_mapping(
        fields.replace(
            "  declined_reason: Declined in Salesforce\n",
            "  declined_reason: Declined in Salesforce\n  reason_field: loss_reason\n",
        )
        + "\n  - name: loss_reason\n    partner_center: statusReason\n"
        "    salesforce: Opportunity.NextStep\n    direction: to_partner_center\n"
        "    owner: salesforce\n" + lead_marker + lead,
        "with-reason.yaml",
    )
    ops = partner_center_operations(
        with_reason,
        {"stage": "Closed/Lost"},
        referral,
        values={"loss_reason": "Chose another vendor"},
    )
    assert ops[-1] == {"op": "add", "path": "/statusReason", "value": "Chose another vendor"}
    ops = partner_center_operations(
        with_reason, {"stage": "Closed/Lost", "loss_reason": "Budget"}, referral
    )
    assert [op for op in ops if op["path"] == "/statusReason"] == [
        {"op": "add", "path": "/statusReason", "value": "Budget"}
    ]


def test_winning_sends_no_reason() -> None:
    ops = partner_center_operations(MAPPING, {"stage": "Closed/Won"}, accepted_referral())
    assert [op["path"] for op in ops] == ["/status", "/substatus"]


def test_losing_a_referral_never_accepted_declines_it() -> None:
    referral = {"status": "New", "substatus": "Pending", "statusReason": None}
    ops = partner_center_operations(MAPPING, {"stage": "Closed/Lost"}, referral)
    assert ops == [
        {"op": "replace", "path": "/status", "value": "Closed"},
        {"op": "replace", "path": "/substatus", "value": "Declined"},
        {"op": "replace", "path": "/statusReason", "value": "Declined in Salesforce"},
    ]


def test_a_read_only_partner_center_member_is_never_written() -> None:
    with pytest.raises(ValueMappingError, match="does not let partners change trackingInfo"):
        partner_center_operations(MAPPING, {"msx_id": "7-X"}, accepted_referral())


def test_an_unknown_field_in_changes_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no field 'colour'"):
        partner_center_operations(MAPPING, {"colour": "red"}, {})
    with pytest.raises(KeyError, match="no field 'colour'"):
        salesforce_updates(MAPPING, {"colour": "red"}, {})


def opportunity_records(stage: str = "Negotiation/Review") -> dict[str, Any]:
    return {
        OPPORTUNITY: {"Id": "006A", "StageName": stage, "Amount": 5.0, "AccountId": "001A"},
        ACCOUNT: {"Id": "001A", "Name": "Fabrikam"},
    }


def test_salesforce_updates_are_field_maps_per_record() -> None:
    updates = salesforce_updates(
        MAPPING,
        {
            "deal_value": "25000.00",
            "currency": "EUR",
            "close_date": "2026-06-30",
            "notes": None,
            "msx_id": "7-ABC",
            "customer_name": "Fabrikam GmbH",
            "country": "DE",
            "help": "QuotesOrLicensing",
        },
        opportunity_records(),
    )
    assert updates == {
        OPPORTUNITY: {
            "Amount": 25000,
            "CurrencyIsoCode": "EUR",
            "CloseDate": "2026-06-30",
            "Description": None,
            "Microsoft_CRM_Identifier__c": "7-ABC",
            "How_can_Microsoft_help__c": "Quotes or licensing",
        },
        ACCOUNT: {"Name": "Fabrikam GmbH", "BillingCountry": "DE"},
    }


@pytest.mark.parametrize(
    ("stage", "value", "written"),
    [
        ("Negotiation/Review", "Active/Accepted", None),
        ("Prospecting", "Active/Accepted", "Qualification"),
        ("Negotiation/Review", "Closed/Won", "Closed Won"),
        ("Closed Lost", "Closed/Declined", None),
        ("Prospecting", "Closed/Expired", "Closed Lost"),
        ("Qualification", "New/Pending", "Prospecting"),
    ],
)
def test_a_stage_the_opportunity_already_means_is_not_written(
    stage: str, value: str, written: str | None
) -> None:
    updates = salesforce_updates(MAPPING, {"stage": value}, opportunity_records(stage))
    if written is None:
        assert updates == {}
    else:
        assert updates == {OPPORTUNITY: {"StageName": written}}


@given(changes=st.fixed_dictionaries({}, optional=writable))
def test_applying_salesforce_updates_then_reading_gives_the_changes(
    changes: dict[str, Value],
) -> None:
    records = opportunity_records()
    updates = salesforce_updates(MAPPING, changes, records)
    patched = {role: dict(record or {}) for role, record in records.items()}
    for role, fields in updates.items():
        patched[role].update(fields)
    values = salesforce_values(MAPPING, patched)
    assert {name: values[name] for name in changes} == changes


def test_new_referral_body_is_a_valid_create() -> None:
    values = salesforce_values(
        MAPPING,
        {
            OPPORTUNITY: {
                "Id": "006A",
                "Name": "Fabrikam - Dynamics",
                "Amount": 1200.5,
                "CurrencyIsoCode": "EUR",
                "CloseDate": "2026-09-30",
                "Description": "Phase 1",
                "StageName": "Negotiation/Review",
                "How_can_Microsoft_help__c": "Quotes or licensing",
                "Referral_Visibility__c": False,
                "Microsoft_CRM_Identifier__c": "7-IGNORED",
            },
            ACCOUNT: {
                "Name": "Fabrikam",
                "BillingStreet": "Hauptstr. 1",
                "BillingCity": "Berlin",
                "BillingPostalCode": "10115",
                "BillingCountry": "Germany",
            },
        },
    )
    body = new_referral_body(
        MAPPING, values, external_reference_id="006A", share_with_microsoft=True
    )
    assert body["name"] == "Fabrikam - Dynamics"
    assert body["type"] == "Shared"
    assert body["externalReferenceId"] == "006A"
    assert body["customerProfile"]["name"] == "Fabrikam"
    assert body["customerProfile"]["address"] == {
        "addressLine1": "Hauptstr. 1",
        "city": "Berlin",
        "postalCode": "10115",
        "country": "DE",
    }
    assert body["details"] == {
        "notes": "Phase 1",
        "dealValue": 1200.5,
        "currency": "EUR",
        "closingDateTime": "2026-09-30T00:00:00Z",
    }
    assert body["consent"] == {"consentToShareReferralWithMicrosoftSellers": True}
    assert body["inviteContext"] == {"assistanceRequestCode": "QuotesOrLicensing"}
    assert "status" not in body
    assert "trackingInfo" not in body
    NewReferral.model_validate(body)
    # The sandbox's own create checks accept it once the caller adds what the mapping does not
    # hold: the solutions (Microsoft_Solution__c rows) and the customer contact.
    complete = copy.deepcopy(body)
    complete["details"]["requirements"] = {"solutions": [{"id": "SOL-1", "type": "Name"}]}
    complete["customerProfile"]["team"] = [{"firstName": "A", "lastName": "B", "email": "a@b.c"}]
    normalize_referral(complete)


def test_new_referral_body_uses_defaults_and_explains_what_is_missing() -> None:
    values = {"name": "Deal", "close_date": "2026-01-31", "customer_name": "X", "country": "FR"}
    body = new_referral_body(
        MAPPING, values, external_reference_id="006B", share_with_microsoft=False
    )
    assert body["type"] == "Independent"
    assert body["details"]["dealValue"] == 0
    assert body["details"]["currency"] == "USD"
    assert body["consent"] == {}  # no visibility value: nothing consented
    with pytest.raises(ValueMappingError, match=r"2-letter ISO 3166 code.*'Atlantis'"):
        new_referral_body(
            MAPPING,
            {**values, "country": "Atlantis"},
            external_reference_id="006B",
            share_with_microsoft=False,
        )
    with pytest.raises(ValueMappingError, match="closingDateTime is required"):
        new_referral_body(
            MAPPING,
            {**values, "close_date": None},
            external_reference_id="006B",
            share_with_microsoft=False,
        )


def test_new_salesforce_records_from_an_incoming_referral() -> None:
    referral = {
        "id": "r-9",
        "name": "Contoso - Azure",
        "status": "New",
        "substatus": "Pending",
        "customerProfile": {
            "name": "Contoso",
            "address": {"city": "Redmond", "postalCode": "98052", "country": "US"},
        },
        "consent": {"consentToShareReferralWithMicrosoftSellers": True},
        "details": {"dealValue": 5000, "closingDateTime": "2026-03-31T00:00:00Z"},
        "inviteContext": {"assistanceRequestCode": "Unknown"},
        "trackingInfo": {"microsoftMsxId": "7-MSX"},
    }
    records = new_salesforce_records(
        MAPPING,
        partner_center_values(MAPPING, referral),
        referral_id="r-9",
        referral_link="https://partner.microsoft.com/dashboard/referrals/v2/leads/r-9",
    )
    assert records == {
        OPPORTUNITY: {
            "Name": "Contoso - Azure",
            "Amount": 5000,
            "CurrencyIsoCode": "USD",
            "CloseDate": "2026-03-31",
            "StageName": "Prospecting",
            "Referral_Visibility__c": True,
            "Deal_Type__c": "Partner-led",  # shared, no help asked
            "Microsoft_CRM_Identifier__c": "7-MSX",
            "Referral_Identifier__c": "r-9",
            "Referral_Link__c": "https://partner.microsoft.com/dashboard/referrals/v2/leads/r-9",
            "Sync_with_Partner_Center__c": True,
        },
        ACCOUNT: {
            "Name": "Contoso",
            "BillingCity": "Redmond",
            "BillingPostalCode": "98052",
            "BillingCountry": "US",
        },
    }
    # Read back, the new records hold what the referral holds (defaults aside).
    values = salesforce_values(MAPPING, records)
    expected = partner_center_values(MAPPING, referral) | {"currency": "USD"}
    assert values == expected


def test_new_salesforce_records_without_account_values_has_no_account() -> None:
    records = new_salesforce_records(
        MAPPING, {"name": "X", "stage": "Active/Accepted"}, referral_id="r", referral_link="l"
    )
    assert records[ACCOUNT] is None
    assert records[OPPORTUNITY]["StageName"] == "Qualification"


SINGLE_CURRENCY = default_mapping_text().replace(
    "  - name: currency\n"
    "    partner_center: details/currency\n"
    "    salesforce: Opportunity.CurrencyIsoCode\n"
    "    direction: both\n",
    "  - name: currency\n"
    "    partner_center: details/currency\n"
    "    salesforce: null\n"
    "    direction: to_partner_center\n",
)


def test_a_constant_field_stands_in_for_a_salesforce_field_the_org_lacks() -> None:
    mapping = parse_mapping(SINGLE_CURRENCY, "single-currency.yaml")
    assert mapping.field("currency").is_constant
    assert salesforce_values(mapping, {})["currency"] == "USD"
    assert "CurrencyIsoCode" not in salesforce_query_fields(mapping)[OPPORTUNITY]
    assert salesforce_updates(mapping, {"currency": "EUR"}, opportunity_records()) == {}
    records = new_salesforce_records(
        mapping, {"name": "X", "currency": "EUR"}, referral_id="r", referral_link="l"
    )
    assert "CurrencyIsoCode" not in records[OPPORTUNITY]
    body = new_referral_body(
        mapping,
        salesforce_values(mapping, {OPPORTUNITY: {"Name": "X", "CloseDate": "2026-01-01"}})
        | {"customer_name": "C", "country": "US"},
        external_reference_id="006",
        share_with_microsoft=False,
    )
    assert body["details"]["currency"] == "USD"
    ops = partner_center_operations(mapping, {"currency": "USD"}, accepted_referral())
    assert ops == [{"op": "replace", "path": "/details/currency", "value": "USD"}]


def test_a_constant_needs_a_default_and_flows_to_partner_center_only() -> None:
    text = SINGLE_CURRENCY.replace(
        "    direction: to_partner_center\n    owner: salesforce\n    transform: currency\n    default: USD\n",
        "    direction: both\n    owner: salesforce\n    transform: currency\n",
    )
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, "m.yaml")
    assert [p.message for p in caught.value.problems] == [
        "fields[2].salesforce: a field without a Salesforce field is a constant: give it a "
        "default (the value Partner Center gets)",
        "fields[2].direction: a constant (no Salesforce field) can only flow to_partner_center",
    ]
