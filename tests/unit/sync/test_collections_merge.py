"""The collections' set merge (`merge_sets`), their plan against the rules (`plan`), and its properties.

The properties are checked with Hypothesis over small key alphabets, so that keys on both
sides, on one side, in the base or not, are all common: applying the plan makes both sides
equal, merging again plans nothing, and independent edits on both sides are all kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cosell.mapping import Collections
from cosell.mapping.types import Value
from cosell.partnercenter.models import Referral
from cosell.sync.plan import sets as collections
from cosell.sync.plan.merge import Plan
from cosell.sync.plan.sets import SetPlan, base_key, merge_sets

SETTINGS = settings(max_examples=300, deadline=None)
KEYS = st.frozensets(st.sampled_from(["a", "b", "c", "d", "e"]))


def applied(side: frozenset[str], add: frozenset[str], remove: frozenset[str]) -> frozenset[str]:
    return (side - remove) | add


def after(
    pc: frozenset[str], sf: frozenset[str], plan: SetPlan
) -> tuple[frozenset[str], frozenset[str]]:
    return (
        applied(pc, plan.add_to_partner_center, plan.remove_from_partner_center),
        applied(sf, plan.add_to_salesforce, plan.remove_from_salesforce),
    )


# -- examples ---------------------------------------------------------------------------------


def test_a_key_on_both_sides_is_kept() -> None:
    plan = merge_sets({"a"}, {"a"}, {"a"})
    assert plan == SetPlan(agreed=frozenset({"a"}))


def test_a_key_added_on_one_side_is_added_to_the_other() -> None:
    plan = merge_sets({"a", "b"}, {"a", "c"}, {"a"})
    assert plan.add_to_salesforce == {"b"}
    assert plan.add_to_partner_center == {"c"}
    assert plan.agreed == {"a", "b", "c"}


def test_a_key_removed_on_one_side_since_the_base_is_removed_from_the_other() -> None:
    plan = merge_sets({"b"}, {"a", "b"}, {"a", "b"})
    assert plan.remove_from_salesforce == {"a"}
    assert not plan.changes_partner_center
    assert plan.agreed == {"b"}


def test_without_a_base_nothing_is_removed_the_union_is_kept() -> None:
    plan = merge_sets({"a"}, {"b"}, None)
    assert (plan.add_to_salesforce, plan.add_to_partner_center) == ({"a"}, {"b"})
    assert not plan.remove_from_salesforce
    assert not plan.remove_from_partner_center


def test_removed_on_both_sides_is_gone_without_a_write() -> None:
    plan = merge_sets(set(), set(), {"a"})
    assert plan == SetPlan()


def test_people_are_keyed_by_email_in_lowercase_else_by_name() -> None:
    assert collections.person_key({"email": " Ana@NW.example ", "lastName": "Silva"}) == (
        "ana@nw.example"
    )
    assert collections.person_key({"firstName": "Ana", "lastName": "Silva"}) == "name:ana silva"
    assert collections.person_key({}) is None


# -- properties -------------------------------------------------------------------------------


@SETTINGS
@given(pc=KEYS, sf=KEYS, base=st.none() | KEYS)
def test_applying_the_plan_makes_both_sides_equal_to_the_new_base(
    pc: frozenset[str], sf: frozenset[str], base: frozenset[str] | None
) -> None:
    plan = merge_sets(pc, sf, base)
    new_pc, new_sf = after(pc, sf, plan)
    assert new_pc == new_sf == plan.agreed
    assert not (plan.add_to_salesforce & sf)
    assert not (plan.add_to_partner_center & pc)
    assert plan.remove_from_salesforce <= sf
    assert plan.remove_from_partner_center <= pc


@SETTINGS
@given(pc=KEYS, sf=KEYS, base=st.none() | KEYS)
def test_merging_again_after_applying_plans_nothing(
    pc: frozenset[str], sf: frozenset[str], base: frozenset[str] | None
) -> None:
    plan = merge_sets(pc, sf, base)
    new_pc, new_sf = after(pc, sf, plan)
    again = merge_sets(new_pc, new_sf, plan.agreed)
    assert again == SetPlan(agreed=plan.agreed)


@SETTINGS
@given(
    base=KEYS,
    pc_added=KEYS,
    sf_added=KEYS,
    pc_removed=KEYS,
    sf_removed=KEYS,
)
def test_independent_edits_on_both_sides_are_all_kept(
    base: frozenset[str],
    pc_added: frozenset[str],
    sf_added: frozenset[str],
    pc_removed: frozenset[str],
    sf_removed: frozenset[str],
) -> None:
    # Each key is edited by one side at most: additions of keys not in the base, removals of
    # keys in it (a key added on both sides is one addition both made).
    pc_removed = (pc_removed & base) - sf_removed
    sf_removed = (sf_removed & base) - pc_removed
    pc_added -= base
    sf_added -= base
    pc = (base - pc_removed) | pc_added
    sf = (base - sf_removed) | sf_added
    plan = merge_sets(pc, sf, base)
    assert plan.agreed == (base - pc_removed - sf_removed) | pc_added | sf_added


# -- the plan of one reconcile: Partner Center's rules ------------------------------------------

SPEC = Collections()  # the default mapping's objects and fields
SOLUTION = {"id": "SOL-1", "name": "Copilot", "type": "Name"}
ANA = {"firstName": "Ana", "lastName": "Silva", "email": "ana@nw.example"}


def referral(**body: Any) -> tuple[Referral, dict[str, Any]]:
    document = {
        "id": "r1",
        "status": "Active",
        "substatus": "Accepted",
        "customerProfile": {"name": "Northwind", "team": []},
        "details": {"requirements": {"solutions": []}},
        "team": [],
        **body,
    }
    parsed = Referral.model_validate(document)
    return parsed, parsed.model_dump(by_alias=True, mode="json")


def opportunity(*, solutions: int = 0, contacts: int = 0) -> dict[str, Any]:
    solution_rows = [
        {"Id": f"s{n}", "Solution_Id__c": f"SOL-{n}", "Name": f"Solution {n}"}
        for n in range(solutions)
    ]
    role_rows = [
        {
            "Id": f"r{n}",
            "IsPrimary": n == 0,
            "Contact": {"FirstName": "C", "LastName": str(n), "Email": f"c{n}@x.example"},
        }
        for n in range(contacts)
    ]
    return {
        "Id": "006A",
        "AccountId": "001A",
        "Microsoft_Solutions__r": {"records": solution_rows},
        "OpportunityContactRoles": {"records": role_rows},
    }


def fields(to_partner_center: Mapping[str, Value] | None = None) -> Plan:
    return Plan(to_salesforce={}, to_partner_center=dict(to_partner_center or {}), new_base={})


def test_asking_for_help_without_a_solution_is_refused_and_not_sent() -> None:
    ref, body = referral()
    result = collections.plan(
        SPEC,
        ref,
        body,
        opportunity(contacts=1),
        None,
        fields({"help": "ProofOfConceptOrDemo", "notes": "n"}),
    )
    assert "help" not in result.plan.to_partner_center
    assert result.plan.to_partner_center["notes"] == "n"  # the rest still flows
    [refusal] = result.plan.refusals
    assert refusal.field == "help"
    assert "Microsoft Solution" in refusal.reason
    assert "customer contact" not in refusal.reason  # the contact is there: only say what lacks


def test_asking_for_help_with_a_solution_added_in_the_same_edit_is_sent() -> None:
    ref, body = referral(customerProfile={"name": "Northwind", "team": [ANA]})
    result = collections.plan(
        SPEC,
        ref,
        body,
        opportunity(solutions=1, contacts=0),
        None,
        fields({"help": "GeneralOrOther"}),
    )
    assert result.plan.to_partner_center == {"help": "GeneralOrOther"}
    assert not result.plan.refusals
    assert [op["path"] for op in result.operations] == ["/details/requirements/solutions"]


def test_removing_the_last_solution_of_a_co_sell_referral_is_refused() -> None:
    ref, body = referral(
        inviteContext={"assistanceRequestCode": "GeneralOrOther"},
        details={"requirements": {"solutions": [SOLUTION]}},
    )
    base = {base_key("solutions"): json.dumps(["SOL-1"])}
    result = collections.plan(SPEC, ref, body, opportunity(), base, fields())
    assert result.operations == []
    assert result.plan.refusals[0].field == "solutions"
    assert "SOL-1" in result.plan.refusals[0].reason
    assert result.plan.new_base[base_key("solutions")] == json.dumps(["SOL-1"])  # kept


def test_contacts_of_a_referral_shared_with_microsoft_are_read_only() -> None:
    ref, body = referral(
        consent={"consentToShareReferralWithMicrosoftSellers": True},
        customerProfile={"name": "Northwind", "team": [ANA]},
    )
    base = {base_key("contacts"): json.dumps(["ana@nw.example"])}
    result = collections.plan(SPEC, ref, body, opportunity(contacts=1), base, fields())
    assert result.operations == []
    [refusal] = result.plan.refusals
    assert refusal.field == "contacts"
    assert "Ana Silva <ana@nw.example>" in refusal.reason


def test_a_missing_requirements_object_is_added_whole() -> None:
    ref, body = referral(details={"notes": "x"})
    result = collections.plan(SPEC, ref, body, opportunity(solutions=1), None, fields())
    assert result.operations == [
        {
            "op": "add",
            "path": "/details/requirements",
            "value": {"solutions": [{"id": "SOL-0", "name": "Solution 0"}]},
        }
    ]


def test_share_refusal_names_everything_missing() -> None:
    reason = collections.share_refusal(has_solution=False, has_contact=False)
    assert reason is not None
    assert "Microsoft Solution" in reason
    assert "customer contact" in reason
    assert collections.share_refusal(has_solution=True, has_contact=True) is None


def test_a_closed_referral_takes_no_collection_change() -> None:
    ref, body = referral(status="Closed", substatus="Won")
    result = collections.plan(SPEC, ref, body, opportunity(solutions=1), None, fields())
    assert result.operations == []
    [refusal] = result.plan.refusals
    assert refusal.field == "solutions"
    assert refusal.reason.startswith("The referral is Closed/Won in Partner Center")
    assert base_key("solutions") not in result.plan.new_base  # nothing agreed yet
