"""The default mapping: it loads, its rules are DESIGN.md's, and it reads realistic data."""

from __future__ import annotations

from typing import Any

import pytest

from cosell.mapping import (
    Direction,
    FieldRule,
    Owner,
    ValueMappingError,
    load_mapping,
    partner_center_values,
    salesforce_query_fields,
    salesforce_values,
)
from cosell.mapping.model import ACCOUNT, OPPORTUNITY
from cosell.partnercenter.models import Referral

MAPPING = load_mapping()

EXPECTED = {
    # name: (PC path, SF field, direction, owner, read only after create)
    "name": ("name", "Opportunity.Name", Direction.BOTH, Owner.SALESFORCE, False),
    "deal_value": ("details/dealValue", "Opportunity.Amount", Direction.BOTH, Owner.SALESFORCE, False),
    "currency": ("details/currency", "Opportunity.CurrencyIsoCode", Direction.BOTH, Owner.SALESFORCE, False),
    "close_date": ("details/closingDateTime", "Opportunity.CloseDate", Direction.BOTH, Owner.SALESFORCE, False),
    "notes": ("details/notes", "Opportunity.Description", Direction.BOTH, Owner.SALESFORCE, False),
    "stage": ("status", "Opportunity.StageName", Direction.BOTH, Owner.PARTNER_CENTER, False),
    "help": ("inviteContext/assistanceRequestCode", "Opportunity.How_can_Microsoft_help__c", Direction.TO_PARTNER_CENTER, Owner.SALESFORCE, False),
    "visibility": ("consent/consentToShareReferralWithMicrosoftSellers", "Opportunity.Referral_Visibility__c", Direction.TO_PARTNER_CENTER, Owner.SALESFORCE, False),
    "deal_type": ("consent/consentToShareReferralWithMicrosoftSellers", "Opportunity.Deal_Type__c", Direction.BOTH, Owner.SALESFORCE, False),
    "partner_role": ("partnerRole", "Opportunity.Partner_Role__c", Direction.BOTH, Owner.SALESFORCE, False),
    "solution_area": ("solutionArea", "Opportunity.Solution_Area__c", Direction.BOTH, Owner.SALESFORCE, False),
    "solution_play": ("solutionPlay", "Opportunity.Solution_Play__c", Direction.BOTH, Owner.SALESFORCE, False),
    "marketplace_intent": ("customerMarketplaceIntent", "Opportunity.Marketplace_Purchase_Intent__c", Direction.BOTH, Owner.SALESFORCE, False),
    "msx_id": ("trackingInfo/microsoftMsxId", "Opportunity.Microsoft_CRM_Identifier__c", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER, False),
    "customer_name": ("customerProfile/name", "Account.Name", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER, True),
    "street": ("customerProfile/address/addressLine1", "Account.BillingStreet", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER, True),
    "city": ("customerProfile/address/city", "Account.BillingCity", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER, True),
    "state": ("customerProfile/address/state", "Account.BillingState", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER, True),
    "postal_code": ("customerProfile/address/postalCode", "Account.BillingPostalCode", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER, True),
    "country": ("customerProfile/address/country", "Account.BillingCountry", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER, True),
}  # fmt: skip


def test_default_mapping_has_the_design_fields() -> None:
    assert [f.name for f in MAPPING.fields] == list(EXPECTED)
    for name, (path, salesforce, direction, owner, read_only) in EXPECTED.items():
        mapped = MAPPING.field(name)
        assert (mapped.partner_center, mapped.salesforce) == (path, salesforce)
        assert (mapped.direction, mapped.owner, mapped.read_only_after_create) == (
            direction,
            owner,
            read_only,
        )


def test_rules_are_the_merge_view_of_each_field() -> None:
    rules = MAPPING.rules()
    assert rules[0] == FieldRule("name", Direction.BOTH, Owner.SALESFORCE, path="name")
    assert rules[-1] == FieldRule(
        "country",
        Direction.TO_SALESFORCE,
        Owner.PARTNER_CENTER,
        read_only_after_create=True,
        kind="country",
        path="customerProfile/address/country",
    )
    once_set = [r.name for r in rules if r.read_only_once_set]
    assert once_set == ["help", "visibility"]  # set once, never changed or reverted (spec §5.5)
    assert {r.name: r.kind for r in rules if r.kind != "text"} == {
        "deal_value": "amount",
        "currency": "currency",
        "close_date": "date",
        "stage": "stage",
        "help": "picklist",
        "visibility": "boolean",
        "deal_type": "deal_type",
        "partner_role": "picklist",
        "solution_area": "picklist",
        "solution_play": "picklist",
        "marketplace_intent": "picklist",
        "country": "country",
    }
    assert [r.name for r in rules] == list(EXPECTED)
    assert MAPPING.field("stage").is_stage
    assert MAPPING.stage_field is MAPPING.field("stage")


