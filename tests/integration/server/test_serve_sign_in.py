"""`cosell serve` while the Partner Center sign-in is revoked, then connected again.

A running service with changes flowing: the admin's refresh token is revoked (as a password
reset does). cosell must stop calling Partner Center at once (at most one failing call a
minute), pause Partner Center's sync with one clear health error (`/readyz`) instead of parking
each deal, and, once a new sign-in is stored in the token file (what `cosell connect partner-center` writes), carry every change made meanwhile
to Partner Center, with nothing lost.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_serve_e2e import (
    START_TIMEOUT,
    Deployment,
    _deal_value,
    _env,
    _first_line,
    _free_port,
    _seller,
    _share_opportunity,
    wait_for,
)

from cosell.store import SyncStatus
from cosell.tokenstore import FileTokenStore

EXPIRED = "Partner Center sign-in expired: run cosell connect partner-center"
TOKEN_ROUTE = "/{tenant}/oauth2/v2.0/token"
# A Salesforce poll tick: the opportunities, then their solutions, contact roles, team
# members and accounts (the related change sources), one query each.
QUERIES_PER_TICK = 5


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    import json

    directory = tmp_path_factory.mktemp("serve-sign-in")
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--json", "--seed", "8"]
    command += ["--pc-port", "0", "--sf-port", "0", "--write-config", "cosell.toml"]
    sandboxes = subprocess.Popen(
        command,
        cwd=directory,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = _free_port()
    env = _env(
        COSELL_SYNC__POLL_INTERVAL_SECONDS="1",
        COSELL_SYNC__SWEEP_INTERVAL_SECONDS="2",
        # The Salesforce poller's queries are this test's clock (and what would show a retry
        # storm), so Salesforce changes are polled here rather than streamed (CDC).
        COSELL_SALESFORCE__CHANGES="poll",
        COSELL_PARTNER_CENTER__REFRESH_TOKEN_FILE="pc-token.json",
    )
    deployment: Deployment | None = None
    try:
        info = json.loads(_first_line(sandboxes, START_TIMEOUT))
        deployment = Deployment(directory, info["partner_center"], info["salesforce"], port, env)
        deployment.start()
        yield deployment
    finally:
        if deployment is not None and deployment.proc is not None:
            if deployment.proc.poll() is None:
                deployment.proc.send_signal(signal.SIGTERM)
            deployment.proc.wait(timeout=30)
            if deployment.proc.stdout:
                deployment.proc.stdout.close()
        sandboxes.send_signal(signal.SIGINT)
        sandboxes.wait(timeout=20)
        if sandboxes.stdout:
            sandboxes.stdout.close()


def _token_calls(pc: dict[str, Any]) -> int:
    stats = httpx.get(f"{pc['control_api']}/stats", timeout=10).json()
    return sum(c["count"] for c in stats["calls"] if c["route"] == TOKEN_ROUTE)


def _salesforce_queries(sf: dict[str, Any]) -> int:
    stats = httpx.get(f"{sf['base_url']}/control/stats", timeout=10).json()
    return sum(c["count"] for c in stats["calls"] if "query" in c["route"])


def _control(pc: dict[str, Any], path: str) -> Any:
    response = httpx.post(f"{pc['control_api']}{path}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_revoked_sign_in_pauses_partner_center_and_catches_up_after_connect(
    deployment: Deployment,
) -> None:
    pc, sf = deployment.pc, deployment.sf
    secrets = [pc["client_secret"], pc["refresh_token"], pc["password"], sf["consumer_secret"]]
    secrets += [sf["password"], sf["security_token"], sf["refresh_token"]]
    first = _share_opportunity(sf, "Northwind - Fabric")
    second = _share_opportunity(sf, "Tailspin - AKS")

    def referral_of(record_id: str) -> str | None:
        with deployment.store() as store:
            link = store.link_for_record("Opportunity", record_id)
        return link.referral_id if link and link.sync_status == SyncStatus.SYNCED else None

    first_referral = wait_for("the first referral", lambda: referral_of(first))
    second_referral = wait_for("the second referral", lambda: referral_of(second))

    # The admin's password is reset: every refresh token and access token is revoked.
    _control(pc, "/identity/revoke-refresh-tokens")
    _control(pc, "/identity/revoke-access-tokens")
    calls_before = _token_calls(pc)
    revoked_at = time.monotonic()
    _seller(sf, "PATCH", f"Opportunity/{first}", {"Amount": 71000})
    _seller(sf, "PATCH", f"Opportunity/{second}", {"Amount": 72000})

    def unready() -> str | None:
        response = httpx.get(f"{deployment.url}/readyz", timeout=10)
        detail = str(response.json()["checks"].get("sync", {}).get("detail", ""))
        return detail if response.status_code == 503 and EXPIRED in detail else None

    def record_error(record_id: str) -> object:
        record = httpx.get(
            f"{sf['base_url']}/control/records/Opportunity/{record_id}", timeout=10
        ).json()
        return record.get("Partner_Center_Sync_Error__c")

    # The sign-in is the connection's problem: Partner Center's sync pauses, /readyz says why
    # and what to run, and no deal is parked for it.
    assert "cosell connect partner-center" in wait_for("/readyz to say why", unready)
    with deployment.store() as store:
        assert [
            link.last_error
            for link in store.links(limit=100)
            if link.sync_status == SyncStatus.ERROR
        ] == []
    assert record_error(first) is None
    assert record_error(second) is None
    # Changes keep coming while the sign-in is refused; sweeps and polls keep running.
    _seller(sf, "PATCH", f"Opportunity/{first}", {"Amount": 81000})
    # Let the service work while refused: the Salesforce poller notices the edit and several
    # more poll ticks pass (each a SOQL query), so a retry storm would show in the count.
    queries = _salesforce_queries(sf)
    ticks = 5 * QUERIES_PER_TICK
    wait_for("five more poll ticks", lambda: _salesforce_queries(sf) >= queries + ticks or None)
    elapsed_minutes = (time.monotonic() - revoked_at) / 60
    failing = _token_calls(pc) - calls_before
    assert failing <= 1 + int(elapsed_minutes), (
        f"{failing} token calls in {elapsed_minutes:.2f} min"
    )

    # An admin signs in again (what `cosell connect partner-center` stores).
    new_token = _control(pc, "/identity/consent")["refresh_token"]
    pc["refresh_token"] = new_token  # the test reads referrals with it too
    FileTokenStore(deployment.directory / "pc-token.json").connect(
        new_token, grant="device_code", mfa=True, user=pc["username"]
    )
    wait_for("the first deal value", lambda: _deal_value(deployment, first_referral) == 81000)
    wait_for("the second deal value", lambda: _deal_value(deployment, second_referral) == 72000)
    assert wait_for("the first link in sync", lambda: referral_of(first)) == first_referral
    assert wait_for("the second link in sync", lambda: referral_of(second)) == second_referral

    # The service's log tells the story without a secret in it.
    secrets += [new_token, str(FileTokenStore(deployment.directory / "pc-token.json").load())]
    log = deployment.log()
    assert '"event": "partnercenter.sign_in_refused"' in log
    assert [secret for secret in secrets if secret in log] == []
