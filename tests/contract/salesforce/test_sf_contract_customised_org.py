"""Contract tests: the Salesforce client against a customised org (the sandbox's example profile).

Each hazard of `sandbox/examples/customised-org.yaml` surfaces through the client's error tree
with what a caller needs to act on it: the validation rule's field, the duplicate rule's matched
ids, the required and read-only fields, and field-level security in describe.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from sf_harness import make_sandbox

from cosell.clock import ManualClock
from cosell.salesforce import errors as e
from cosell.salesforce.client import SalesforceClient

EXAMPLE = Path(__file__).resolve().parents[3] / "sandbox" / "examples" / "customised-org.yaml"


@pytest.fixture
def sandbox(clock: ManualClock, key_dir: Path) -> Any:
    from cosell_sandbox.salesforce.orgprofile import load_profile

    return make_sandbox(clock, key_dir, org_profile=load_profile(EXAMPLE))


def _deal(**fields: Any) -> dict[str, Any]:
    return {
        "Name": "Deal",
        "StageName": "Prospecting",
        "CloseDate": "2026-12-31",
        "Region__c": "EMEA",
        **fields,
    }


async def test_validation_rule_carries_its_message_and_field(client: SalesforceClient) -> None:
    deal = await client.create("Opportunity", _deal())
    with pytest.raises(e.CustomValidationError) as caught:
        await client.update("Opportunity", deal, {"StageName": "Closed Won"})
    err = caught.value
    assert isinstance(err, e.ValidationError)
    assert err.kind == "terminal"
    assert err.field == "Amount"
    assert err.message == "Enter an amount before committing the deal."
    assert "validation rule" in str(err)


async def test_required_field_names_what_is_missing(client: SalesforceClient) -> None:
    with pytest.raises(e.RequiredFieldMissingError) as caught:
        await client.create("Opportunity", {k: v for k, v in _deal().items() if k != "Region__c"})
    assert caught.value.missing == ("Region__c",)
    assert "defaults" in caught.value.hint


async def test_blocking_duplicate_rule_gives_the_matched_ids(client: SalesforceClient) -> None:
    first = await client.create("Account", {"Name": "Contoso", "BillingPostalCode": "98052"})
    with pytest.raises(e.DuplicatesDetectedError) as caught:
        await client.create("Account", {"Name": "Contoso", "BillingPostalCode": "98052"})
    err = caught.value
    assert err.matched_ids == (first,)
    assert err.duplicate_rule == "Standard_Account_Duplicate_Rule"
    assert err.allow_save is False
    restored = pickle.loads(pickle.dumps(err))
    assert restored.matched_ids == (first,)


async def test_duplicates_in_collections_per_record(client: SalesforceClient) -> None:
    first = await client.create("Lead", {"LastName": "Ng", "Company": "C", "Email": "a@b.example"})
    results = await client.create_many(
        "Lead",
        [
            {"LastName": "X", "Company": "C", "Email": "x@b.example"},
            {"LastName": "Y", "Company": "C", "Email": "A@B.example"},
        ],
    )
    assert results[0].success
    assert not results[1].success
    (err,) = results[1].errors
    assert isinstance(err, e.DuplicatesDetectedError)
    assert err.matched_ids == (first,)


async def test_alerting_duplicate_rule_refuses_the_api_with_the_match(
    client: SalesforceClient,
) -> None:
    # The client sends no Duplicate Rule Header, so an alerting rule refuses too (allowSave
    # defaults to false), with allow_save telling it apart from a blocking rule.
    first = await client.create("Contact", {"LastName": "Ng", "Email": "ng@c.example"})
    with pytest.raises(e.DuplicatesDetectedError) as caught:
        await client.create("Contact", {"LastName": "Ng", "Email": "ng@c.example"})
    assert caught.value.allow_save is True
    assert caught.value.matched_ids == (first,)
    (result,) = await client.create_many("Contact", [{"LastName": "Ng", "Email": "ng@c.example"}])
    assert not result.success
    (alert,) = result.errors
    assert isinstance(alert, e.DuplicatesDetectedError)
    assert alert.allow_save is True
    assert alert.matched_ids == (first,)


async def test_field_level_security_in_describe_and_on_writes(client: SalesforceClient) -> None:
    described = await client.describe("Opportunity")
    assert described.field("Referral_Visibility__c") is None  # invisible to this user
    description = described.field("Description")
    assert description is not None
    assert (description.createable, description.updateable) == (False, False)
    region = described.field("Region__c")
    assert region is not None
    assert region.required_on_create
    deal = await client.create("Opportunity", _deal())
    with pytest.raises(e.FieldNotWritableError) as caught:
        await client.update("Opportunity", deal, {"Description": "notes"})
    assert caught.value.fields == ("Description",)
    with pytest.raises(e.ValidationError) as hidden:
        await client.update("Opportunity", deal, {"Referral_Visibility__c": "Visible"})
    assert hidden.value.error_code == "INVALID_FIELD"
    with pytest.raises(e.ValidationError) as query:  # INVALID_FIELD is not a QueryError code
        await client.count("SELECT COUNT() FROM Opportunity WHERE Referral_Visibility__c = 'x'")
    assert query.value.error_code == "INVALID_FIELD"


async def test_automation_rewrite_is_visible_on_the_next_read(client: SalesforceClient) -> None:
    deal = await client.create("Opportunity", _deal(NextStep="Send the proposal"))
    await client.update("Opportunity", deal, {"StageName": "Needs Analysis", "NextStep": "Demo"})
    row = await client.get("Opportunity", deal, ["NextStep", "StageName"])
    assert row["NextStep"] == "Follow up: Needs Analysis"


async def test_record_types_and_their_picklists(client: SalesforceClient) -> None:
    described = await client.describe("Opportunity")
    names = [i.developer_name for i in described.record_type_infos]
    assert names == ["Partner_Deal", "Enterprise_Deal", "Master"]
    default = described.default_record_type
    assert default is not None
    assert default.developer_name == "Partner_Deal"
    enterprise = described.record_type("enterprise_deal")
    assert enterprise is not None
    assert described.record_type(enterprise.record_type_id) == enterprise
    partner_values = await client.picklist_values("Opportunity", default.record_type_id)
    assert "Negotiation/Review" not in partner_values["StageName"]
    assert "Closed Won" in partner_values["StageName"]
    enterprise_values = await client.picklist_values("Opportunity", enterprise.record_type_id)
    assert "Negotiation/Review" in enterprise_values["StageName"]
    deal = await client.create("Opportunity", _deal())
    with pytest.raises(e.ValidationError) as caught:
        await client.update("Opportunity", deal, {"StageName": "Negotiation/Review"})
    assert caught.value.error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert caught.value.fields == ("StageName",)
    with pytest.raises(e.NotFoundError):
        await client.picklist_values("Opportunity", "012000000000001AAA")
