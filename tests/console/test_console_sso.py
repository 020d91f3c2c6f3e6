"""Sign-in with Microsoft Entra ID against the Partner Center sandbox's identity endpoints.

The console's relying party talks to the sandbox in process (`httpx.ASGITransport`); the
browser's part (following the authorize redirect, pressing the sandbox's sign-in button,
coming back to the callback) is played with a second client on the sandbox app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from console_kit import (
    OPERATOR_PASSWORD,
    PC_SANDBOX,
    Deals,
    Notified,
    csrf_of,
    sign_in,
    sso_console_app,
    sso_options,
)
from starlette.testclient import TestClient

from cosell.clock import ManualClock
from cosell.store import Store
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxOptions
from cosell_sandbox.partnercenter.identity import OTHER_TENANT_ID

CONSOLE = "http://127.0.0.1:8080"  # the sandbox app only redirects to loopback URLs


@pytest.fixture
def sandbox(clock: ManualClock) -> PartnerCenterSandbox:
    return PartnerCenterSandbox(base_url=PC_SANDBOX, clock=clock, options=SandboxOptions(seed=5))


@pytest.fixture
def entra(sandbox: PartnerCenterSandbox) -> Iterator[TestClient]:
    """The browser's side of Entra: the sandbox's authorize page and its buttons."""
    with TestClient(sandbox.app, base_url=PC_SANDBOX, follow_redirects=False) as client:
        yield client


def _console(
    store: Store,
    clock: ManualClock,
    users_file: Path,
    notified: Notified,
    sandbox: PartnerCenterSandbox,
    **roles: Any,
) -> TestClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app))
    sso = sso_options(sandbox, http, clock, **roles)
    return TestClient(
        sso_console_app(store, clock, users_file, notified, sso),
        base_url=CONSOLE,
        follow_redirects=False,
    )


@pytest.fixture
def console(
    store: Store,
    clock: ManualClock,
    users_file: Path,
    notified: Notified,
    sandbox: PartnerCenterSandbox,
) -> Iterator[TestClient]:
    with _console(store, clock, users_file, notified, sandbox) as client:
        yield client


def entra_answer(
    console: TestClient, entra: TestClient, choice: str, next_path: str = ""
) -> httpx.Response:
    """Start a sign-in at the console, answer it on the sandbox's page, follow the callback."""
    start = console.get("/console/oidc/start" + (f"?next={next_path}" if next_path else ""))
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{PC_SANDBOX}/")
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["openid profile email"]
    assert query["redirect_uri"] == [f"{CONSOLE}/console/oidc/callback"]
    page = entra.get(authorize)
    assert page.status_code == 200, page.text
    assert 'id="sandbox-approve"' in page.text
    action = page.text.split('<form method="post" action="', 1)[1].split('"', 1)[0]
    answer = entra.post(action, data={"as": choice})
    assert answer.status_code == 303, answer.text
    callback = answer.headers["location"]
    assert callback.startswith(f"{CONSOLE}/console/oidc/callback?")
    return console.get(callback.removeprefix(CONSOLE))


def test_the_sign_in_page_offers_microsoft_beside_the_password(console: TestClient) -> None:
    page = console.get("/console/login?next=%2Fconsole%2Fdeals")
    assert 'id="sso"' in page.text
    assert "Sign in with Microsoft" in page.text
    assert "/console/oidc/start?next=%2Fconsole%2Fdeals" in page.text
    assert 'id="password"' in page.text
    sign_in(console, "admin", OPERATOR_PASSWORD)  # passwords still work beside it
    assert console.get("/console/").status_code == 200


def test_an_operator_by_app_role_signs_in_end_to_end_and_can_act(
    store: Store,
    clock: ManualClock,
    users_file: Path,
    notified: Notified,
    sandbox: PartnerCenterSandbox,
    entra: TestClient,
    deals: Deals,
) -> None:
    sandbox.identity.app_roles = ("Console.Operator",)
    with _console(store, clock, users_file, notified, sandbox) as console:
        done = entra_answer(console, entra, "user", "%2Fconsole%2Fdeals")
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/console/deals"
        assert "cosell_console_oidc" not in console.cookies  # the one-time state is spent
        overview = console.get("/console/")
        assert overview.status_code == 200
        upn = sandbox.identity.info()["username"]
        assert f"{upn} · operator" in overview.text
        deal = console.get(f"/console/deals/{deals.failing.id}")
        retried = console.post(
            f"/console/deals/{deals.failing.id}/retry", data={"csrf": csrf_of(deal.text)}
        )
        assert retried.status_code == 303
        assert store.audit(deals.failing.id, limit=1)[0].details["by"] == upn


