"""`build_context`: settings (as `Settings.for_sandboxes` writes them) to working clients."""

from __future__ import annotations

from pathlib import Path

import httpx
from sync_world import PC_BASE, LoopBridgeTransport, World

from cosell.config import Settings
from cosell.partnercenter.auth import RoutingHttpClient
from cosell.sync.io.context import build_context
from cosell.sync.run.reconcile import reconcile_key


async def test_a_context_built_from_settings_reconciles(world: World, tmp_path: Path) -> None:
    settings = Settings.for_sandboxes(
        world.pc_sandbox.info(), world.sf_sandbox.info(), store_url=f"sqlite:///{tmp_path}/x.db"
    )
    entra = httpx.Client(transport=LoopBridgeTransport(world.pc_sandbox.app), base_url=PC_BASE)
    ctx = build_context(
        settings,
        store=world.store,
        clock=world.clock,
        pc_http=world.pc_http,
        sf_http=world.sf_http,
        msal_http_client=RoutingHttpClient(PC_BASE, entra),
    )
    assert ctx.owned_http == []  # the clients were given, so the context closes none
    assert not ctx.dry_run
    sent = await world.microsoft.send_co_sell()
    outcome = await reconcile_key(ctx, world.referral_key(sent["id"]))
    assert outcome.result == "created", outcome
    assert len(await world.opportunities_for(sent["id"])) == 1
    await ctx.aclose()
    entra.close()  # noqa: ASYNC212 - an in-process transport: closing does no I/O


async def test_build_context_owns_and_closes_the_clients_it_makes(
    world: World, tmp_path: Path
) -> None:
    settings = Settings.for_sandboxes(
        world.pc_sandbox.info(), world.sf_sandbox.info(), store_url=f"sqlite:///{tmp_path}/x.db"
    )
    ctx = build_context(settings, store=world.store, clock=world.clock)
    assert len(ctx.owned_http) == 3  # Partner Center, Salesforce, and msal's (route_to)
    owned = list(ctx.owned_http)
    await ctx.aclose()
    assert all(client.is_closed for client in owned)
    assert ctx.owned_http == []
