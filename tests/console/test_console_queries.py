"""The console's store queries on both databases (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from console_kit import seed

from cosell.clock import ManualClock
from cosell.commands.status import collect, report_json
from cosell.server.metrics import Metrics
from cosell.store import Store, SyncStatus
from cosell.store.console_queries import (
    MAX_PAGE_SIZE,
    activity,
    deal,
    overview,
    search_links,
    stages,
)
from cosell.store.types import referral_key


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cosell.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    # A tenant of this test's own: the PostgreSQL database is shared by the session.
    with Store.open(url, clock=clock, tenant=f"console-{secrets.token_hex(4)}") as store:
        yield store


def names(store: Store, query: str = "", status: SyncStatus | None = None) -> list[str | None]:
    return [row.name for row in search_links(store, query=query, status=status).rows]


def test_search_matches_names_customers_ids_and_statuses(
    any_store: Store, clock: ManualClock
) -> None:
    deals = seed(any_store, clock)
    assert names(any_store, "CLOUD migr") == ["Contoso cloud migration"]
    assert names(any_store, "fabrikam inc") == ["Fabrikam 50% deal"]
    assert names(any_store, "50%") == ["Fabrikam 50% deal"]
    assert names(any_store, "bulk_") == []  # _ is a character, not a wildcard
    assert names(any_store, "ref-north") == ["Northwind renewal"]
    assert names(any_store, str(deals.failing.record_id)) == ["Fabrikam 50% deal"]
    assert names(any_store, deals.synced.id) == ["Contoso cloud migration"]
    assert names(any_store, "Pending") == ["Northwind renewal"]
    assert names(any_store, status=SyncStatus.ERROR) == ["Fabrikam 50% deal"]
    assert names(any_store, "contoso", SyncStatus.ERROR) == []


def test_pages_are_newest_first_and_counted(any_store: Store, clock: ManualClock) -> None:
    seed(any_store, clock)
    first = search_links(any_store, query="bulk", limit=25)
    assert first.total == 60
    assert [row.name for row in first.rows[:2]] == ["Bulk deal 059", "Bulk deal 058"]
    last = search_links(any_store, query="bulk", offset=50, limit=25)
    assert len(last.rows) == 10
    assert last.total == 60
    beyond = search_links(any_store, query="bulk", offset=500)
    assert beyond.rows == []
    assert beyond.total == 60
    assert search_links(any_store, limit=10_000).limit == MAX_PAGE_SIZE


def test_overview_counts_links_errors_of_the_day_and_the_inbox(
    any_store: Store, clock: ManualClock
) -> None:
    deals = seed(any_store, clock)
    clock.advance(timedelta(hours=25).total_seconds())
    any_store.record_audit(deals.failing.id, "error: HTTP 503 from Salesforce")
    any_store.record_event(source="partner-center", event_id="e", key="referral:x", payload=b"{}")
    figures = overview(any_store, now=clock.now())
    assert figures.links_by_status == {"Synced": 61, "Pending": 1, "Error": 1, "Paused": 0}
    assert figures.total_links == 63
    assert figures.errors_24h == 1  # the seeded error is over 24 h old
    assert figures.inbox_pending == 1


def test_deal_reads_the_link_base_audit_and_conflicts(any_store: Store, clock: ManualClock) -> None:
    deals = seed(any_store, clock)
    found = deal(any_store, deals.synced.id)
    assert found is not None
    assert found.link.name == "Contoso cloud migration"
    assert found.base == {
        "name": "Contoso cloud migration",
        "customer_name": "Contoso Ltd",
        "stage": "Qualify",
    }
    assert [c.field for c in found.conflicts] == ["stage"]
    assert [e.message for e in found.audit] == ["synced 2 fields to Salesforce"]
    assert deal(any_store, "0" * 32) is None


def test_activity_counts_synced_changes_and_errors_per_hour_and_per_day(
    any_store: Store, clock: ManualClock
) -> None:
    deals = seed(any_store, clock)  # its one error entry is about 73 h before "now" below

    def write(synced: int, errors: int) -> None:
        for _ in range(synced):
            any_store.record_audit(
                deals.synced.id, "synced 1 field to Salesforce", details={"api_calls": 2}
            )
        for _ in range(errors):
            any_store.record_audit(
                deals.synced.id, "error: Salesforce refused", details={"api_calls": 1}
            )
        # Neither: a console action (no api_calls), and a note without details.
        any_store.record_audit(deals.synced.id, "retry requested by admin", details={"by": "a"})
        any_store.record_audit(deals.synced.id, "noted")

    clock.advance(3600)
    write(2, 0)  # 72 h before now
    clock.advance(67 * 3600)
    write(1, 1)  # 5 h before now
    clock.advance(5 * 3600)
    write(3, 0)  # now
    now = clock.now()
    found = activity(any_store, now=now)
    assert len(found.hours) == 24
    assert len(found.days) == 7
    assert found.hours[-1].start <= now < found.hours[-1].start + timedelta(hours=1)
    assert (found.hours[-1].synced, found.hours[-1].errors) == (3, 0)
    five_ago = now - timedelta(hours=5)
    assert [
        (b.synced, b.errors)
        for b in found.hours
        if b.start <= five_ago < b.start + timedelta(hours=1)
    ] == [(1, 1)]
    assert sum(b.synced for b in found.hours) == 4
    assert sum(b.errors for b in found.hours) == 1
    assert found.days[-1].start <= now < found.days[-1].start + timedelta(days=1)
    assert sum(b.synced for b in found.days) == 6
    assert sum(b.errors for b in found.days) == 2  # the seed's error too


def test_links_are_filtered_by_direction_and_stage_with_the_paging(
    any_store: Store, clock: ManualClock
) -> None:
    deals = seed(any_store, clock)
    assert deals.synced.direction == "Outgoing"  # the record came first
    assert deals.failing.direction == "Incoming"  # the referral came first
    assert deals.pending.direction == "Incoming"
    incoming = search_links(any_store, direction="Incoming", limit=200)
    assert incoming.total == 2 + 30
    assert {row.direction for row in incoming.rows} == {"Incoming"}
    outgoing = search_links(any_store, direction="Outgoing", limit=10, offset=20)
    assert outgoing.total == 1 + 30
    assert len(outgoing.rows) == 10
    pair = any_store.create_link(sobject="Opportunity", referral_id="ref-pair", record_id=None)
    assert pair.direction == "Incoming"
    both = any_store.create_link(
        sobject="Opportunity", referral_id="ref-both", record_id="006000000000999AAA"
    )
    assert both.direction is None  # linked as a pair: which came first is not known
    assert [r.referral_id for r in search_links(any_store, direction="unknown").rows] == [
        "ref-both"
    ]
    won = search_links(any_store, stage="Closed/Won", limit=200)
    assert won.total == 20  # bulk deals 0, 3, …, 57
    assert {row.stage for row in won.rows} == {"Closed/Won"}
    won_incoming = search_links(
        any_store, stage="Closed/Won", direction="Incoming", status=SyncStatus.SYNCED
    )
    assert won_incoming.total == 10  # 0, 6, …, 54
    assert names(any_store, "fabrikam") == ["Fabrikam 50% deal"]
    assert search_links(any_store, query="fabrikam", stage="Closed/Won").total == 0
    assert stages(any_store) == ["Active/Accepted", "Closed/Won", "New/Pending", "Qualify"]


def _metric_counts(store: Store) -> dict[str, int]:
    text = Metrics(store).render().decode()
    return {
        status: int(float(value))
        for status, value in re.findall(r'^cosell_links\{status="(\w+)"\} (\S+)$', text, re.M)
    }


def test_the_overview_counts_what_cosell_status_and_metrics_count(
    any_store: Store, clock: ManualClock
) -> None:
    store = any_store
    deals = seed(store, clock)
    store.set_pause(deals.synced.id, paused=True, by="bob")
    store.set_pause(deals.failing.id, paused=True, by="bob")  # Paused wins over Error
    store.update_link(deals.others[0].id, sync_status=SyncStatus.ERROR, last_error="x")
    store.hold_keys([referral_key("ref-bulk-002")], side="partner_center")
    figures = overview(store, now=clock.now())
    status = report_json(collect(store, clock=clock))["links"]
    assert figures.links_by_status == {"Synced": 58, "Pending": 2, "Error": 1, "Paused": 2}
    assert {**figures.links_by_status, "total": figures.total_links} == status
    assert _metric_counts(store) == figures.links_by_status
    assert figures.total_links == 63
    # and the deals filter finds as many as each card says
    for name, count in figures.links_by_status.items():
        assert search_links(store, status=name).total == count, name