def test_default_stage_table_and_own_fields() -> None:
    stages = MAPPING.stages
    assert (stages.on_hold_stage, stages.active_stage, stages.won_stage, stages.lost_stage) == (
        "Prospecting",
        "Qualification",
        "Closed Won",
        "Closed Lost",
    )
    assert MAPPING.opportunity.referral_id == "Referral_Identifier__c"
    assert MAPPING.opportunity.sync == "Sync_with_Partner_Center__c"


def test_unknown_field_name_is_a_key_error_listing_the_fields() -> None:
    with pytest.raises(KeyError, match=r"has no field 'nope'.*deal_value"):
        MAPPING.field("nope")


def test_query_fields_select_everything_the_values_need() -> None:
    fields = salesforce_query_fields(MAPPING)
    opportunity = fields[OPPORTUNITY]
    assert opportunity[:4] == ["Id", "LastModifiedDate", "SystemModstamp", "AccountId"]
    for needed in (
        "Name",
        "Amount",
        "StageName",
        "Referral_Identifier__c",
        "Audit__c",
        "Account.Name",
        "Account.BillingCountry",
    ):
        assert needed in opportunity
    assert len(opportunity) == len({f.lower() for f in opportunity})
    assert fields[ACCOUNT] == [
        "Id",
        "LastModifiedDate",
        "SystemModstamp",
        "Name",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
    ]


def incoming_referral() -> dict[str, Any]:
    """A co-sell referral as Partner Center returns it (7 fractional digits, string numbers)."""
    return {
        "id": "b3bd6b58-3f95-4c5c-9b3f-6d0e2f0a7a11",
        "engagementId": "0c8e2a41-7b4b-4a3e-9d7a-1f9b8e7d6c55",
        "name": "Contoso - Azure migration",
        "status": "New",
        "substatus": "Pending",
        "direction": "Incoming",
        "customerProfile": {
            "name": "Contoso Ltd",
            "address": {
                "addressLine1": "1 Microsoft Way",
                "city": "Redmond",
                "state": "WA",
                "postalCode": "98052",
                "country": "US",
            },
            "team": [{"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.com"}],
        },
        "consent": {"consentToShareReferralWithMicrosoftSellers": True},
        "details": {
            "dealValue": "25000",
            "currency": "usd",
            "closingDateTime": "2026-06-30T00:00:00.0000000Z",
            "notes": "Wants to move 40 VMs.",
        },
        "inviteContext": {"assistanceRequestCode": "CustomerTechnicalArchitecture"},
        "trackingInfo": {"microsoftMsxId": "7-ABC123"},
        "eTag": '"0x8D"',
    }


def matching_records() -> dict[str, Any]:
    """The Salesforce records holding the same deal, as the REST API returns them."""
    return {
        OPPORTUNITY: {
            "attributes": {"type": "Opportunity"},
            "Id": "006000000000001AAA",
            "Name": "Contoso - Azure migration",
            "Amount": 25000.0,
            "CurrencyIsoCode": "USD",
            "CloseDate": "2026-06-30",
            "Description": "Wants to move 40 VMs.",
            "StageName": "Prospecting",
            "How_can_Microsoft_help__c": "Customer technical architecture",
            "Referral_Visibility__c": True,
            "Deal_Type__c": "Co-sell",
            "Microsoft_CRM_Identifier__c": "7-ABC123",
            "Account": {
                "attributes": {"type": "Account"},
                "Name": "Contoso Ltd",
                "BillingStreet": "1 Microsoft Way",
                "BillingCity": "Redmond",
                "BillingState": "WA",
                "BillingPostalCode": "98052",
                "BillingCountry": "United States",
            },
        }
    }


def test_equal_meanings_compare_equal_across_sides() -> None:
    pc = partner_center_values(MAPPING, incoming_referral())
    sf = salesforce_values(MAPPING, matching_records())
    assert pc == sf
    assert pc == {
        "name": "Contoso - Azure migration",
        "deal_value": "25000.00",
        "currency": "USD",
        "close_date": "2026-06-30",
        "notes": "Wants to move 40 VMs.",
        "stage": "New/Pending",
        "help": "CustomerTechnicalArchitecture",
        "visibility": True,
        "deal_type": "Co-sell",
        "partner_role": None,
        "solution_area": None,
        "solution_play": None,
        "marketplace_intent": None,
        "msx_id": "7-ABC123",
        "customer_name": "Contoso Ltd",
        "street": "1 Microsoft Way",
        "city": "Redmond",
        "state": "WA",
        "postal_code": "98052",
        "country": "US",
    }


