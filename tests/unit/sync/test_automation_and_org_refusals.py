"""The org's automation adopted (`plan.automation`) and refusals sorted by scope (`plan.org_refusals`)."""

from __future__ import annotations

import pytest

from cosell.mapping.types import Direction, FieldRule, Owner
from cosell.salesforce import errors as sf_errors
from cosell.salesforce.schema import ObjectDescription
from cosell.sync.plan.automation import ALIAS_PREFIX, SETTLED_MARKER, adopt, with_settled
from cosell.sync.plan.merge import merge
from cosell.sync.plan.org_refusals import deal_refusal, org_wide, refused_object
from cosell.sync.plan.rules import ReferralState

ACTIVE = ReferralState("Active", "Accepted", "Incoming")
WON = ReferralState("Closed", "Won", "Incoming")
BOTH = FieldRule("notes", Direction.BOTH, Owner.SALESFORCE)
ONE_WAY = FieldRule("notes", Direction.TO_SALESFORCE, Owner.PARTNER_CENTER)


def written(value: str) -> dict[str, str | None]:
    """The base right after cosell wrote `value` to Salesforce, which then agreed."""
    return with_settled({"notes": value}, {"notes": "before"}, {"notes": value}, [BOTH])


def test_the_base_remembers_what_still_differed_after_the_write() -> None:
    assert written("x")[SETTLED_MARKER] == ""
    refused = with_settled({"notes": "x"}, {"notes": "seller's"}, {}, [BOTH])
    assert refused[SETTLED_MARKER] == "notes"


def test_a_rewrite_after_our_write_flows_on_when_partner_center_takes_it() -> None:
    base = written("x")
    adoption = adopt([BOTH], {"notes": "x"}, {"notes": "org"}, base, ACTIVE, modified_by_us=True)
    assert (adoption.adopted, adoption.sent) == (("notes",), ("notes",))
    plan = merge({"notes": "x"}, adoption.salesforce, base, [BOTH], ACTIVE)
    assert plan.to_partner_center == {"notes": "org"}
    assert plan.to_salesforce == {}
    assert "sent to Partner Center: notes" in (adoption.message or "")


@pytest.mark.parametrize(("rule", "state"), [(ONE_WAY, ACTIVE), (BOTH, WON)])
def test_a_rewrite_that_cannot_flow_is_kept_as_agreed_and_stays_so(
    rule: FieldRule, state: ReferralState
) -> None:
    base = written("x")
    adoption = adopt([rule], {"notes": "x"}, {"notes": "org"}, base, state, modified_by_us=True)
    assert adoption.sent == ()
    assert adoption.aliases == {"notes": "org"}
    plan = merge({"notes": "x"}, adoption.salesforce, base, [rule], state)
    assert plan.is_empty
    assert plan.conflicts == ()
    new_base = adoption.new_base(plan.new_base)
    assert new_base[ALIAS_PREFIX + "notes"] == "org"
    # Later, read as the seller last modified it: still agreed, nothing adopted again.
    again = adopt([rule], {"notes": "x"}, {"notes": "org"}, new_base, state, modified_by_us=False)
    assert (again.adopted, again.aliases) == ((), {"notes": "org"})
    assert merge({"notes": "x"}, again.salesforce, new_base, [rule], state).is_empty
    # Partner Center changes: written once, no conflict, the alias gone.
    edit = adopt([rule], {"notes": "y"}, {"notes": "org"}, new_base, state, modified_by_us=False)
    assert edit.aliases == {}
    plan = merge({"notes": "y"}, edit.salesforce, new_base, [rule], state)
    assert (plan.to_salesforce, plan.conflicts) == ({"notes": "y"}, ())


def test_someone_elses_change_is_not_adopted() -> None:
    base = written("x")
    seller = adopt([BOTH], {"notes": "x"}, {"notes": "s"}, base, ACTIVE, modified_by_us=False)
    assert seller.adopted == ()
    refused = with_settled({"notes": "x"}, {"notes": "s"}, {}, [BOTH])  # seen before our write
    ours = adopt([BOTH], {"notes": "x"}, {"notes": "s"}, refused, ACTIVE, modified_by_us=True)
    assert ours.adopted == ()
    unknown = adopt(
        [BOTH], {"notes": "x"}, {"notes": "s"}, {"notes": "x"}, ACTIVE, modified_by_us=True
    )
    assert unknown.adopted == ()  # no write of ours recorded in the base


DESCRIBE = ObjectDescription.model_validate(
    {
        "name": "Opportunity",
        "fields": [
            {"name": "Description", "type": "textarea", "createable": False, "updateable": False},
            {"name": "Amount", "type": "currency", "createable": True, "updateable": True},
        ],
    }
)


def test_field_level_security_is_the_orgs_problem_when_describe_agrees() -> None:
    locked = sf_errors.FieldNotWritableError(
        "Unable to create/update fields: Description.", fields=["Description"]
    )
    found = org_wide(locked, "Opportunity", DESCRIBE)
    assert found is not None
    assert (found.fields, found.hidden, found.side) == (("Description",), False, "salesforce")
    hidden = sf_errors.QueryError(
        "No such column 'Margin__c' on entity 'Opportunity'.", error_code="INVALID_FIELD"
    )
    assert refused_object(hidden, "Account") == "Opportunity"
    found = org_wide(hidden, "Opportunity", DESCRIBE)
    assert found is not None
    assert found.hidden
    assert "Opportunity.Margin__c" in str(found)
    # Describe says the user may write Amount: this record's problem, not the org's.
    amount = sf_errors.FieldNotWritableError("locked", fields=["Amount"])
    assert org_wide(amount, "Opportunity", DESCRIBE) is None
    assert org_wide(locked, "Opportunity", None) is None


def test_a_duplicate_refusal_without_a_match_says_what_to_do() -> None:
    error = sf_errors.DuplicatesDetectedError(
        "Use one of these records?", duplicate_rule="Standard_Account_Duplicate_Rule"
    )
    message = deal_refusal(error, "Account")
    assert "Standard_Account_Duplicate_Rule" in message
    assert '"Use one of these records?"' in message
    assert "named no existing record" in message
    assert "Merge the duplicates" in message
