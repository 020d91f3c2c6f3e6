"""Microsoft's side of a co-sell engagement reaches the opportunity (`cosell.sync.io.microsoft`)."""

from __future__ import annotations

from typing import Any

import pytest
from sync_world import World

from cosell.sync.plan.microsoft import MARKERS, NOTES_MARKER
from cosell.sync.run.reconcile import reconcile_key


async def _co_sell(world: World) -> tuple[str, str, str]:
    """An incoming co-sell with its opportunity: (opportunity id, our id, Microsoft's id)."""
    sent = await world.microsoft.send_co_sell()
    outcome = await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    assert outcome.result == "created", outcome
    [opportunity] = await world.opportunities_for(sent["id"])
    theirs = await world.microsoft.control("GET", f"/referrals/{sent['id']}/microsoft")
    world.tick()
    return str(opportunity["Id"]), str(sent["id"]), str(theirs["id"])


async def _shared(world: World) -> tuple[str, str, str]:
    """An opportunity shared with Microsoft sellers, Microsoft's side New/Pending."""
    opp_id, rid = await world.shared_pair(Referral_Visibility__c=True)
    theirs = await world.microsoft.control("GET", f"/referrals/{rid}/microsoft")
    assert (theirs["status"], theirs["substatus"]) == ("New", "Pending")
    return opp_id, rid, str(theirs["id"])


def _audit(opportunity: dict[str, Any]) -> list[str]:
    return str(opportunity.get("Audit__c") or "").splitlines()


async def test_microsoft_accepting_shows_on_the_opportunity_and_again_writes_nothing(
    world: World,
) -> None:
    opp_id, rid, theirs = await _shared(world)
    await world.microsoft.control("POST", f"/referrals/{rid}/microsoft/accept")
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.referral_key(theirs))
    spent = await world.calls() - before
    assert outcome.result == "synced", outcome
    assert outcome.link_id == world.store.link_for_referral(rid).id  # type: ignore[union-attr]
    assert "Microsoft accepted the co-sell" in _audit(await world.seller.opportunity(opp_id))[0]
    # GET Microsoft's, GET ours, SOQL the opportunity (our link is found in the store by
    # the engagement id); one PATCH.
    assert (spent.reads, spent.writes) == (3, 1)
    assert outcome.api_calls == spent.total
    before = await world.calls()
    again = await reconcile_key(world.ctx, world.referral_key(theirs))
    spent = await world.calls() - before
    assert again.result == "unchanged", again
    assert (spent.reads, spent.writes) == (1, 0)  # the GET shows nothing new since the markers
    # Our own keys keep the markers and never read Microsoft's side.
    for key in (world.referral_key(rid), world.opportunity_key(opp_id)):
        before = await world.calls()
        assert (await reconcile_key(world.ctx, key)).result == "unchanged"
        assert (await world.calls() - before).writes == 0
    base = world.store.snapshot(outcome.link_id or "") or {}
    assert set(MARKERS) <= set(base)


async def test_microsoft_declining_shows_the_reason(world: World) -> None:
    opp_id, rid, theirs = await _shared(world)
    await world.microsoft.control(
        "POST", f"/referrals/{rid}/microsoft/decline", {"statusReason": "No capacity"}
    )
    world.tick()
    outcome = await reconcile_key(world.ctx, world.referral_key(theirs))
    assert outcome.result == "synced", outcome
    first = _audit(await world.seller.opportunity(opp_id))[0]
    assert "Microsoft declined the co-sell: No capacity" in first
    entries = world.store.audit(outcome.link_id or "")
    assert "Microsoft declined the co-sell" in entries[0].message


async def test_microsoft_setting_the_msx_id_fills_microsoft_crm_identifier(world: World) -> None:
    opp_id, _rid, theirs = await _co_sell(world)
    assert not (await world.seller.opportunity(opp_id)).get("Microsoft_CRM_Identifier__c")
    await world.microsoft.control(
        "PUT", f"/referrals/{theirs}/microsoft/msx-id", {"msxId": "7-ABC"}
    )
    world.tick()
    outcome = await reconcile_key(world.ctx, world.referral_key(theirs))
    assert outcome.result == "synced", outcome
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Microsoft_CRM_Identifier__c"] == "7-ABC"
    assert any("Microsoft CRM id set to 7-ABC" in line for line in _audit(opportunity))
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.referral_key(theirs))).result == "unchanged"
    assert (await world.calls() - before).writes == 0


