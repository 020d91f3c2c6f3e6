"""The 2026 rules: deal types, FY26 values, services co-sell fields (checked before any call)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from cosell.mapping import load_mapping
from cosell.mapping.convert import partner_center_values, salesforce_values
from cosell.mapping.model import Mapping
from cosell.mapping.types import Direction, FieldRule, Owner, Value
from cosell.sync.plan.deal_type import consistent
from cosell.sync.plan.merge import Plan, ReferralState, Refusal, merge
from cosell.sync.plan.rules import deal_problems, deal_type_refusal, refusal_reason, value_problem

SF = Owner.SALESFORCE
DEAL = FieldRule(
    "deal_type",
    Direction.BOTH,
    SF,
    kind="deal_type",
    path="consent/consentToShareReferralWithMicrosoftSellers",
)
HELP = FieldRule(
    "help",
    Direction.TO_PARTNER_CENTER,
    SF,
    kind="picklist",
    path="inviteContext/assistanceRequestCode",
)
VISIBLE = FieldRule(
    "visibility",
    Direction.TO_PARTNER_CENTER,
    SF,
    kind="boolean",
    path="consent/consentToShareReferralWithMicrosoftSellers",
)
ROLE = FieldRule("partner_role", Direction.BOTH, SF, kind="picklist", path="partnerRole")
AREA = FieldRule("solution_area", Direction.BOTH, SF, kind="picklist", path="solutionArea")
PLAY = FieldRule("solution_play", Direction.BOTH, SF, kind="picklist", path="solutionPlay")
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ACTIVE = ReferralState("Active", "Accepted", "Outgoing", created=NOW, now=NOW)


def _deal(
    deal: Value = None, help_code: Value = None, visible: Value = False, **fy26: Value
) -> list[tuple[FieldRule, Value]]:
    return [
        (DEAL, deal),
        (HELP, help_code),
        (VISIBLE, visible),
        (ROLE, fy26.get("role")),
        (AREA, fy26.get("area")),
        (PLAY, fy26.get("play")),
    ]


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        ("Private", "Partner-led", True),
        ("Private", "Co-sell", True),
        ("Partner-led", "Co-sell", True),
        ("Partner-led", "Private", False),
        ("Co-sell", "Partner-led", False),
        ("Co-sell", "Private", False),
        ("Co-sell", "Co-sell", True),
    ],
)
def test_a_deal_type_changes_only_the_way_partner_center_allows(
    current: str, new: str, allowed: bool
) -> None:
    assert (deal_type_refusal(new, current) is None) is allowed
    assert (refusal_reason(DEAL, new, current, ACTIVE) is None) is allowed


def test_the_refusal_of_a_co_sell_deal_turning_back_says_why_and_what_to_do() -> None:
    assert refusal_reason(DEAL, "Partner-led", "Co-sell", ACTIVE) == (
        "a Co-sell referral stays Co-sell in Partner Center: the help asked of Microsoft cannot "
        "be withdrawn, so it cannot become Partner-led; the deal type change to 'Partner-led' "
        "was not sent. Set it back to 'Co-sell' to clear this error."
    )


def test_a_co_sell_deal_needs_help_and_help_needs_a_co_sell_deal() -> None:
    assert deal_problems(_deal("Co-sell")) == [
        "a Co-sell deal asks Microsoft for help: choose the help in How can Microsoft help? "
        "(or set the Deal Type to Partner-led)"
    ]
    assert deal_problems(_deal("Partner-led", "GeneralOrOther", True)) == [
        "How can Microsoft help? makes the deal Co-sell, but its Deal Type is Partner-led: set "
        "the Deal Type to Co-sell, or clear How can Microsoft help?"
    ]
    assert deal_problems(_deal("Private", None, True)) == [
        "a Private deal is not shared with Microsoft sellers: untick Referral Visibility, or "
        "set the Deal Type to Partner-led"
    ]
    assert deal_problems(_deal("Co-sell", "GeneralOrOther", True)) == []
    assert deal_problems(_deal(None, None, True)) == []  # no deal type mapped or set


def test_a_services_co_sell_deal_needs_role_area_and_play() -> None:
    assert deal_problems(_deal("Co-sell", "GeneralOrOther", True, role="Transaction")) == [
        "a services co-sell deal needs the partner role, the solution area and the solution "
        "play: fill in the FY26 solution area, FY26 solution play"
    ]
    full = {"role": "Transaction", "area": "Security", "play": "DataSecurity"}
    assert deal_problems(_deal("Co-sell", "GeneralOrOther", True, **full)) == []
    assert deal_problems(_deal("Partner-led", None, True, role="Transaction")) == []


def test_a_play_must_belong_to_its_area() -> None:
    mixed = {"role": "Transaction", "area": "Security", "play": "UnifyYourDataPlatform"}
    assert deal_problems(_deal("Co-sell", "GeneralOrOther", True, **mixed)) == [
        "the solution play UnifyYourDataPlatform belongs to the solution area "
        "CloudAndAIPlatforms, not Security: choose a play of Security or change the area"
    ]


def test_a_value_outside_the_fy26_taxonomy_is_refused_with_the_choices() -> None:
    assert value_problem(AREA, "ModernWork") == (
        "'ModernWork' is not a FY26 solution area Partner Center takes (the FY26 taxonomy): "
        "choose one of AIBusinessSolutions, CloudAndAIPlatforms, Security in the opportunity's "
        "solution area"
    )
    assert value_problem(AREA, "Security") is None
    assert value_problem(PLAY, None) is None
    reason = refusal_reason(ROLE, "Reseller", None, ACTIVE)
    assert reason is not None
    assert reason.startswith("'Reseller' is not a partner role Partner Center takes")


# -- the deal type field of the default mapping (mapped by default) ---------------------------


def _with_deal_type() -> Mapping:
    return load_mapping()


def _referral(shared: bool, help_code: str | None) -> dict[str, Any]:
    return {
        "status": "Active",
        "substatus": "Accepted",
        "consent": {"consentToShareReferralWithMicrosoftSellers": shared},
        "inviteContext": None if help_code is None else {"assistanceRequestCode": help_code},
    }


def test_the_deal_type_is_read_from_consent_and_help() -> None:
    mapping = _with_deal_type()
    assert mapping.field("deal_type").is_deal_type
    read = [
        partner_center_values(mapping, _referral(s, h))["deal_type"]
        for s, h in ((False, None), (True, None), (True, "Unknown"), (True, "GeneralOrOther"))
    ]
    assert read == ["Private", "Partner-led", "Partner-led", "Co-sell"]
    sf = salesforce_values(mapping, {"Opportunity": {"Deal_Type__c": "Co-sell"}})
    assert sf["deal_type"] == "Co-sell"
    assert mapping.field("deal_type").simple_transform.to_partner_center("Partner-led") is True
    assert mapping.field("deal_type").simple_transform.to_partner_center("Private") is False


def test_a_partner_led_referral_turned_co_sell_in_partner_center_turns_co_sell_in_salesforce() -> (
    None
):
    mapping = _with_deal_type()
    base = partner_center_values(mapping, _referral(True, None))
    sf = dict(base)
    pc = partner_center_values(mapping, _referral(True, "GeneralOrOther"))
    plan = merge(pc, sf, base, mapping.rules(), ACTIVE)
    assert plan.to_salesforce == {"deal_type": "Co-sell"}
    assert plan.refusals == ()


def test_a_salesforce_deal_type_turning_back_is_refused_not_sent() -> None:
    mapping = _with_deal_type()
    base = partner_center_values(mapping, _referral(True, "GeneralOrOther"))
    sf = base | {"deal_type": "Partner-led"}
    plan = merge(base, sf, base, mapping.rules(), ACTIVE)
    assert "deal_type" not in plan.to_partner_center
    [refusal] = plan.refusals
    assert "a Co-sell referral stays Co-sell in Partner Center" in refusal.reason


def test_the_shipped_mapping_maps_the_deal_type() -> None:
    deal = load_mapping().field("deal_type")
    assert deal.is_deal_type
    assert deal.salesforce == "Opportunity.Deal_Type__c"


def test_an_empty_salesforce_deal_type_is_filled_from_partner_center_never_sent() -> None:
    mapping = _with_deal_type()
    pc = partner_center_values(mapping, _referral(True, "GeneralOrOther"))
    # Linked before the field was mapped: the base has no deal type, nor has the opportunity.
    old_base = {k: v for k, v in pc.items() if k != "deal_type"}
    sf = old_base | {"deal_type": None}
    plan = merge(pc, sf, old_base, mapping.rules(), ACTIVE)
    assert plan.to_salesforce == {"deal_type": "Co-sell"}
    assert plan.to_partner_center == {}
    assert (plan.conflicts, plan.refusals) == ((), ())
    assert plan.new_base == pc
    # A seller clearing the picklist later: the same, Partner Center's deal type comes back.
    plan = merge(pc, sf, pc, mapping.rules(), ACTIVE)
    assert plan.to_salesforce == {"deal_type": "Co-sell"}
    assert plan.to_partner_center == {}


def test_the_empty_deal_type_rides_in_the_same_write_as_the_other_fields() -> None:
    mapping = _with_deal_type()
    agreed = partner_center_values(mapping, _referral(True, None) | {"name": "Contoso"})
    pc = partner_center_values(mapping, _referral(True, None) | {"name": "Contoso - Azure"})
    base = {k: v for k, v in agreed.items() if k != "deal_type"}
    plan = merge(pc, base | {"deal_type": None}, base, mapping.rules(), ACTIVE)
    assert plan.to_salesforce == {"name": "Contoso - Azure", "deal_type": "Partner-led"}


def test_the_visibility_is_read_whatever_the_order_of_the_fields() -> None:
    # The deal type maps the consent path too; the shipped mapping lists visibility first.
    fields = _deal("Private", None, True)
    reordered = [fields[2], fields[1], fields[0], *fields[3:]]
    assert deal_problems(reordered) == deal_problems(fields) != []


def _consistent(
    pc: dict[str, Value], sf: dict[str, Value], refusals: tuple[Refusal, ...] = ()
) -> Plan:
    rules = [VISIBLE, HELP, DEAL]
    base = dict(pc)
    plan = merge(pc, sf, base, rules, ACTIVE)
    plan = replace(plan, refusals=(*plan.refusals, *refusals))
    if refusals:  # the collections refused the help: it is not sent
        sent = {k: v for k, v in plan.to_partner_center.items() if k != "help"}
        plan = replace(plan, to_partner_center=sent)
    return consistent(plan, rules, pc, sf, base)


def test_an_update_sends_the_sharing_fields_together_or_not_at_all() -> None:
    partner_led = {"deal_type": "Partner-led", "help": None, "visibility": True}
    # Co-sell without help: nothing of the group is sent, the base keeps the old type.
    plan = _consistent(partner_led, {**partner_led, "deal_type": "Co-sell"})
    assert plan.to_partner_center == {}
    assert plan.new_base["deal_type"] == "Partner-led"
    [refusal] = plan.refusals
    assert refusal.reason.startswith("a Co-sell deal asks Microsoft for help")
    # With the help: both go.
    both = {**partner_led, "deal_type": "Co-sell", "help": "GeneralOrOther"}
    plan = _consistent(partner_led, both)
    assert plan.to_partner_center == {"deal_type": "Co-sell", "help": "GeneralOrOther"}
    # The help refused elsewhere (no solution yet): the deal type waits with it.
    waiting = Refusal("help", "GeneralOrOther", "needs a Microsoft Solution.")
    plan = _consistent(partner_led, both, (waiting,))
    assert plan.to_partner_center == {}
    [refusal] = plan.refusals
    assert refusal.reason.startswith("needs a Microsoft Solution. The deal type change waits")


def test_help_asked_alone_brings_the_co_sell_type_back_in_the_same_plan() -> None:
    partner_led = {"deal_type": "Partner-led", "help": None, "visibility": True}
    plan = _consistent(partner_led, {**partner_led, "help": "GeneralOrOther"})
    assert plan.to_partner_center == {"help": "GeneralOrOther"}
    assert plan.to_salesforce == {"deal_type": "Co-sell"}
    assert plan.new_base["deal_type"] == "Co-sell"
    assert plan.refusals == ()


def test_a_private_deal_made_visible_on_an_update_is_refused() -> None:
    private = {"deal_type": "Private", "help": None, "visibility": False}
    plan = _consistent(private, {**private, "visibility": True})
    assert plan.to_partner_center == {}
    [refusal] = plan.refusals
    assert refusal.reason.startswith("a Private deal is not shared with Microsoft sellers")
