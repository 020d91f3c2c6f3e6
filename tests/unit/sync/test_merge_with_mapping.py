"""The merge with the default mapping: read both sides, merge, write, read again, merge again.

These tests hold the merge to the mapping's real canonical values (which are not symmetric:
Salesforce reads every closed-not-won state as Closed/Lost) and to the writes the mapping
makes of a plan (losing a New referral declines it), so that a round trip ends quiet.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cosell.mapping import (
    load_mapping,
    partner_center_operations,
    partner_center_values,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping.model import Mapping
from cosell.mapping.types import Owner
from cosell.partnercenter.models import Referral
from cosell.sync.plan.merge import Conflict, Plan, merge
from cosell.sync.plan.rules import ReferralState

Records = dict[str, dict[str, Any] | None]


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping()


def referral(status: str, substatus: str, direction: str = "Incoming") -> dict[str, Any]:
    return {
        "id": "r-1",
        "name": "Contoso cloud migration",
        "status": status,
        "substatus": substatus,
        "direction": direction,
        "details": {
            "dealValue": 25000,
            "currency": "USD",
            "closingDateTime": "2026-12-31T00:00:00Z",
            "notes": "Needs a landing zone",
        },
        "customerProfile": {"name": "Contoso", "address": {"city": "Oslo", "country": "NO"}},
        "eTag": '"1"',
    }


def records(stage: str) -> Records:
    return {
        "Opportunity": {
            "Id": "006000000000001AAA",
            "Name": "Contoso cloud migration",
            "Amount": 25000,
            "CurrencyIsoCode": "USD",
            "CloseDate": "2026-12-31",
            "Description": "Needs a landing zone",
            "StageName": stage,
            "Referral_Visibility__c": False,
            "Deal_Type__c": "Private",  # not shared, no help: what the referral is
        },
        "Account": {"Name": "Contoso", "BillingCity": "Oslo", "BillingCountry": "NO"},
    }


def patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply JSON Patch `replace`/`add` operations, as Partner Center does."""
    result = copy.deepcopy(document)
    for operation in operations:
        assert operation["op"] in ("replace", "add")
        *parents, last = operation["path"].strip("/").split("/")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = operation["value"]
    return result


def reconcile(
    mapping: Mapping, pc: dict[str, Any], sf: Records, base: dict[str, Any] | None
) -> tuple[Plan, dict[str, Any], Records]:
    """One pure reconcile: merge, then write the plan to both sides the way the mapping does."""
    state = ReferralState.of(Referral.model_validate(pc))
    plan = merge(
        partner_center_values(mapping, pc),
        salesforce_values(mapping, sf),
        base,
        mapping.rules(),
        state,
    )
    new_pc = patch(pc, partner_center_operations(mapping, plan.to_partner_center, pc))
    new_sf = copy.deepcopy(sf)
    for role, fields in salesforce_updates(mapping, plan.to_salesforce, sf).items():
        record = new_sf[role]
        assert record is not None
        record.update(fields)
    return plan, new_pc, new_sf


def agreed_base(mapping: Mapping, pc: dict[str, Any]) -> dict[str, Any]:
    return dict(partner_center_values(mapping, pc))


def test_edits_on_both_sides_flow_and_then_nothing_is_planned(mapping: Mapping) -> None:
    pc, sf = referral("Active", "Accepted"), records("Qualification")
    base = agreed_base(mapping, pc)
    sf_opportunity = sf["Opportunity"]
    assert sf_opportunity is not None
    sf_opportunity |= {"Amount": 30000, "Description": "Landing zone and migration"}
    pc["trackingInfo"] = {"microsoftMsxId": "7-ABCDEF"}
    pc["name"] = "Contoso migration (Microsoft)"
    sf_opportunity["Name"] = "Contoso migration"

    plan, pc, sf = reconcile(mapping, pc, sf, base)

    assert plan.to_partner_center == {
        "deal_value": "30000.00",
        "notes": "Landing zone and migration",
        "name": "Contoso migration",
    }
    assert plan.to_salesforce == {"msx_id": "7-ABCDEF"}
    assert plan.conflicts == (
        Conflict(
            "name",
            "Contoso migration (Microsoft)",
            "Contoso migration",
            "Contoso cloud migration",
            Owner.SALESFORCE,
        ),
    )
    again, _, _ = reconcile(mapping, pc, sf, plan.new_base)
    assert again.is_empty
    assert again.new_base == plan.new_base


def test_lost_while_on_hold_declines_the_referral_once(mapping: Mapping) -> None:
    pc, sf = referral("New", "Pending"), records("Prospecting")
    base = agreed_base(mapping, pc)
    opportunity = sf["Opportunity"]
    assert opportunity is not None
    opportunity["StageName"] = "Closed Lost"

    plan, pc, sf = reconcile(mapping, pc, sf, base)

    assert plan.refusals == ()
    assert (pc["status"], pc["substatus"], pc["statusReason"]) == (
        "Closed",
        "Declined",
        "Declined in Salesforce",
    )
    again, _, _ = reconcile(mapping, pc, sf, plan.new_base)
    assert again.is_empty
    assert again.refusals == ()


@pytest.mark.parametrize("substatus", ["Expired", "Declined", "Lost"])
def test_a_referral_closed_in_partner_center_closes_the_opportunity_once(
    mapping: Mapping, substatus: str
) -> None:
    pc, sf = referral("Closed", substatus), records("Prospecting")
    base = agreed_base(mapping, referral("New", "Pending"))

    plan, pc, sf = reconcile(mapping, pc, sf, base)

    opportunity = sf["Opportunity"]
    assert opportunity is not None
    assert opportunity["StageName"] == "Closed Lost"
    again, _, _ = reconcile(mapping, pc, sf, plan.new_base)
    assert again.is_empty
    assert again.refusals == ()


def test_an_edit_after_won_is_refused_until_it_is_set_back(mapping: Mapping) -> None:
    pc, sf = referral("Closed", "Won", "Outgoing"), records("Closed Won")
    base = agreed_base(mapping, pc)
    opportunity = sf["Opportunity"]
    assert opportunity is not None
    opportunity["Amount"] = 99000

    plan, pc, sf = reconcile(mapping, pc, sf, base)

    assert plan.is_empty
    assert plan.new_base == base
    (refusal,) = plan.refusals
    assert refusal.field == "deal_value"
    assert refusal.reason.startswith("The referral is Closed/Won in Partner Center")
    assert "the deal value change to '99000.00' was not sent" in refusal.reason
    assert "Set the opportunity's deal value back to '25000.00'" in refusal.reason

    again, _, _ = reconcile(mapping, pc, sf, plan.new_base)
    assert [r.field for r in again.refusals] == ["deal_value"]

    opportunity = sf["Opportunity"]
    assert opportunity is not None
    opportunity["Amount"] = 25000  # the seller sets it back
    fixed, _, _ = reconcile(mapping, pc, sf, plan.new_base)
    assert fixed.is_empty
    assert fixed.refusals == ()


def test_won_before_accepting_is_refused_with_what_to_do(mapping: Mapping) -> None:
    pc, sf = referral("New", "Pending"), records("Prospecting")
    base = agreed_base(mapping, pc)
    opportunity = sf["Opportunity"]
    assert opportunity is not None
    opportunity["StageName"] = "Closed Won"

    plan, _, _ = reconcile(mapping, pc, sf, base)

    assert plan.is_empty
    (refusal,) = plan.refusals
    assert "accept the referral first (Active/Accepted)" in refusal.reason
