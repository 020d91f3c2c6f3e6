"""Microsoft's changes reach the opportunity when their webhook was missed: poller and sweep.

Each of Microsoft's changes (accepted, declined, a status change, the MSX id, a note) is made
with no webhook delivered and must arrive through the Partner Center poller (its keys
reconciled one by one, as `cosell serve` does, or as a batch, as `cosell sync` does) and
through the sweep (`sweep_page`, as `cosell sync --full` and the periodic sweep do), at a
bounded cost: an unchanged Microsoft referral on a list costs no call at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sync_world import World

from cosell.store.types import Key
from cosell.sync.io.pollers import Cursor, poll_partner_center
from cosell.sync.plan.outcome import Outcome
from cosell.sync.run.batch import reconcile_batch, sweep_page
from cosell.sync.run.reconcile import reconcile_key

Change = Callable[[World, str], Awaitable[str]]
"""Makes one change on Microsoft's side of the referral; returns the audit text it must give."""


async def _accept(world: World, rid: str) -> str:
    await world.microsoft.control("POST", f"/referrals/{rid}/microsoft/accept")
    return "Microsoft accepted the co-sell"


async def _decline(world: World, rid: str) -> str:
    await world.microsoft.control(
        "POST", f"/referrals/{rid}/microsoft/decline", {"statusReason": "No capacity"}
    )
    return "Microsoft declined the co-sell: No capacity"


async def _close_won(world: World, rid: str) -> str:
    await world.microsoft.control("POST", f"/referrals/{rid}/microsoft/accept")
    await world.microsoft.control("POST", f"/referrals/{rid}/microsoft/close", {"substatus": "Won"})
    return "Microsoft closed the co-sell as won"


async def _msx_id(world: World, rid: str) -> str:
    await world.microsoft.control("PUT", f"/referrals/{rid}/microsoft/msx-id", {"msxId": "7-XYZ"})
    return "Microsoft CRM id set to 7-XYZ"


async def _note(world: World, rid: str) -> str:
    await world.microsoft.control(
        "POST", f"/referrals/{rid}/microsoft/notes", {"text": "Customer wants a PoC in May"}
    )
    return "Microsoft added a note"


CHANGES: dict[str, Change] = {
    "accepted": _accept,
    "declined": _decline,
    "status": _close_won,
    "msx_id": _msx_id,
    "notes": _note,
}


async def _sweep(world: World) -> list[Outcome]:
    outcomes: list[Outcome] = []
    cursor: str | None = None
    while True:
        page, cursor = await sweep_page(world.ctx, cursor=cursor)
        outcomes += page
        if cursor is None:
            return outcomes