def test_the_referral_model_dump_reads_the_same_as_the_raw_json() -> None:
    raw = incoming_referral()
    dumped = Referral.model_validate(raw).model_dump(by_alias=True, mode="json")
    assert partner_center_values(MAPPING, dumped) == partner_center_values(MAPPING, raw)


def test_nulls_empty_strings_and_missing_objects_read_as_unset() -> None:
    sparse = {
        "id": "r",
        "name": "",
        "status": "Active",
        "substatus": "Accepted",
        "customerProfile": None,
        "details": {"dealValue": None, "currency": "", "notes": ""},
        "consent": {},
    }
    values = partner_center_values(MAPPING, sparse)
    assert values["name"] is None
    assert values["deal_value"] is None
    assert values["currency"] is None
    assert values["close_date"] is None
    assert values["notes"] is None
    assert values["customer_name"] is None
    assert values["country"] is None
    assert values["visibility"] is False  # unset consent equals an unticked checkbox
    assert values["help"] is None
    assert values["stage"] == "Active/Accepted"
    assert set(values) == set(EXPECTED)


def test_missing_salesforce_records_read_as_unset() -> None:
    opportunity = {"Id": "006", "Name": "X", "StageName": "Closed Won", "Amount": None}
    values = salesforce_values(MAPPING, {OPPORTUNITY: opportunity, ACCOUNT: None})
    assert values["stage"] == "Closed/Won"
    assert values["deal_value"] is None
    assert values["customer_name"] is None
    assert values["visibility"] is False
    nothing = salesforce_values(MAPPING, {})
    assert set(nothing) == set(EXPECTED)
    assert nothing["name"] is None
    assert nothing["stage"] is None


def test_an_explicit_account_record_wins_over_the_nested_one() -> None:
    records = matching_records()
    records[ACCOUNT] = {"Name": "Contoso Holdings", "BillingCountry": "gb"}
    values = salesforce_values(MAPPING, records)
    assert values["customer_name"] == "Contoso Holdings"
    assert values["country"] == "GB"
    assert values["city"] is None


def test_field_names_are_found_in_any_case() -> None:
    values = salesforce_values(MAPPING, {OPPORTUNITY: {"amount": 10, "stagename": "Closed Lost"}})
    assert values["deal_value"] == "10.00"
    assert values["stage"] == "Closed/Lost"


def test_an_unreadable_value_names_the_field() -> None:
    referral = incoming_referral()
    referral["details"]["dealValue"] = "a lot"
    with pytest.raises(
        ValueMappingError, match=r"'deal_value' \(Partner Center details/dealValue\)"
    ):
        partner_center_values(MAPPING, referral)
    records = matching_records()
    records[OPPORTUNITY]["How_can_Microsoft_help__c"] = "Free lunch"
    with pytest.raises(ValueMappingError, match=r"'help'.*'Free lunch'.*add it to `values`"):
        salesforce_values(MAPPING, records)


@pytest.mark.parametrize(
    ("status", "substatus", "canonical"),
    [
        ("New", "Pending", "New/Pending"),
        ("New", "Received", "New/Pending"),
        ("new", None, "New/Pending"),
        ("Active", "Accepted", "Active/Accepted"),
        ("Closed", "Won", "Closed/Won"),
        ("Closed", "Lost", "Closed/Lost"),
        ("closed", "declined", "Closed/Declined"),
        ("Closed", "Expired", "Closed/Expired"),
        ("Closed", "Error", "Closed/Error"),
        (None, None, None),
    ],
)
def test_partner_center_stage_reads_as_status_slash_substatus(
    status: str | None, substatus: str | None, canonical: str | None
) -> None:
    values = partner_center_values(MAPPING, {"status": status, "substatus": substatus})
    assert values["stage"] == canonical


@pytest.mark.parametrize(
    ("stage", "canonical"),
    [
        ("Prospecting", "New/Pending"),
        ("Qualification", "Active/Accepted"),
        ("Negotiation/Review", "Active/Accepted"),
        ("Closed Won", "Closed/Won"),
        ("Closed Lost", "Closed/Lost"),
        ("", None),
    ],
)
def test_salesforce_stage_reads_through_the_stage_table(stage: str, canonical: str | None) -> None:
    assert salesforce_values(MAPPING, {OPPORTUNITY: {"StageName": stage}})["stage"] == canonical
