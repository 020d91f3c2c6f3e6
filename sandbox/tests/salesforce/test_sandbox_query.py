"""Query paging, queryAll, getUpdated / getDeleted and the API limits, over HTTP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sf_sandbox_helpers import SF_BASE_URL, V, create, error_of, login, opportunity

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxOptions


async def seed_accounts(sandbox: SalesforceSandbox, count: int) -> list[str]:
    """Create `count` accounts directly in the store (fast), oldest first."""
    store = sandbox.store
    obj = store.sobject("Account")
    tx = store.begin(sandbox.actor(sandbox.integration_user_id))
    ids = [store.create(tx, obj, {"Name": f"Account {i:04d}"}) for i in range(count)]
    store.commit(tx)
    return ids


async def test_query_pages_with_batch_size(
    sf: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    ids = await seed_accounts(sandbox, 450)
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = await sf.get(
        f"{V}/query/", params={"q": "SELECT Id, Name FROM Account ORDER BY Name"}, headers=headers
    )
    assert first.status_code == 200
    page = first.json()
    assert page["totalSize"] == 450
    assert page["done"] is False
    assert len(page["records"]) == 200
    seen = [r["Id"] for r in page["records"]]
    pages = 1
    while not page["done"]:
        url = page["nextRecordsUrl"]
        assert url.startswith(f"{V}/query/01g")
        assert url.rsplit("-", 1)[1].isdigit()
        response = await sf.get(url)
        assert response.status_code == 200
        page = response.json()
        assert page["totalSize"] == 450
        seen += [r["Id"] for r in page["records"]]
        pages += 1
    assert pages == 3
    assert seen == ids
    assert "nextRecordsUrl" not in page


async def test_batch_size_is_clamped_and_defaults_to_2000(
    sf: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    await seed_accounts(sandbox, 2100)
    page = (await sf.get(f"{V}/query", params={"q": "SELECT Id FROM Account"})).json()
    assert len(page["records"]) == 2000
    tiny = await sf.get(
        f"{V}/query",
        params={"q": "SELECT Id FROM Account"},
        headers={"Sforce-Query-Options": "batchSize=5"},
    )
    assert len(tiny.json()["records"]) == 200


async def test_query_locator_expires_after_inactivity(
    sf: httpx.AsyncClient, sandbox: SalesforceSandbox, sf_clock: ManualClock
) -> None:
    await seed_accounts(sandbox, 500)
    headers = {"Sforce-Query-Options": "batchSize=200"}
    page = (
        await sf.get(f"{V}/query/", params={"q": "SELECT Id FROM Account"}, headers=headers)
    ).json()
    next_url = page["nextRecordsUrl"]
    sf_clock.advance(14 * 60)
    second = await sf.get(next_url)
    assert second.status_code == 200
    sf_clock.advance(16 * 60)
    item = await error_of(await sf.get(second.json()["nextRecordsUrl"]), 400)
    assert item["errorCode"] == "INVALID_QUERY_LOCATOR"
    item = await error_of(await sf.get(f"{V}/query/01gXX0000000000AAA-200"), 400)
    assert item["errorCode"] == "INVALID_QUERY_LOCATOR"


async def test_query_all_sees_deleted_records(sf: httpx.AsyncClient) -> None:
    keep = await opportunity(sf, Name="Keep")
    gone = await opportunity(sf, Name="Gone")
    await sf.delete(f"{V}/sobjects/Opportunity/{gone}")
    q = {"q": "SELECT Id, IsDeleted FROM Opportunity ORDER BY Name"}
    live = (await sf.get(f"{V}/query/", params=q)).json()
    assert [r["Id"] for r in live["records"]] == [keep]
    everything = (await sf.get(f"{V}/queryAll/", params=q)).json()
    assert [(r["Id"], r["IsDeleted"]) for r in everything["records"]] == [
        (gone, True),
        (keep, False),
    ]
    also = await sf.get(f"{V}/queryAll", params=q)
    assert also.json()["totalSize"] == 2


async def test_query_errors(sf: httpx.AsyncClient) -> None:
    item = await error_of(await sf.get(f"{V}/query/", params={"q": "SELEC Id FROM Account"}), 400)
    assert item["errorCode"] == "MALFORMED_QUERY"
    item = await error_of(
        await sf.get(f"{V}/query/", params={"q": "SELECT Nope FROM Account"}), 400
    )
    assert item["errorCode"] == "INVALID_FIELD"
    item = await error_of(await sf.get(f"{V}/query/", params={"q": "SELECT Id FROM Nope"}), 400)
    assert item["errorCode"] == "INVALID_TYPE"
    item = await error_of(await sf.get(f"{V}/query/"), 400)
    assert item["errorCode"] == "MALFORMED_QUERY"


async def test_count_query(sf: httpx.AsyncClient) -> None:
    await opportunity(sf)
    await opportunity(sf)
    body = (await sf.get(f"{V}/query/", params={"q": "SELECT COUNT() FROM Opportunity"})).json()
    assert body["totalSize"] == 2
    assert body["records"] == []


async def test_get_updated_and_deleted(sf: httpx.AsyncClient, sf_clock: ManualClock) -> None:
    start = sf_clock.now()
    sf_clock.advance(60)
    first = await opportunity(sf)
    second = await opportunity(sf)
    sf_clock.advance(120)
    await sf.delete(f"{V}/sobjects/Opportunity/{second}")
    sf_clock.advance(120)
    end = sf_clock.now()
    params = {"start": start.isoformat(), "end": end.isoformat()}
    updated = await sf.get(f"{V}/sobjects/Opportunity/updated/", params=params)
    assert updated.status_code == 200
    assert updated.json()["ids"] == [first]
    assert updated.json()["latestDateCovered"] == "2026-01-05T09:05:00.000+0000"
    deleted = await sf.get(f"{V}/sobjects/Opportunity/deleted/", params=params)
    body = deleted.json()
    assert [d["id"] for d in body["deletedRecords"]] == [second]
    assert body["deletedRecords"][0]["deletedDate"].startswith("2026-01-05T09:03:00")
    assert body["earliestDateAvailable"] == "2025-12-21T09:05:00.000+0000"


async def test_get_updated_window_errors(sf: httpx.AsyncClient, sf_clock: ManualClock) -> None:
    now = sf_clock.now()
    cases = [
        {"start": now.isoformat(), "end": (now - timedelta(hours=1)).isoformat()},
        {"start": (now - timedelta(days=31)).isoformat(), "end": now.isoformat()},
        {"start": "yesterday", "end": now.isoformat()},
    ]
    for params in cases:
        response = await sf.get(f"{V}/sobjects/Opportunity/updated/", params=params)
        assert (await error_of(response, 400))["errorCode"] == "INVALID_REPLICATION_DATE"
    old = {"start": (now - timedelta(days=16)).isoformat(), "end": now.isoformat()}
    response = await sf.get(f"{V}/sobjects/Opportunity/deleted/", params=old)
    assert (await error_of(response, 400))["errorCode"] == "INVALID_REPLICATION_DATE"
    response = await sf.get(f"{V}/sobjects/Opportunity/updated/")
    assert (await error_of(response, 400))["errorCode"] == "MISSING_ARGUMENT"


async def test_limits_and_header_agree(sf: httpx.AsyncClient) -> None:
    first = await sf.get(f"{V}/limits/")
    assert first.status_code == 200
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    await create(sf, "Account", {"Name": "A"})
    second = await sf.get(f"{V}/limits/")
    assert second.headers["Sforce-Limit-Info"] == "api-usage=3/15000"
    assert second.json()["DailyApiRequests"] == {"Max": 15000, "Remaining": 14997}


async def test_daily_limit_is_rolling_on_the_clock(sf_clock: ManualClock, sf_key_dir: Path) -> None:
    sandbox = SalesforceSandbox(
        base_url=SF_BASE_URL,
        clock=sf_clock,
        options=SandboxOptions(
            seed=3, key_dir=sf_key_dir, daily_api_limit=3, session_lifetime_seconds=3 * 86400
        ),
    )
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=SF_BASE_URL) as client:
        client.headers["Authorization"] = f"Bearer {await login(client, sandbox)}"
        for _ in range(3):
            assert (await client.get(f"{V}/limits/")).status_code == 200
        refused = await client.get(f"{V}/limits/")
        assert (await error_of(refused, 403))["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
        sf_clock.advance(24 * 3600 + 60)
        again = await client.get(f"{V}/limits/")
        assert again.status_code == 200
        assert again.json()["DailyApiRequests"] == {"Max": 3, "Remaining": 2}


async def test_recycle_bin_is_purged_after_15_days(
    sf: httpx.AsyncClient,
    sf_clock: ManualClock,
    sf_client: httpx.AsyncClient,
    sandbox: SalesforceSandbox,
) -> None:
    gone = await opportunity(sf)
    await sf.delete(f"{V}/sobjects/Opportunity/{gone}")
    q = {"q": "SELECT Id FROM Opportunity"}
    sf_clock.advance(14 * 86400)
    sf.headers["Authorization"] = f"Bearer {await login(sf_client, sandbox)}"
    assert (await sf.get(f"{V}/queryAll/", params=q)).json()["totalSize"] == 1
    sf_clock.advance(2 * 86400)
    sf.headers["Authorization"] = f"Bearer {await login(sf_client, sandbox)}"
    assert (await sf.get(f"{V}/queryAll/", params=q)).json()["totalSize"] == 0
    item = await error_of(await sf.get(f"{V}/sobjects/Opportunity/{gone}"), 404)
    assert item["errorCode"] == "NOT_FOUND"


async def test_get_updated_is_lenient_with_simple_salesforce_dates(sf: httpx.AsyncClient) -> None:
    response = await sf.get(
        f"{V}/sobjects/Opportunity/updated/?start=2026-01-05T08%3A00%3A00%3A&end=2026-01-05T09%3A00%3A00%2B00%3A00"
    )
    assert response.status_code == 200
    assert response.json()["latestDateCovered"] == "2026-01-05T09:00:00.000+0000"
