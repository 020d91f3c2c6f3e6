"""`cosell connect salesforce` end to end against the Salesforce sandbox, and the JWT keys.

The sandbox's control API plays the admin; the test plays the browser, following the
redirect to cosell's loopback listener over a real socket. Device flow polls wait on the
ManualClock.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from sf_harness import BASE, make_client
from typer.testing import CliRunner

from cosell.cli import app
from cosell.clock import ManualClock
from cosell.commands.connect import connect_salesforce
from cosell.config import Settings
from cosell.salesforce.auth import JwtBearerFlow
from cosell.salesforce.errors import AuthenticationError, SignInRefusedError
from cosell.salesforce.signin import SignInError
from cosell.tokenstore import FileTokenStore


def settings_for(info: dict[str, str], token_file: Path) -> Settings:
    return Settings.model_validate(
        {
            "salesforce": {
                "auth": "refresh_token",
                "consumer_key": info["consumer_key"],
                "consumer_secret": info["consumer_secret"],
                "login_url": info["login_url"],
                "refresh_token_file": str(token_file),
            }
        }
    )


class Admin:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.lines: list[str] = []
        self.urls: list[str] = []
        self.prompted = asyncio.Event()

    def echo(self, line: str) -> None:
        self.lines.append(line)
        self.prompted.set()

    def open_url(self, url: str) -> bool:
        self.urls.append(url)
        return False  # no browser here: the URL is printed

    async def control(self, method: str, path: str) -> Any:
        response = await self.http.request(method, f"{BASE}/control{path}")
        assert response.status_code == 200, response.text
        return response.json()

    async def device(self, action: str) -> None:
        await self.prompted.wait()
        sign_in = (await self.control("GET", "/identity/sign-ins"))["value"][-1]
        assert sign_in["user_code"] in self.lines[0]
        await self.control("POST", f"/identity/sign-ins/{sign_in['user_code']}/{action}")

    async def browser(self, action: str) -> httpx.Response:
        await self.prompted.wait()
        page = await self.http.get(self.urls[-1])
        assert page.status_code == 200, page.text
        answer = await self.control(
            "POST", f"/identity/sign-ins/{page.headers['x-sandbox-sign-in']}/{action}"
        )
        assert answer["redirect"]["method"] == "GET"
        async with httpx.AsyncClient() as browser:  # the loopback redirect, over a real socket
            return await browser.get(answer["redirect"]["url"])


async def connect(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, admin: Admin, path: Path
) -> Any:
    return await connect_salesforce(
        settings_for(info, path),
        device_code=False,
        clock=clock,
        echo=admin.echo,
        open_url=admin.open_url,
        http=http,
    )


async def test_web_server_flow_with_pkce_stores_a_working_refresh_token(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, tmp_path: Path, sandbox: Any
) -> None:
    admin = Admin(http)
    token_file = tmp_path / "sf.json"
    browser = asyncio.create_task(admin.browser("approve"))
    record = await connect(http, info, clock, admin, token_file)
    assert (await browser).status_code == 200
    assert (record.grant, record.user) == ("web_server", info["username"])
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    url = httpx.URL(admin.urls[0])
    assert url.path == "/services/oauth2/authorize"
    assert url.params["code_challenge_method"] == "S256"
    assert admin.urls[0] in admin.lines[0]  # no browser: the URL is printed
    assert "Signed in to Salesforce" in admin.lines[-1]

    # cosell's refresh_token auth reads the stored token and works.
    settings = settings_for(info, token_file)
    assert settings.salesforce.missing() == []
    client = make_client(http, settings.salesforce.auth_flow(clock=clock), clock)
    assert "DailyApiRequests" in await client.limits()

    # Revoked on request (/services/oauth2/revoke): each call says to connect again, and the
    # token endpoint is asked once for the whole burst (no retry storm).
    stored = FileTokenStore(token_file).load()
    revoke = await http.post(f"{BASE}/services/oauth2/revoke", data={"token": stored})
    assert revoke.status_code == 200
    client = make_client(http, settings.salesforce.auth_flow(clock=clock), clock)
    before = sum(n for (_, route, _), n in sandbox.stats.items() if "oauth2/token" in route)
    for _ in range(10):
        with pytest.raises(SignInRefusedError) as caught:
            await client.limits()
        assert str(caught.value) == "Salesforce sign-in expired: run cosell connect salesforce"
    after = sum(n for (_, route, _), n in sandbox.stats.items() if "oauth2/token" in route)
    assert after - before == 1

    # Signed in again: the same running client picks the new token up from the file.
    admin = Admin(http)
    browser = asyncio.create_task(admin.browser("approve"))
    await connect(http, info, clock, admin, token_file)
    await browser
    assert "DailyApiRequests" in await client.limits()


async def test_web_server_flow_denied(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, tmp_path: Path
) -> None:
    admin = Admin(http)
    browser = asyncio.create_task(admin.browser("deny"))
    with pytest.raises(SignInError, match="access_denied"):
        await connect(http, info, clock, admin, tmp_path / "sf.json")
    await browser
    assert not (tmp_path / "sf.json").exists()


async def test_device_flow_approved_and_denied(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, tmp_path: Path
) -> None:
    settings = settings_for(info, tmp_path / "sf.json")
    admin = Admin(http)
    user = asyncio.create_task(admin.device("approve"))
    record = await connect_salesforce(
        settings, device_code=True, clock=clock, echo=admin.echo, open_url=admin.open_url, http=http
    )
    await user
    assert (record.grant, record.user) == ("device", info["username"])

    admin = Admin(http)
    user = asyncio.create_task(admin.device("deny"))
    with pytest.raises(SignInError, match="denied"):
        await connect_salesforce(
            settings,
            device_code=True,
            clock=clock,
            echo=admin.echo,
            open_url=admin.open_url,
            http=http,
        )
    await user


async def test_device_flow_nobody_signs_in(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, tmp_path: Path
) -> None:
    admin = Admin(http)
    with pytest.raises(SignInError, match="no sign-in within 30 seconds"):
        await connect_salesforce(
            settings_for(info, tmp_path / "sf.json"),
            device_code=True,
            clock=clock,
            echo=admin.echo,
            open_url=admin.open_url,
            http=http,
            wait_seconds=30,
        )
    assert clock.sleeps == [5] * 6


async def test_keys_made_by_cosell_sign_in_with_jwt_once_uploaded(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["salesforce", "keys", "--out", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    key = tmp_path / "keys" / "cosell-jwt-private-key.pem"
    certificate = tmp_path / "keys" / "cosell-jwt-certificate.crt"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "Upload the certificate" in result.output

    flow = JwtBearerFlow(
        info["consumer_key"], info["username"], key.read_text(), login_url=BASE, clock=clock
    )
    with pytest.raises(AuthenticationError):  # not uploaded yet
        await make_client(http, flow, clock).limits()
    uploaded = await http.put(
        f"{BASE}/control/identity/certificate", content=certificate.read_bytes()
    )
    assert uploaded.status_code == 200, uploaded.text
    assert "DailyApiRequests" in await make_client(http, flow, clock).limits()

    again = CliRunner().invoke(app, ["salesforce", "keys", "--out", str(tmp_path / "keys")])
    assert again.exit_code == 1
    assert "already exists" in again.output
