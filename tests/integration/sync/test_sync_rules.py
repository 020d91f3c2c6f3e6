"""Partner Center's rules on the sandboxes: refusals before any call, holds, deadlines.

Each refusal says what to fix and sends nothing (no 400 from Partner Center); a hold is not an
error (sync status Pending, with when it is sent) and flows by itself; the deadlines come back
to the key through the store's wake-ups on the shared ManualClock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sync_world import World

from cosell.store.types import Key
from cosell.sync.plan.deadlines import EXPIRY_WARNING
from cosell.sync.plan.retry import shown_message
from cosell.sync.plan.rules import WIN_WAIT
from cosell.sync.run.batch import reconcile_batch
from cosell.sync.run.reconcile import reconcile_key


def _audit(opportunity: dict[str, Any]) -> list[str]:
    return str(opportunity.get("Audit__c") or "").splitlines()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _incoming(world: World) -> tuple[str, str]:
    """An incoming co-sell from Microsoft and its on-hold opportunity: (opportunity, referral)."""
    sent = await world.microsoft.send_co_sell()
    assert (await reconcile_key(world.ctx, world.referral_key(sent["id"]))).result == "created"
    [opportunity] = await world.opportunities_for(sent["id"])
    world.tick()
    return str(opportunity["Id"]), str(sent["id"])


# -- visibility and help: set once, never reverted ----------------------------------------------


async def test_unticking_the_visibility_is_refused_and_nothing_is_sent(world: World) -> None:
    opp_id, rid = await world.shared_pair(Referral_Visibility__c=True)
    assert (await world.microsoft.referral(rid))["consent"][
        "consentToShareReferralWithMicrosoftSellers"
    ] is True
    await world.seller.edit("Opportunity", opp_id, {"Referral_Visibility__c": False})
    world.tick()
    before = await world.calls()

    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))

    spent = await world.calls() - before
    message = (
        "Partner Center does not allow changing the referral's visibility to Microsoft sellers "
        "once it is set (it is True in Partner Center); the visibility change to False was not "
        "sent. Set it back to True to clear this error."
    )
    assert (outcome.result, outcome.message) == ("refused", message)
    assert spent.partner_center_writes == 0  # refused before any call, not a 400
    referral = await world.microsoft.referral(rid)
    assert referral["consent"]["consentToShareReferralWithMicrosoftSellers"] is True
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Referral_Visibility__c"] is False  # no silent revert of the seller's tick
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    assert opportunity["Partner_Center_Sync_Error__c"] == message
    # Ticked again: the error clears.
    await world.seller.edit("Opportunity", opp_id, {"Referral_Visibility__c": True})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None


async def _co_sell_with_help(world: World) -> tuple[str, str]:
    """An opportunity shared with help requested (a solution and a contact): (opp, referral)."""
    account_id = await world.seller.create_account("Northwind")
    opp_id = await world.seller.create_opportunity(
        account_id, How_can_Microsoft_help__c="Quotes or licensing"
    )
    await world.seller.create(
        "Microsoft_Solution__c",
        {"Opportunity__c": opp_id, "Name": "Copilot", "Solution_Id__c": "SOL-1"},
    )
    contact_id = await world.seller.create(
        "Contact", {"AccountId": account_id, "LastName": "Silva", "Email": "a@nw.example"}
    )
    await world.seller.create(
        "OpportunityContactRole",
        {"OpportunityId": opp_id, "ContactId": contact_id, "IsPrimary": True},
    )
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "created"
    rid = str((await world.seller.opportunity(opp_id))["Referral_Identifier__c"])
    world.tick()
    return opp_id, rid


async def test_how_microsoft_can_help_once_set_is_neither_changed_nor_cleared(
    world: World,
) -> None:
    opp_id, rid = await _co_sell_with_help(world)
    for value, shown in [("General or other", "'GeneralOrOther'"), (None, "empty")]:
        await world.seller.edit("Opportunity", opp_id, {"How_can_Microsoft_help__c": value})
        world.tick()
        before = await world.calls()
        outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
        assert (await world.calls() - before).partner_center_writes == 0
        assert outcome.result == "refused"
        assert outcome.message == (
            "Partner Center does not allow changing How can Microsoft help once it is set (it "
            f"is 'QuotesOrLicensing' in Partner Center); the help change to {shown} was not "
            "sent. Set it back to 'QuotesOrLicensing' to clear this error."
        )
        referral = await world.microsoft.referral(rid)
        assert referral["inviteContext"]["assistanceRequestCode"] == "QuotesOrLicensing"


# -- values Partner Center refuses, before any call ---------------------------------------------


async def test_a_zero_deal_value_is_refused_before_any_call(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"Amount": 0, "Description": "new notes"})
    world.tick()
    before = await world.calls()

    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))

    # The notes still go: a refusal fails only its own field.
    assert (await world.calls() - before).partner_center_writes == 1
    assert outcome.result == "refused"
    assert outcome.message == (
        "Partner Center needs a deal value that is not zero (it is '0.00'): enter the "
        "opportunity's amount; the deal value change to '0.00' was not sent."
    )
    referral = await world.microsoft.referral(rid)
    assert (referral["details"]["dealValue"], referral["details"]["notes"]) == (25000, "new notes")
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Error__c"] == outcome.message
    assert opportunity["Amount"] == 0  # the seller's value is left for the seller to fix


async def test_an_empty_currency_is_refused_before_any_call(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"CurrencyIsoCode": None})
    world.tick()
    before = await world.calls()

    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))

    assert (await world.calls() - before).partner_center_writes == 0
    assert outcome.result == "refused"
    assert outcome.message == (
        "Partner Center needs the deal's currency: set the opportunity's currency; the currency "
        "change to empty was not sent."
    )
    assert (await world.microsoft.referral(rid))["details"]["currency"] == "USD"


async def test_a_new_referral_is_checked_before_any_call_each_failing_only_its_own_link(
    world: World,
) -> None:
    narnia = await world.seller.create_account("Narnia Ltd", BillingCountry="Narnia")
    bad_country = await world.seller.create_opportunity(narnia, Name="Narnia deal")
    us = await world.seller.create_account("Good Co")
    zero = await world.seller.create_opportunity(us, Name="Zero deal", Amount=0)
    good = await world.seller.create_opportunity(us, Name="Good deal")
    world.tick()
    keys = [world.opportunity_key(i) for i in (bad_country, zero, good)]
    before = await world.calls()

    outcomes = {o.key: o for o in await reconcile_batch(world.ctx, keys)}

    spent = await world.calls() - before
    assert spent.partner_center_writes == 1  # one POST: the good deal's
    assert outcomes[keys[2]].result == "created"
    expected = {
        bad_country: "Partner Center needs the customer's country as a 2-letter ISO 3166 code "
        "such as 'US' or 'DE' (it is 'Narnia'): correct the account's billing country",
        zero: "Partner Center needs a deal value that is not zero (it is '0.00'): enter the "
        "opportunity's amount",
    }
    for opp_id, problem in expected.items():
        message = (
            f"cannot create the Partner Center referral: {problem}; then save the opportunity again"
        )
        assert outcomes[world.opportunity_key(opp_id)].result == "error"
        assert outcomes[world.opportunity_key(opp_id)].message == message
        opportunity = await world.seller.opportunity(opp_id)
        assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
        link = world.store.link_for_record("Opportunity", opp_id)
        assert link is not None
        assert link.retry_at is not None  # the seller may fix it: retried by itself too
        shown = shown_message(message, link.retry_at, limit=255)
        assert opportunity["Partner_Center_Sync_Error__c"] == shown
        assert opportunity["Referral_Identifier__c"] is None
    # Fixed by the seller: created on the next reconcile.
    await world.seller.edit("Account", narnia, {"BillingCountry": "Norway"})
    world.tick()
    assert (await reconcile_key(world.ctx, keys[0])).result == "created"
    rid = (await world.seller.opportunity(bad_country))["Referral_Identifier__c"]
    assert (await world.microsoft.referral(rid))["customerProfile"]["address"]["country"] == "NO"


# -- edits on hold: held back, sent after acceptance --------------------------------------------


async def test_edits_while_on_hold_are_held_and_sent_when_the_referral_is_accepted(
    world: World,
) -> None:
    opp_id, rid = await _incoming(world)
    original = await world.microsoft.referral(rid)
    await world.seller.edit("Opportunity", opp_id, {"Amount": 64000, "Description": "seller"})
    world.tick()
    before = await world.calls()

    held = await reconcile_key(world.ctx, world.opportunity_key(opp_id))

    assert (await world.calls() - before).partner_center_writes == 0
    assert held.result != "refused"
    referral = await world.microsoft.referral(rid)
    assert referral["details"] == original["details"]  # nothing sent while on hold
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Pending"
    assert opportunity["Partner_Center_Sync_Error__c"] == (
        "held back until the referral is accepted: deal value, notes (Partner Center takes "
        "edits only once it is accepted; move the opportunity to the active stage to accept "
        "it, and they are sent)"
    )
    assert any("warning: held back deal_value = '64000.00'" in a for a in _audit(opportunity))
    assert opportunity["Amount"] == 64000  # the seller's edits are kept, not lost
    # Accepted: the held edits go in the same reconcile.
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Qualification"})
    world.tick()
    accepted = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert accepted.result == "synced", accepted
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Active", "Accepted")
    assert (referral["details"]["dealValue"], referral["details"]["notes"]) == (64000, "seller")
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None
    world.tick()
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "unchanged"
    assert (await world.calls() - before).writes == 0


# -- the 72-hour wait before Won ----------------------------------------------------------------


async def test_a_win_within_72_hours_is_held_and_sent_at_the_72nd_hour(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    created = _when((await world.microsoft.referral(rid))["createdDateTime"])
    allowed = created + WIN_WAIT
    key = Key(world.referral_key(rid))
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Won"})
    world.tick()
    before = await world.calls()

    held = await reconcile_key(world.ctx, world.opportunity_key(opp_id))

    assert (await world.calls() - before).partner_center_writes == 0  # no 400 earned
    assert held.result != "refused"
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Active", "Accepted")
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["StageName"] == "Closed Won"  # kept, not reverted
    assert opportunity["Partner_Center_Sync_Status__c"] == "Pending"
    reason = (
        "the win is held back until 72 hours after the referral was created, so the deal stays "
        f"eligible for deal registration; it is sent on {allowed:%Y-%m-%d %H:%M} UTC by itself "
        "([sync] hold_wins_for_registration = false sends wins at once)"
    )
    assert opportunity["Partner_Center_Sync_Error__c"] == reason
    warnings = [a for a in _audit(opportunity) if "warning: held back stage" in a]
    assert len(warnings) == 1
    assert world.store.wakeup(key) == allowed
    # Meanwhile nothing changes, and nothing is written or logged again.
    world.tick(3600)
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "unchanged"
    assert (await world.calls() - before).writes == 0
    assert world.store.due_wakeups() == []
    # At the 72nd hour the key is due, and its reconcile sends the win with nobody touching it.
    world.clock.advance((allowed - world.clock.now()).total_seconds())
    assert [k for k, _ in world.store.due_wakeups()] == [key]
    assert (await reconcile_key(world.ctx, key)).result == "synced"
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Closed", "Won")
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None
    assert opportunity["Partner_Center_Status__c"] == "Closed/Won"


async def test_with_the_hold_off_a_win_within_72_hours_goes_at_once(world: World) -> None:
    world.ctx.hold_wins = False
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Won"})
    world.tick()

    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))

    assert outcome.result == "synced", outcome
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Closed", "Won")
    assert _when(referral["closedDateTime"]) - _when(referral["createdDateTime"]) < WIN_WAIT
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None
    assert opportunity["Partner_Center_Status__c"] == "Closed/Won"
    assert world.store.wakeup(Key(world.referral_key(rid))) is None


# -- the expiry warning, 48 hours before the 14 days are up -------------------------------------


async def test_an_incoming_referral_is_flagged_48_hours_before_it_expires(world: World) -> None:
    opp_id, rid = await _incoming(world)
    expires = _when((await world.microsoft.referral(rid))["expirationDateTime"])
    created = _when((await world.microsoft.referral(rid))["createdDateTime"])
    assert expires - created == timedelta(days=14)
    key = Key(world.referral_key(rid))
    warn_at = expires - EXPIRY_WARNING
    assert world.store.wakeup(key) == warn_at  # recorded by the create: no change will come
    world.clock.advance((warn_at - world.clock.now()).total_seconds() - 1)
    assert world.store.due_wakeups() == []
    world.tick(1)
    assert [k for k, _ in world.store.due_wakeups()] == [key]

    outcome = await reconcile_key(world.ctx, key)

    warning = (
        f"the referral expires on {expires:%Y-%m-%d %H:%M} UTC: accept or decline before then "
        "(move the opportunity to the active stage to accept it, or close it lost to decline)"
    )
    assert outcome.message == warning
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Pending"
    assert opportunity["Partner_Center_Sync_Error__c"] == warning
    assert [a for a in _audit(opportunity) if "warning: the referral expires" in a] != []
    audit_lines = len(world.store.audit(world.store.link_for_referral(rid).id))  # type: ignore[union-attr]
    assert world.store.wakeup(key) == expires  # and again at the expiry itself
    # Once: reconciling again writes and logs nothing.
    world.tick()
    before = await world.calls()
    assert (await reconcile_key(world.ctx, key)).result == "unchanged"
    assert (await world.calls() - before).writes == 0
    assert len(world.store.audit(world.store.link_for_referral(rid).id)) == audit_lines  # type: ignore[union-attr]
    # At the expiry, the opportunity follows the referral to Closed/Expired, with no warning.
    world.clock.advance((expires - world.clock.now()).total_seconds())
    assert [k for k, _ in world.store.due_wakeups()] == [key]
    assert (await reconcile_key(world.ctx, key)).result == "synced"
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["StageName"] == "Closed Lost"
    assert opportunity["Partner_Center_Status__c"] == "Closed/Expired"
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None
    assert world.store.wakeup(key) is None or world.store.wakeup(key) <= world.clock.now()
    # Expired is final: a later edit is refused before any call, with what to do.
    await world.seller.edit("Opportunity", opp_id, {"Amount": 99000})
    world.tick()
    before = await world.calls()
    refused = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert (await world.calls() - before).partner_center_writes == 0
    assert refused.result == "refused"
    assert refused.message is not None
    assert refused.message.startswith(
        "The referral is Closed/Expired in Partner Center, and a closed referral cannot be "
        "changed; the deal value change to '99000.00' was not sent."
    )


async def test_an_accepted_referral_is_not_flagged(world: World) -> None:
    opp_id, rid = await _incoming(world)
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Qualification"})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    expires = _when((await world.microsoft.referral(rid))["expirationDateTime"] or "")
    world.clock.advance((expires - EXPIRY_WARNING - world.clock.now()).total_seconds())
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "unchanged"
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None