def test_a_viewer_by_name_signs_in_and_cannot_act(
    store: Store,
    clock: ManualClock,
    users_file: Path,
    notified: Notified,
    sandbox: PartnerCenterSandbox,
    entra: TestClient,
    deals: Deals,
) -> None:
    upn = sandbox.identity.info()["username"]
    with _console(store, clock, users_file, notified, sandbox, viewers=(upn.upper(),)) as console:
        assert entra_answer(console, entra, "user").status_code == 303
        deal = console.get(f"/console/deals/{deals.failing.id}")
        assert f"{upn} · viewer" in deal.text
        refused = console.post(
            f"/console/deals/{deals.failing.id}/retry", data={"csrf": csrf_of(deal.text)}
        )
        assert refused.status_code == 403
        assert notified.keys == []


def test_an_account_of_another_tenant_is_refused_with_a_clear_page(
    console: TestClient, sandbox: PartnerCenterSandbox, entra: TestClient
) -> None:
    sandbox.identity.app_roles = ("Console.Operator",)  # even with the role, in its own tenant
    refused = entra_answer(console, entra, "other-tenant")
    assert refused.status_code == 403
    assert "Account of another tenant" in refused.text
    assert OTHER_TENANT_ID in refused.text
    assert sandbox.identity.tenant_id in refused.text
    assert "cosell_console" not in console.cookies
    assert console.get("/console/").status_code == 303  # still signed out


def test_an_account_without_a_role_is_refused_and_told_which_role_to_ask_for(
    console: TestClient, entra: TestClient
) -> None:
    refused = entra_answer(console, entra, "user")
    assert refused.status_code == 403
    assert "has no role in the cosell console" in refused.text
    assert "Console.Viewer" in refused.text
    assert console.get("/console/").status_code == 303


def test_a_cancelled_sign_in_says_so(console: TestClient, entra: TestClient) -> None:
    cancelled = entra_answer(console, entra, "deny")
    assert cancelled.status_code == 400
    assert "Sign-in was not completed" in cancelled.text
    assert "declined" in cancelled.text


def test_a_callback_not_started_here_is_refused(
    console: TestClient, sandbox: PartnerCenterSandbox, entra: TestClient
) -> None:
    sandbox.identity.app_roles = ("Console.Operator",)
    start = console.get("/console/oidc/start")
    console.cookies.clear()  # another browser: no state cookie
    page = entra.get(start.headers["location"])
    action = page.text.split('<form method="post" action="', 1)[1].split('"', 1)[0]
    callback = entra.post(action, data={"as": "user"}).headers["location"]
    refused = console.get(callback.removeprefix(CONSOLE))
    assert refused.status_code == 400
    assert "Sign-in expired" in refused.text
    assert "cosell_console" not in console.cookies


def test_a_forged_state_is_refused(console: TestClient) -> None:
    console.get("/console/oidc/start")
    refused = console.get("/console/oidc/callback?code=x&state=forged")
    assert refused.status_code == 400
    assert "Sign-in expired" in refused.text


def test_without_sso_the_start_says_how_to_set_it_up(client: TestClient) -> None:
    answer = client.get("/console/oidc/start")
    assert answer.status_code == 404
    assert "[console] oidc_tenant" in answer.text
    assert 'id="sso"' not in client.get("/console/login").text


def test_serve_refuses_a_half_set_up_sign_in_with_microsoft(clock: ManualClock) -> None:
    from cosell.commands.serve import console_sso
    from cosell.config import ConfigError, Settings

    settings = Settings.model_validate({"console": {"oidc_tenant": "contoso.onmicrosoft.com"}})
    with pytest.raises(ConfigError, match="needs oidc_client_id, oidc_client_secret too"):
        console_sso(settings, http=httpx.AsyncClient(), clock=clock)
    assert console_sso(Settings(), http=httpx.AsyncClient(), clock=clock) is None
