"""`--data FILE`: referrals, engagements, credentials and the clock survive a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pcsandbox_helpers import BASE_URL, REFERRALS, co_sell_body, referral_body, user_token

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxKeys, SandboxOptions
from cosell_sandbox.partnercenter.persistence import SandboxDataError


def build(path: Path, keys: SandboxKeys, seed: int | None = None) -> PartnerCenterSandbox:
    options = SandboxOptions(seed=seed, data_path=path)
    return PartnerCenterSandbox(base_url=BASE_URL, clock=ManualClock(), options=options, keys=keys)


def connect(sandbox: PartnerCenterSandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL)


async def test_state_survives_a_restart(tmp_path: Path, pc_keys: SandboxKeys) -> None:
    path = tmp_path / "pc.sqlite"
    first = build(path, pc_keys, seed=1)
    async with connect(first) as client:
        token = await user_token(client, first)
        client.headers["Authorization"] = f"Bearer {token}"
        private = (await client.post(REFERRALS, json=referral_body())).json()
        shared = (await client.post(REFERRALS, json=co_sell_body())).json()
        patched = await client.patch(
            f"{REFERRALS}/{private['id']}",
            json=[{"op": "replace", "path": "/details/notes", "value": "after restart?"}],
        )
        assert patched.status_code == 204
        lead = (await client.post("/control/referrals/incoming", json={"kind": "lead"})).json()
        await client.post("/control/clock/advance", json={"seconds": 600})
        before = (await client.get(REFERRALS)).json()["value"]
    info = first.info()
    await first.aclose()

    second = build(path, pc_keys)  # no seed: everything must come from the file
    assert second.info() == info
    assert second.clock_status()["advanced_seconds"] == 600
    async with connect(second) as client:
        client.headers["Authorization"] = f"Bearer {token}"  # the old token is still valid
        after = (await client.get(REFERRALS)).json()["value"]
        assert after == before
        assert {r["id"] for r in after} >= {private["id"], shared["id"], lead["id"]}
        got = await client.get(f"{REFERRALS}/{private['id']}")
        assert got.json()["details"]["notes"] == "after restart?"
        engagement = await client.get(
            REFERRALS, params={"$filter": f"engagementId eq {shared['engagementId']}"}
        )
        assert {r["organizationId"] for r in engagement.json()["value"]} == {
            info["tenant_id"],
            "msft",
        }
        # The restored store keeps enforcing its rules: the lead still expires on time.
        await client.post("/control/clock/advance", json={"seconds": 14 * 86400})
        client.headers["Authorization"] = f"Bearer {await user_token(client, second)}"
        assert (await client.get(f"{REFERRALS}/{lead['id']}")).json()["substatus"] == "Expired"
        # New referrals get fresh ids, after the restored ones in the listing.
        newer = (await client.post(REFERRALS, json=referral_body(name="Newer"))).json()
        names = [r["name"] for r in (await client.get(REFERRALS)).json()["value"]]
        assert names[-1] == "Newer"
        assert newer["id"] not in {r["id"] for r in before}
    await second.aclose()


async def test_reset_is_persisted(tmp_path: Path, pc_keys: SandboxKeys) -> None:
    path = tmp_path / "pc.sqlite"
    first = build(path, pc_keys)
    async with connect(first) as client:
        await client.post("/control/referrals/incoming", json={"kind": "co-sell"})
        assert len(first.store) == 2
        await client.post("/control/reset")
    await first.aclose()
    second = build(path, pc_keys)
    assert len(second.store) == 0
    await second.aclose()


def test_a_file_that_is_not_a_sandbox_database_is_refused(
    tmp_path: Path, pc_keys: SandboxKeys
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(
        SandboxDataError, match=r"cannot use .*notes\.txt as the sandbox's --data file"
    ):
        build(path, pc_keys)


async def test_a_seeded_restart_draws_new_ids_and_etags(
    tmp_path: Path, pc_keys: SandboxKeys
) -> None:
    path = tmp_path / "pc.sqlite"
    seen_etags: set[str] = set()
    ids: list[str] = []
    for _ in range(3):
        sandbox = build(path, pc_keys, seed=1)
        async with connect(sandbox) as client:
            client.headers["Authorization"] = f"Bearer {await user_token(client, sandbox)}"
            created = (await client.post(REFERRALS, json=referral_body())).json()
            ids.append(created["id"])
            seen_etags.add(created["eTag"])
            for referral_id in ids:
                patched = await client.patch(
                    f"{REFERRALS}/{referral_id}",
                    json=[{"op": "replace", "path": "/details/notes", "value": f"n{len(ids)}"}],
                )
                assert patched.headers["ETag"] not in seen_etags
                seen_etags.add(patched.headers["ETag"])
        await sandbox.aclose()
    assert len(set(ids)) == 3
    final = build(path, pc_keys, seed=1)
    assert [r["id"] for r in final.store.referrals()] == ids
    await final.aclose()
