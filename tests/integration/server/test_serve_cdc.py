"""`cosell serve` with `[salesforce] changes = "cdc"` against `cosell sandbox up`, as processes.

The scheduled poll runs once an hour here, so only the change stream can carry a seller's
change to Partner Center within the test's bound.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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

from cosell.sync.engine import streamstate


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("serve-cdc")
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--json", "--seed", "8"]
    command += ["--pc-port", "0", "--sf-port", "0", "--write-config", "cosell.toml"]
    sandbox_log = (directory / "sandbox.log").open("w")
    sandboxes = subprocess.Popen(
        command, cwd=directory, env=_env(), stdout=subprocess.PIPE, stderr=sandbox_log, text=True
    )
    env = _env(COSELL_SYNC__POLL_INTERVAL_SECONDS="3600")
    deployment: Deployment | None = None
    try:
        info = json.loads(_first_line(sandboxes, START_TIMEOUT))
        assert info["salesforce"]["pubsub_endpoint"]
        assert 'changes = "cdc"' in (directory / "cosell.toml").read_text()
        deployment = Deployment(
            directory, info["partner_center"], info["salesforce"], _free_port(), env
        )
        deployment.start()
        yield deployment
    finally:
        if deployment is not None and deployment.proc is not None:
            if deployment.proc.poll() is None:
                deployment.proc.kill()
            deployment.proc.wait(timeout=10)
            if deployment.proc.stdout:
                deployment.proc.stdout.close()
        sandboxes.send_signal(signal.SIGINT)
        sandboxes.wait(timeout=20)
        if sandboxes.stdout:
            sandboxes.stdout.close()
        sandbox_log.close()


def _live(deployment: Deployment) -> bool:
    with deployment.store() as store:
        state = streamstate.stream_state(store)
    return state is not None and state.state == "live"


def _referral_of(deployment: Deployment, opportunity_id: str) -> str | None:
    response = httpx.get(
        f"{deployment.sf['base_url']}/control/records/Opportunity/{opportunity_id}", timeout=10
    )
    value: Any = response.json().get("Referral_Identifier__c")
    return str(value) if value else None


def test_seller_changes_reach_partner_center_through_the_stream(served: Deployment) -> None:
    wait_for("the change stream live", lambda: _live(served))
    opportunity_id = _share_opportunity(served.sf, "Streamed Deal")
    referral_id = wait_for("the referral created", lambda: _referral_of(served, opportunity_id))
    _seller(served.sf, "PATCH", f"Opportunity/{opportunity_id}", {"Amount": 43210})
    wait_for("the deal value", lambda: _deal_value(served, referral_id) == 43210)
    metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
    assert "cosell_salesforce_change_stream_up 1.0" in metrics
    status = subprocess.run(
        [sys.executable, "-m", "cosell.cli", "status", "--config", "cosell.toml", "--json"],
        cwd=served.directory,
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(status.stdout)["salesforce_changes"]["source"] == "cdc", status.stderr


def test_a_stream_outage_shows_and_the_stream_comes_back(served: Deployment) -> None:
    wait_for("the change stream live", lambda: _live(served))
    cdc = f"{served.sf['base_url']}/control/cdc"
    httpx.put(cdc, json={"down": True}, timeout=10).raise_for_status()
    try:
        wait_for("the stream down", lambda: not _live(served))
        metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
        assert "cosell_salesforce_change_stream_up 0.0" in metrics
    finally:
        httpx.put(cdc, json={"down": False}, timeout=10).raise_for_status()
    # It subscribes again after a backoff (1 s, then doubling, capped) and carries changes.
    wait_for("the change stream live again", lambda: _live(served), timeout=60)
    opportunity_id = _share_opportunity(served.sf, "After the outage")
    wait_for("the referral created", lambda: _referral_of(served, opportunity_id))
