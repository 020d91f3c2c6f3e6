"""`explain` and `cosell plan`: the three-way table and the plan, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from sync_world import World
from typer.testing import CliRunner

from cosell.cli import app
from cosell.commands.plan import key_of, print_plan
from cosell.store import KeyFormatError
from cosell.store.schema import upgrade_database
from cosell.sync.run.explain import explain
from cosell.sync.run.reconcile import reconcile_key


async def linked_opportunity(world: World) -> tuple[str, str]:
    account_id = await world.seller.create_account()
    opp_id = await world.seller.create_opportunity(account_id)
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "created"
    world.tick()
    return opp_id, (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]


async def test_explain_compares_three_ways_and_writes_nothing(world: World) -> None:
    opp_id, rid = await linked_opportunity(world)
    await world.seller.edit("Opportunity", opp_id, {"Amount": 30000})
    await world.microsoft.edit(rid, [{"op": "replace", "path": "/details/notes", "value": "pc"}])
    link = world.store.link_for_referral(rid)
    assert link is not None
    base = world.store.snapshot(link.id)
    before = await world.calls()
    report = await explain(world.ctx, world.opportunity_key(opp_id))
    assert (await world.calls() - before).writes == 0
    assert world.store.snapshot(link.id) == base
    rows = {row.field: row for row in report.rows}
    assert rows["deal_value"].partner_center == "25000.00"
    assert rows["deal_value"].salesforce == "30000.00"
    assert rows["deal_value"].base == "25000.00"
    assert rows["deal_value"].action == "write to Partner Center"
    assert rows["notes"].action == "write to Salesforce"
    assert rows["name"].action == "in sync"
    assert report.partner_center_operations == (
        {"op": "replace", "path": "/details/dealValue", "value": 30000},
    )
    assert report.salesforce_updates["Opportunity"]["Description"] == "pc"
    assert report.outcome.result == "synced"
    assert report.outcome.dry_run


async def test_print_plan_renders_the_table(world: World) -> None:
    opp_id, _ = await linked_opportunity(world)
    await world.seller.edit("Opportunity", opp_id, {"Name": "Renamed"})
    console = Console(record=True, width=200)
    await print_plan(world.ctx, key_of(opp_id), console)
    text = console.export_text()
    assert "Three-way comparison" in text
    assert "write to Partner Center" in text
    assert "Renamed" in text
    assert "Nothing was written" in text


async def test_plan_of_a_referral_without_an_opportunity_shows_the_create(world: World) -> None:
    sent = await world.microsoft.send_co_sell(name="Incoming deal")
    report = await explain(world.ctx, key_of(sent["id"]))
    assert report.link is None
    assert report.outcome.result == "created"
    rows = {row.field: row for row in report.rows}
    assert (rows["name"].partner_center, rows["name"].salesforce) == ("Incoming deal", None)
    assert rows["name"].action == "create in Salesforce"
    assert await world.opportunities_for(sent["id"]) == []
    assert world.store.link_for_referral(sent["id"]) is None


def test_key_of_accepts_keys_and_bare_ids() -> None:
    assert key_of("0062I0000000001QAA") == "salesforce:Opportunity:0062I0000000001QAA"
    guid = "2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11"
    assert key_of(guid) == f"referral:{guid}"
    assert key_of(f"referral:{guid}") == f"referral:{guid}"
    with pytest.raises(KeyFormatError, match="referral:<referral id>"):
        key_of("opportunity 42")


def test_cosell_plan_refuses_a_malformed_key() -> None:
    result = CliRunner().invoke(app, ["plan", "not a key"])
    assert result.exit_code == 2
    assert "referral:<referral id>" in result.output


def test_cosell_plan_asks_for_a_migrated_store_rather_than_writing_one(tmp_path: Path) -> None:
    settings = tmp_path / "cosell.toml"
    settings.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n')
    result = CliRunner().invoke(app, ["plan", "0062I0000000001QAA", "--config", str(settings)])
    assert result.exit_code == 1
    assert "cosell db upgrade" in result.output


def test_cosell_plan_says_which_credentials_are_missing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade_database(url)
    settings = tmp_path / "cosell.toml"
    settings.write_text(f'[store]\nurl = "{url}"\n[salesforce]\nauth = "client_credentials"\n')
    result = CliRunner().invoke(app, ["plan", "0062I0000000001QAA", "--config", str(settings)])
    assert result.exit_code == 1
    assert "partner_center.tenant_id" in result.output


async def test_plan_shows_conflicts_and_refusals_by_field(world: World) -> None:
    opp_id, rid = await linked_opportunity(world)
    await world.microsoft.edit(rid, [{"op": "replace", "path": "/details/dealValue", "value": 1}])
    await world.seller.edit("Opportunity", opp_id, {"Amount": 2})
    report = await explain(world.ctx, world.opportunity_key(opp_id))
    rows = {row.field: row for row in report.rows}
    assert rows["deal_value"].action == "conflict: Salesforce wins (owner)"
    assert report.outcome.result == "conflict"
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "conflict"
    world.tick(72 * 3600)  # Partner Center takes Won 72 hours after creation
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Won"})
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    world.tick()
    await world.seller.edit("Opportunity", opp_id, {"Name": "after won"})
    report = await explain(world.ctx, world.opportunity_key(opp_id))
    rows = {row.field: row for row in report.rows}
    assert rows["name"].action.startswith("refused: ")
    assert "Closed/Won" in rows["name"].action
    assert report.partner_center_operations == ()