class Poller:
    """The Partner Center poller with its cursor, as the engine runs it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.cursor = Cursor()

    async def keys(self) -> tuple[Key, ...]:
        found = await poll_partner_center(self.world.ctx.partner_center, self.cursor)
        self.cursor = found.cursor
        return found.keys

    async def one_by_one(self) -> list[Outcome]:
        return [await reconcile_key(self.world.ctx, key) for key in await self.keys()]

    async def as_batch(self) -> list[Outcome]:
        return await reconcile_batch(self.world.ctx, await self.keys())


async def _shared_and_seen(world: World) -> tuple[str, str, str, Poller]:
    """A shared opportunity whose Microsoft side was seen once: (opp id, ours, theirs, poller)."""
    opp_id, rid = await world.shared_pair(Referral_Visibility__c=True)
    theirs = str((await world.microsoft.control("GET", f"/referrals/{rid}/microsoft"))["id"])
    poller = Poller(world)
    await poller.one_by_one()  # first sight of Microsoft's side; the cursor moves past it
    world.tick()
    return opp_id, rid, theirs, poller


def _audit(opportunity: dict[str, Any]) -> str:
    return str(opportunity.get("Audit__c") or "")


async def _check(world: World, change: str, opp_id: str, expected: str) -> None:
    opportunity = await world.seller.opportunity(opp_id)
    assert expected in _audit(opportunity)
    if change == "msx_id":
        assert opportunity["Microsoft_CRM_Identifier__c"] == "7-XYZ"
    if change == "notes":
        linked = {
            row["ContentDocumentId"]
            for row in world.sf_sandbox.store.rows("ContentDocumentLink", include_deleted=False)
            if row["LinkedEntityId"] == opp_id
        }
        titles = [
            row["Title"]
            for row in world.sf_sandbox.store.rows("ContentNote", include_deleted=False)
            if row["Id"] in linked
        ]
        assert titles == ["Microsoft: Customer wants a PoC in May"]


RUNS: dict[str, Callable[[World, Poller], Awaitable[list[Outcome]]]] = {
    "poller, one key at a time": lambda world, poller: poller.one_by_one(),
    "poller, as a batch": lambda world, poller: poller.as_batch(),
    "sweep": lambda world, poller: _sweep(world),
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("run", list(RUNS))
async def test_a_missed_microsoft_change_arrives(world: World, change: str, run: str) -> None:
    opp_id, _rid, theirs, poller = await _shared_and_seen(world)
    expected = await CHANGES[change](world, theirs)  # no webhook is delivered
    world.tick()
    outcomes = await RUNS[run](world, poller)
    by_key = {outcome.key: outcome for outcome in outcomes}
    assert by_key[world.referral_key(theirs)].result == "synced", outcomes
    await _check(world, change, opp_id, expected)
    # Seen: the next sweep writes nothing (the referral's updatedDateTime did not move).
    before = await world.calls()
    assert all(o.result == "unchanged" for o in await _sweep(world))
    assert (await world.calls() - before).writes == 0


async def test_an_unchanged_microsoft_referral_costs_a_sweep_page_nothing(world: World) -> None:
    opp_id, _rid, theirs, _poller = await _shared_and_seen(world)
    before = await world.calls()
    outcomes = await _sweep(world)
    spent = await world.calls() - before
    assert {o.result for o in outcomes} == {"unchanged"}
    # One list page, one SOQL query for our opportunity; Microsoft's referral: no call.
    assert (spent.reads, spent.writes) == (2, 0)
    assert sum(o.api_calls for o in outcomes) == spent.total
    await _accept(world, theirs)
    world.tick()
    before = await world.calls()
    outcomes = await _sweep(world)
    spent = await world.calls() - before
    # The page's two reads, then our link reconciled with Microsoft's referral at hand:
    # GET our referral, SOQL the opportunity, one PATCH of the opportunity.
    assert (spent.reads, spent.writes) == (4, 1)
    assert "Microsoft accepted the co-sell" in _audit(await world.seller.opportunity(opp_id))


async def test_a_link_without_its_engagement_id_lists_the_engagement_once(world: World) -> None:
    opp_id, rid, theirs, _poller = await _shared_and_seen(world)
    link = world.store.link_for_referral(rid)
    assert link is not None
    world.store.update_link(link.id, engagement_id=None)  # e.g. a link from an older release
    await _accept(world, theirs)
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.referral_key(theirs))
    spent = await world.calls() - before
    assert outcome.result == "synced", outcome
    # GET Microsoft's, list the engagement, GET ours, SOQL; one PATCH.
    assert (spent.reads, spent.writes) == (4, 1)
    recorded = world.store.link_for_referral(rid)
    assert recorded is not None
    assert recorded.engagement_id is not None
    await world.microsoft.control("PUT", f"/referrals/{theirs}/microsoft/msx-id", {"msxId": "7-Q"})
    world.tick()
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.referral_key(theirs))).result == "synced"
    assert (await world.calls() - before).reads == 3  # found in the store this time
    assert (await world.seller.opportunity(opp_id))["Microsoft_CRM_Identifier__c"] == "7-Q"
