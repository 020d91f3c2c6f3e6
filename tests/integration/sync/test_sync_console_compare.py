"""The console's one-deal page beside `cosell plan`: both sides now, the base, the next step.

The console is given the real explain stage on the world's context (both sandboxes in process),
as `cosell serve` gives it; the page must show what `explain` reports and write nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from sync_world import World

from cosell.server.console import ConsoleOptions, create_console
from cosell.server.console.auth import Role, set_password
from cosell.store.types import Key
from cosell.sync.run.explain import explain
from cosell.sync.run.reconcile import reconcile_key

PASSWORD = "a console password"


@pytest.fixture
async def console(world: World, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    users = tmp_path / "users.json"
    set_password(users, "admin", PASSWORD, Role.OPERATOR, n=2**10)

    async def explain_key(key: str) -> object:
        return await explain(world.ctx, Key(key))

    options = ConsoleOptions(users_file=users, explain=explain_key)  # type: ignore[arg-type]
    app = Starlette(
        routes=[
            Mount(
                "/console",
                app=create_console(
                    store=world.store, clock=world.clock, options=options, notify=None
                ),
            )
        ]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console.test"
    ) as client:
        form = await client.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        signed = await client.post(
            "/console/login",
            data={"username": "admin", "password": PASSWORD, "login_token": token.group(1)},
        )
        assert signed.status_code == 303
        yield client


def _cells(page: str, field: str) -> list[str]:
    row = page.split(f"data-field='{field}'>", 1)[1].split("</tr>", 1)[0]
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]


async def test_the_deal_page_compares_both_sides_with_the_base_as_plan_does(
    world: World, console: httpx.AsyncClient
) -> None:
    account_id = await world.seller.create_account()
    opp_id = await world.seller.create_opportunity(account_id)
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "created"
    world.tick()
    referral_id = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
    await world.seller.edit("Opportunity", opp_id, {"Amount": 30000})
    await world.microsoft.edit(
        referral_id, [{"op": "replace", "path": "/details/notes", "value": "from Microsoft"}]
    )
    link = world.store.link_for_referral(referral_id)
    assert link is not None

    plain = await console.get(f"/console/deals/{link.id}")
    assert 'id="compare-now"' in plain.text
    assert "id='comparison'" not in plain.text  # nothing is read until asked for

    before = await world.calls()
    base = world.store.snapshot(link.id)
    page = (await console.get(f"/console/deals/{link.id}?compare=1")).text
    spent = await world.calls() - before
    assert spent.writes == 0
    assert spent.reads == 2  # the referral and the opportunity: explain's two reads
    assert world.store.snapshot(link.id) == base

    report = await explain(world.ctx, world.referral_key(referral_id))
    for row in report.rows:
        cells = _cells(page, row.field)
        assert cells[0] == row.field
        assert cells[-1] == row.action
    assert _cells(page, "deal_value")[1:] == [
        "25000.00",
        "30000.00",
        "25000.00",
        "write to Partner Center",
    ]
    assert _cells(page, "notes")[1] == "from Microsoft"
    assert _cells(page, "notes")[-1] == "write to Salesforce"
    assert "<tr class='write' data-field='deal_value'>" in page
    outcome = re.search(r"<p id='compare-outcome'>(.*?)</p>", page)
    assert outcome is not None
    assert "<strong>synced</strong>" in outcome.group(1)
    assert "1 Partner Center change(s)" in outcome.group(1)
    assert "nothing was written" in outcome.group(1)


async def test_a_missing_referral_is_explained_on_the_page(
    world: World, console: httpx.AsyncClient
) -> None:
    link = world.store.create_link(sobject="Opportunity", referral_id="not-a-referral-id")
    page = await console.get(f"/console/deals/{link.id}?compare=1")
    assert page.status_code == 200
    outcome = re.search(r"<p id='compare-outcome'>(.*?)</p>", page.text)
    assert outcome is not None
    assert "<strong>skipped</strong>" in outcome.group(1)
    assert "does not exist" in outcome.group(1)


async def test_a_connection_that_cannot_sign_in_is_shown_not_a_500(
    world: World, console: httpx.AsyncClient
) -> None:
    link = world.store.create_link(sobject="Opportunity", referral_id="some-referral")
    world.pc_sandbox.identity.revoke_refresh_tokens()
    world.pc_sandbox.identity.revoke_access_tokens()
    page = await console.get(f"/console/deals/{link.id}?compare=1")
    assert page.status_code == 200
    error = re.search(r'<div class="error-box" id="compare-error"><p>(.*?)</p>', page.text)
    assert error is not None
    assert "Partner Center sign-in expired: run cosell connect partner-center" in error.group(1)
    assert 'id="compare-now"' in page.text  # and a way to try again
