"""`cosell serve` end to end: a subprocess against the sandboxes served on loopback.

The Partner Center sandbox delivers its signed webhooks to the serve process over loopback
(registered with `cosell webhooks register`); the pollers run every second. The tests run in
order on one deployment: readiness, both directions syncing, refusals (forged signature,
2 MiB body), a kill in the middle of a burst of changes and a restart that loses nothing, and
a graceful stop on SIGTERM.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cosell.clock import SystemClock
from cosell.server.console.auth import Role, set_password
from cosell.store import Store, SyncStatus
from cosell.store import tables as t

SRC = Path(__file__).resolve().parents[3] / "src"
START_TIMEOUT = 30.0  # seconds for a subprocess to print its startup line (imports, DBOS)
SYNC_TIMEOUT = 20.0  # seconds for a change to sync: webhooks are instant, the poller runs every 1 s
WEBHOOK_PATH = "/webhooks/partner-center"

T = TypeVar("T")


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "HOME": str(Path.home()), **extra}


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(
        target=lambda: box.append(proc.stdout.readline() if proc.stdout else "")
    )
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        raise AssertionError(f"no startup line within {timeout} s (exit status {proc.poll()})")
    return box[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = SYNC_TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)  # a real process on the other side: poll, briefly


@dataclass
class Deployment:
    directory: Path
    pc: dict[str, Any]
    sf: dict[str, Any]
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    runs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.directory / f"serve-{len(self.runs)}.log"
        self.runs.append(log)
        with log.open("w") as errors:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cosell.cli",
                    "serve",
                    "--config",
                    "cosell.toml",
                    "--port",
                    str(self.port),
                ],
                cwd=self.directory,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        line = json.loads(_first_line(self.proc, START_TIMEOUT))
        assert line == {"url": self.url, "webhook_url": self.url + WEBHOOK_PATH}

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def log(self) -> str:
        return "".join(path.read_text() for path in self.runs)

    def store(self) -> Store:
        return Store.open(f"sqlite:///{self.directory / 'cosell.db'}", clock=SystemClock())

    def inbox(self) -> list[tuple[str, bool]]:
        with self.store() as store, store.engine.connect() as connection:
            rows = connection.execute(sa.select(t.inbox.c.key, t.inbox.c.completed_at))
            return [(str(key), done is not None) for key, done in rows]

    def pc_token(self) -> str:
        # The first (consented, MFA) refresh token: the sandbox keeps a used refresh token
        # valid, so this leaves the service's rotated one alone.
        response = httpx.post(
            self.pc["token_endpoint_v2"],
            data={
                "grant_type": "refresh_token",
                "client_id": self.pc["client_id"],
                "client_secret": self.pc["client_secret"],
                "refresh_token": self.pc["refresh_token"],
                "scope": "https://api.partner.microsoft.com/.default",
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def referral(self, referral_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.pc['referrals_api']}/{referral_id}",
            headers={"Authorization": f"Bearer {self.pc_token()}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("serve")
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--json", "--seed", "7"]
    command += ["--pc-port", "0", "--sf-port", "0", "--write-config", "cosell.toml"]
    sandbox_log = (directory / "sandbox.log").open("w")
    sandboxes = subprocess.Popen(
        command, cwd=directory, env=_env(), stdout=subprocess.PIPE, stderr=sandbox_log, text=True
    )
    port = _free_port()
    public_url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    env = _env(COSELL_SYNC__POLL_INTERVAL_SECONDS="1", COSELL_SERVER__PUBLIC_URL=public_url)
    deployment: Deployment | None = None
    try:
        info = json.loads(_first_line(sandboxes, START_TIMEOUT))
        deployment = Deployment(directory, info["partner_center"], info["salesforce"], port, env)
        registered = subprocess.run(
            [sys.executable, "-m", "cosell.cli", "webhooks", "register", "--config", "cosell.toml"],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert registered.returncode == 0, registered.stdout + registered.stderr
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


def _incoming_cosell(pc: dict[str, Any], name: str) -> str:
    response = httpx.post(
        f"{pc['base_url']}/control/referrals/incoming",
        json={"kind": "co-sell", "name": name},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _seller(sf: dict[str, Any], method: str, path: str, fields: dict[str, Any]) -> httpx.Response:
    response = httpx.request(
        method, f"{sf['base_url']}/control/records/{path}?as=seller", json=fields, timeout=10
    )
    assert response.status_code in (201, 204), response.text
    return response


def _share_opportunity(sf: dict[str, Any], name: str) -> str:
    account = _seller(sf, "POST", "Account", {"Name": f"{name} Inc", "BillingCountry": "US"})
    opportunity = _seller(
        sf,
        "POST",
        "Opportunity",
        {
            "Name": name,
            "AccountId": account.json()["id"],
            "StageName": "Qualification",
            "CloseDate": "2026-06-30",
            "Amount": 25000,
            "CurrencyIsoCode": "USD",
            "Sync_with_Partner_Center__c": True,
        },
    )
    return str(opportunity.json()["id"])


def _samples(text: str) -> dict[str, float]:
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def _synced_record(deployment: Deployment, referral_id: str) -> str | None:
    with deployment.store() as store:
        link = store.link_for_referral(referral_id)
    if link is None or link.record_id is None or link.sync_status != SyncStatus.SYNCED:
        return None
    return link.record_id


def _deal_value(deployment: Deployment, referral_id: str) -> float:
    return float(deployment.referral(referral_id)["details"]["dealValue"])


def test_ready_when_the_database_tokens_and_registration_check_out(
    deployment: Deployment,
) -> None:
    assert httpx.get(f"{deployment.url}/healthz", timeout=10).json() == {"status": "ok"}
    response = httpx.get(f"{deployment.url}/readyz", timeout=20)
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {
        "database",
        "partner_center_token",
        "salesforce_token",
        "token_health",
        "webhook_registration",
        "sync",
    }


def test_a_cosell_referral_arrives_by_webhook_and_becomes_an_opportunity(
    deployment: Deployment,
) -> None:
    referral_id = _incoming_cosell(deployment.pc, "Contoso - Azure migration")
    record_id = wait_for("the opportunity", lambda: _synced_record(deployment, referral_id))
    assert (f"referral:{referral_id}", True) in deployment.inbox()  # delivered by the webhook
    opportunity = httpx.get(
        f"{deployment.sf['base_url']}/control/records/Opportunity/{record_id}", timeout=10
    ).json()
    assert opportunity["Referral_Identifier__c"] == referral_id
    metrics = httpx.get(f"{deployment.url}/metrics", timeout=10).text
    assert 'cosell_notifications_received_total{event="referral-created"' in metrics
    assert 'cosell_links{status="Synced"}' in metrics
    samples = _samples(metrics)
    assert samples['cosell_reconciles_total{result="created"}'] >= 1
    assert samples['cosell_api_calls_total{api="partner_center"}'] >= 1
    assert samples['cosell_api_calls_total{api="salesforce"}'] >= 1
    assert samples["cosell_sync_lag_seconds_count"] >= 1  # the referral's webhook carried a time
    assert "cosell_queue_depth" in samples


def test_a_sellers_edit_in_salesforce_reaches_partner_center_by_the_poller(
    deployment: Deployment,
) -> None:
    opportunity = _share_opportunity(deployment.sf, "Litware - SAP on Azure")

    def referral_of_opportunity() -> str | None:
        with deployment.store() as store:
            link = store.link_for_record("Opportunity", opportunity)
        return link.referral_id if link and link.sync_status == SyncStatus.SYNCED else None

    referral_id = wait_for("the shared referral", referral_of_opportunity)
    _seller(deployment.sf, "PATCH", f"Opportunity/{opportunity}", {"Amount": 61000})
    wait_for("the new deal value", lambda: _deal_value(deployment, referral_id) == 61000)


def _parked_co_sell(deployment: Deployment, name: str) -> tuple[str, str, Any]:
    """An opportunity asking Microsoft for help without a solution or a contact, once parked:
    (account id, opportunity id, its link)."""
    account = _seller(
        deployment.sf, "POST", "Account", {"Name": f"{name} Inc", "BillingCountry": "US"}
    )
    opportunity = _seller(
        deployment.sf,
        "POST",
        "Opportunity",
        {
            "Name": name,
            "AccountId": account.json()["id"],
            "StageName": "Qualification",
            "CloseDate": "2026-06-30",
            "Amount": 25000,
            "CurrencyIsoCode": "USD",
            "Sync_with_Partner_Center__c": True,
            "How_can_Microsoft_help__c": "Proof of concept or demo",
        },
    ).json()["id"]

    def parked() -> Any:
        with deployment.store() as store:
            link = store.link_for_record("Opportunity", opportunity)
        if link is None or link.sync_status != SyncStatus.ERROR:
            return None
        return link

    link = wait_for("the deal parked", parked)
    assert "at least one Microsoft Solution" in (link.last_error or "")
    assert "a customer contact" in (link.last_error or "")
    return str(account.json()["id"]), str(opportunity), link


def test_a_parked_deal_syncs_once_the_seller_adds_the_solution_and_contact_it_asks_for(
    deployment: Deployment,
) -> None:
    account, opportunity, parked = _parked_co_sell(deployment, "Contoso - PoC")
    assert parked.retry_at is not None
    # What the message says to do, and nothing else: two child records, no edit, no command.
    _seller(
        deployment.sf,
        "POST",
        "Microsoft_Solution__c",
        {
            "Opportunity__c": opportunity,
            "Name": "Azure PoC",
            "Solution_Id__c": "SOL-POC",
            "Solution_Type__c": "Name",
        },
    )
    contact = _seller(
        deployment.sf,
        "POST",
        "Contact",
        {"AccountId": account, "FirstName": "Ana", "LastName": "Customer", "Email": "a@x.test"},
    ).json()["id"]
    _seller(
        deployment.sf,
        "POST",
        "OpportunityContactRole",
        {"OpportunityId": opportunity, "ContactId": contact, "IsPrimary": True},
    )

    def shared() -> Any:
        with deployment.store() as store:
            link = store.link_for_record("Opportunity", opportunity)
        return link if link and link.sync_status == SyncStatus.SYNCED else None

    synced = wait_for("the referral shared with Microsoft", shared)
    assert synced.referral_id is not None
    assert synced.last_synced_at is not None
    assert synced.last_synced_at < parked.retry_at  # the change healed it, not the schedule
    referral = deployment.referral(synced.referral_id)
    assert referral["inviteContext"]["assistanceRequestCode"] == "ProofOfConceptOrDemo"


def test_cosell_retry_is_carried_out_by_the_running_service(deployment: Deployment) -> None:
    _, opportunity, parked = _parked_co_sell(deployment, "Fabrikam - PoC")
    result = subprocess.run(
        [sys.executable, "-m", "cosell.cli", "retry", opportunity, "--by", "erin"],
        cwd=deployment.directory,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Queued 1 deal(s) for a retry: the running `cosell serve`" in result.stdout
    with deployment.store() as store:
        requested = store.audit(parked.id, limit=5)
    assert requested[0].message == "retry requested by erin (cosell retry)"

    def retried() -> Any:
        # The service's poll reconciled it (still unfixed): its schedule moved on past the request.
        with deployment.store() as store:
            link = store.link_for_record("Opportunity", opportunity)
        return link if link and link.retries == 1 and link.retry_at is not None else None

    link = wait_for("the service's retry", retried)
    assert link.retry_at > requested[0].at
    assert link.sync_status == SyncStatus.ERROR


def test_the_console_signs_in_shows_a_synced_deal_and_retries_it_through_the_engine(
    deployment: Deployment,
) -> None:
    referral_id = _incoming_cosell(deployment.pc, "Adatum - console retry")
    record_id = wait_for("the opportunity", lambda: _synced_record(deployment, referral_id))
    password = "console e2e password"
    # The serve process runs in the directory, so this is its default users file; it is read
    # when it changes, without a restart.
    set_password(deployment.directory / "cosell-console.json", "admin", password, Role.OPERATOR)
    with httpx.Client(base_url=deployment.url, timeout=20) as client:
        assert client.get("/console/").status_code == 303
        form = client.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        signed_in = client.post(
            "/console/login",
            data={"username": "admin", "password": password, "login_token": token.group(1)},
        )
        assert signed_in.status_code == 303, signed_in.text
        found = client.get("/console/deals", params={"q": referral_id}).text
        link = re.search(r'href="/console/deals/([0-9a-f]{32})"', found)
        assert link is not None, found
        page = client.get(f"/console/deals/{link.group(1)}").text
        assert "Adatum - console retry" in page
        assert f"{deployment.sf['base_url']}/lightning/r/Opportunity/{record_id}/view" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        retried = client.post(f"/console/deals/{link.group(1)}/retry", data={"csrf": csrf.group(1)})
        assert retried.status_code == 303
        assert "notice=" in retried.headers["location"]
    with deployment.store() as store:
        newest = store.audit(link.group(1), limit=5)
    requested = [e for e in newest if e.message == "retry requested from the console by admin"]
    assert requested, [e.message for e in newest]
    assert requested[0].details["by"] == "admin"
    assert isinstance(requested[0].details["enqueued"], bool)  # the engine's own answer


def test_a_forged_webhook_is_refused_401_and_nothing_is_enqueued(deployment: Deployment) -> None:
    body = json.dumps(
        {
            "EventName": "referral-updated",
            "ResourceUri": f"{deployment.pc['referrals_api']}/forged-referral",
            "ResourceName": "referral",
        }
    ).encode()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    response = httpx.post(
        f"{deployment.url}{WEBHOOK_PATH}",
        content=body,
        headers={
            "Authorization": "Signature " + base64.b64encode(signature).decode(),
            "X-MS-Certificate-Url": deployment.pc["certificate_url"],
            "X-MS-Signature-Algorithm": "rsa-sha256",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert response.status_code == 401
    metrics = _samples(httpx.get(f"{deployment.url}/metrics", timeout=10).text)
    assert metrics['cosell_notifications_rejected_total{reason="invalid_signature"}'] == 1
    # Not "the inbox is unchanged": the sandbox may still deliver an earlier test's real event.
    assert not any(key == "referral:forged-referral" for key, _ in deployment.inbox())
    assert "forged-referral" not in deployment.log()  # refused callbacks are logged without body


def test_a_2_mib_body_is_refused_413_before_it_is_read(deployment: Deployment) -> None:
    two_mib = 2 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", deployment.port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {two_mib}\r\n\r\n"
            ).encode()
            + b" " * 65536  # a first slice only: the answer must come without the rest
        )
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    try:
        response = httpx.post(
            f"{deployment.url}{WEBHOOK_PATH}",
            content=b" " * two_mib,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    except httpx.TransportError:
        pass  # the server may close before the client has written it all; that is a refusal
    else:
        assert response.status_code == 413


def test_a_restart_in_the_middle_of_a_burst_loses_nothing(deployment: Deployment) -> None:
    opportunity = _share_opportunity(deployment.sf, "Fabrikam - Data platform")

    def linked_referral() -> str | None:
        with deployment.store() as store:
            link = store.link_for_record("Opportunity", opportunity)
        return link.referral_id if link and link.sync_status == SyncStatus.SYNCED else None

    shared = wait_for("the shared referral", linked_referral)
    incoming: list[str] = []
    for n in range(6):
        incoming.append(_incoming_cosell(deployment.pc, f"Burst {n} - Teams rollout"))
        if n == 2:
            _seller(deployment.sf, "PATCH", f"Opportunity/{opportunity}", {"Amount": 77000})
            deployment.kill()  # a crash in the middle of the burst (SIGKILL: nothing runs)
    deployment.start()
    for referral_id in incoming:
        wait_for(
            f"the opportunity of {referral_id}", lambda r=referral_id: _synced_record(deployment, r)
        )
    wait_for("the edit made before the crash", lambda: _deal_value(deployment, shared) == 77000)


def test_sigterm_stops_gracefully(deployment: Deployment) -> None:
    assert deployment.proc is not None
    deployment.proc.send_signal(signal.SIGTERM)
    assert deployment.proc.wait(timeout=20) == 0
    log = deployment.runs[-1].read_text()
    assert '"event": "engine.stopped"' in log
    for line in log.splitlines():
        json.loads(line)  # every line is one JSON object
    assert deployment.pc["client_secret"] not in log
    assert os.path.exists(deployment.directory / "cosell.db")