def _notes_of(world: World, opp_id: str) -> list[dict[str, Any]]:
    store = world.sf_sandbox.store
    linked = [
        row
        for row in store.rows("ContentDocumentLink", include_deleted=False)
        if row.get("LinkedEntityId") == opp_id
    ]
    assert all((r["ShareType"], r["Visibility"]) == ("V", "AllUsers") for r in linked)
    ids = {row["ContentDocumentId"] for row in linked}
    assert len(ids) == len(linked)
    return [row for row in store.rows("ContentNote", include_deleted=False) if row["Id"] in ids]


async def test_two_microsoft_notes_become_two_content_notes_exactly_once(world: World) -> None:
    opp_id, rid, theirs = await _co_sell(world)
    link_id = world.store.link_for_referral(rid).id  # type: ignore[union-attr]
    await reconcile_key(world.ctx, world.referral_key(theirs))  # first sight: accepted
    before_base = world.store.snapshot(link_id)
    assert before_base is not None
    await world.microsoft.control(
        "POST", f"/referrals/{theirs}/microsoft/notes", {"text": "Customer wants a PoC in May"}
    )
    await world.microsoft.control(
        "POST", f"/referrals/{theirs}/microsoft/notes", {"text": "Budget approved by the CFO"}
    )
    world.tick()
    outcome = await reconcile_key(world.ctx, world.referral_key(theirs))
    assert outcome.result == "synced", outcome
    notes = _notes_of(world, opp_id)
    assert sorted(n["Title"] for n in notes) == [
        "Microsoft: Budget approved by the CFO",
        "Microsoft: Customer wants a PoC in May",
    ]
    previews = sorted(n["TextPreview"] for n in notes)
    assert previews[0].endswith("] Budget approved by the CFO")
    assert previews[1].endswith("] Customer wants a PoC in May")
    audit = _audit(await world.seller.opportunity(opp_id))[0]
    assert audit.count("Microsoft added a note") == 2
    # Again: nothing.
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.referral_key(theirs))).result == "unchanged"
    assert (await world.calls() - before).writes == 0
    # A crash after the notes were linked but before the base was saved: the retry finds
    # them on the opportunity and creates none.
    world.store.save_snapshot(link_id, before_base)
    assert NOTES_MARKER in before_base
    await reconcile_key(world.ctx, world.referral_key(theirs))
    assert len(_notes_of(world, opp_id)) == 2
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.referral_key(theirs))).result == "unchanged"
    assert (await world.calls() - before).writes == 0


async def test_a_related_referral_key_resolves_to_our_referral(world: World) -> None:
    opp_id, rid, theirs = await _co_sell(world)
    outcome = await reconcile_key(world.ctx, world.referral_key(theirs))
    link = world.store.link_for_referral(rid)
    assert link is not None
    assert outcome.link_id == link.id
    assert world.store.link_for_referral(theirs) is None  # no second link, no opportunity
    assert len(await world.opportunities_for(theirs)) == 0
    assert "Microsoft accepted the co-sell" in _audit(await world.seller.opportunity(opp_id))[0]


async def test_an_unshared_referral_makes_no_engagement_call(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp_id, rid = await world.shared_pair()

    async def no_engagement(*args: Any) -> Any:
        raise AssertionError("an unshared referral must not list its engagement")

    monkeypatch.setattr(world.ctx.partner_center, "engagement", no_engagement)
    await world.seller.edit("Opportunity", opp_id, {"Name": "Renamed"})
    world.tick()
    for key in (world.opportunity_key(opp_id), world.referral_key(rid)):
        before = await world.calls()
        outcome = await reconcile_key(world.ctx, key)
        assert outcome.result in ("synced", "unchanged"), outcome
        assert (await world.calls() - before).reads == 2
