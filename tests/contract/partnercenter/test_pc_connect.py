"""`cosell connect partner-center` end to end against the sandbox's Entra ID and Referrals API.

The sandbox's control API plays the admin (approve with or without MFA, deny, expire); the
test drives the browser: it opens the authorize URL cosell printed and follows the redirect
to cosell's loopback listener over a real socket. Device code polls wait on the shared
ManualClock, so nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from pc_contract_kit import BASE, PartnerCenter
from typer.testing import CliRunner

from cosell.cli import app
from cosell.commands.connect import ConnectError, connect_partner_center
from cosell.config import Settings
from cosell.partnercenter.auth import FileRefreshTokenStore, RefreshTokenProvider
from cosell.partnercenter.errors import SignInRefusedError
from cosell.partnercenter.signin import SignInError


def settings_for(pc: PartnerCenter, token_file: Path) -> Settings:
    return Settings.model_validate(
        {
            "partner_center": {
                "tenant_id": pc.info["tenant_id"],
                "client_id": pc.info["client_id"],
                "client_secret": pc.info["client_secret"],
                "referrals_url": pc.info["referrals_api"],
                "refresh_token_file": str(token_file),
            }
        }
    )


class Admin:
    """The person at the sign-in page, played through the sandbox's control API."""

    def __init__(self, pc: PartnerCenter) -> None:
        self.pc = pc
        self.lines: list[str] = []
        self.urls: list[str] = []
        self.prompted = asyncio.Event()

    def echo(self, line: str) -> None:
        self.lines.append(line)
        self.prompted.set()

    def open_url(self, url: str) -> bool:
        self.urls.append(url)
        return True

    async def sign_in(self) -> dict[str, Any]:
        await self.prompted.wait()
        listed = await self.pc.control("GET", "/identity/sign-ins")
        return dict(listed["value"][-1])

    async def act_on_device_code(self, action: str, body: Any = None) -> None:
        sign_in = await self.sign_in()
        assert sign_in["user_code"] in self.lines[0]  # the code is shown to the user
        await self.pc.control("POST", f"/identity/sign-ins/{sign_in['user_code']}/{action}", body)

    async def act_in_browser(self, action: str, body: Any = None) -> httpx.Response:
        await self.prompted.wait()
        page = await self.pc.http.get(self.urls[-1])
        assert page.status_code == 200, page.text
        answer = await self.pc.control(
            "POST", f"/identity/sign-ins/{page.headers['x-sandbox-sign-in']}/{action}", body
        )
        redirect = answer["redirect"]
        assert redirect["method"] == "POST"  # response_mode=form_post: no code in a URL
        async with httpx.AsyncClient() as browser:  # the loopback redirect, over a real socket
            return await browser.post(redirect["url"], data=redirect["form"])


async def connect(pc: PartnerCenter, admin: Admin, token_file: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("device_code", True)
    return await connect_partner_center(
        settings_for(pc, token_file),
        clock=pc.clock,
        echo=admin.echo,
        open_url=admin.open_url,
        http=pc.http,
        msal_http_client=pc.credentials.http_client,
        **kwargs,
    )


async def test_device_code_approved_with_mfa_stores_a_working_token(
    pc: PartnerCenter, tmp_path: Path
) -> None:
    admin = Admin(pc)
    token_file = tmp_path / "pc-token.json"
    user = asyncio.create_task(admin.act_on_device_code("approve", {"mfa": True}))
    record = await connect(pc, admin, token_file)
    await user
    assert (record.grant, record.mfa, record.user) == ("device_code", True, pc.info["username"])
    assert set(pc.clock.sleeps) <= {5}  # any wait between polls is `interval` seconds
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "Signed in to Partner Center" in admin.lines[-1]

    # The service's provider reads the stored token, works, and keeps the rotation.
    store = FileRefreshTokenStore(token_file, clock=pc.clock)
    first = store.load()
    pc.clock.advance(3600)
    page = await pc.referrals_client(
        RefreshTokenProvider(pc.credentials, store, clock=pc.clock)
    ).list_page()
    assert page.referrals == ()
    assert store.load() != first
    assert store.record().rotated_at == pc.clock.now()
    assert store.record().grant == "device_code"


async def test_device_code_denied(pc: PartnerCenter, tmp_path: Path) -> None:
    admin = Admin(pc)
    user = asyncio.create_task(admin.act_on_device_code("deny"))
    with pytest.raises(SignInError, match="declined"):
        await connect(pc, admin, tmp_path / "t.json")
    await user
    assert not (tmp_path / "t.json").exists()


async def test_device_code_expired(pc: PartnerCenter, tmp_path: Path) -> None:
    admin = Admin(pc)
    user = asyncio.create_task(admin.act_on_device_code("expire"))
    with pytest.raises(SignInError, match=r"expired.*--device-code"):
        await connect(pc, admin, tmp_path / "t.json")
    await user


async def test_device_code_nobody_signs_in_within_the_wait(
    pc: PartnerCenter, tmp_path: Path
) -> None:
    admin = Admin(pc)
    with pytest.raises(SignInError, match="no sign-in within 60 seconds"):
        await connect(pc, admin, tmp_path / "t.json", wait_seconds=60)
    assert pc.clock.sleeps == [5] * 12  # polled every `interval` seconds, on the clock


async def test_approved_without_mfa_is_refused_with_what_to_do(
    pc: PartnerCenter, tmp_path: Path
) -> None:
    admin = Admin(pc)
    user = asyncio.create_task(admin.act_on_device_code("approve", {"mfa": False}))
    with pytest.raises(ConnectError, match="without multi-factor authentication") as caught:
        await connect(pc, admin, tmp_path / "t.json")
    await user
    assert "900421" in str(caught.value)
    assert "Conditional Access" in str(caught.value)
    assert not (tmp_path / "t.json").exists()


async def test_browser_sign_in_with_pkce_on_the_loopback_redirect(
    pc: PartnerCenter, tmp_path: Path
) -> None:
    admin = Admin(pc)
    browser = asyncio.create_task(admin.act_in_browser("approve", {"mfa": True}))
    record = await connect(pc, admin, tmp_path / "t.json", device_code=False)
    landing = await browser
    assert landing.status_code == 200
    assert "go back to the terminal" in landing.text
    assert (record.grant, record.mfa) == ("authorization_code", True)
    url = httpx.URL(admin.urls[0])
    assert str(url).startswith(f"{BASE}/{pc.info['tenant_id']}/oauth2/v2.0/authorize")
    assert url.params["code_challenge_method"] == "S256"
    assert url.params["redirect_uri"].startswith("http://127.0.0.1:")
    assert admin.urls[0] in admin.lines[0]  # the URL is printed too
    assert FileRefreshTokenStore(tmp_path / "t.json").load()


async def test_browser_sign_in_denied(pc: PartnerCenter, tmp_path: Path) -> None:
    admin = Admin(pc)
    browser = asyncio.create_task(admin.act_in_browser("deny"))
    with pytest.raises(SignInError, match="access_denied"):
        await connect(pc, admin, tmp_path / "t.json", device_code=False)
    assert (await browser).status_code == 200


async def test_user_without_the_referrals_role_is_refused(
    pc: PartnerCenter, tmp_path: Path
) -> None:
    await pc.control("PUT", "/identity/user", {"referrals_role": "none"})
    admin = Admin(pc)
    user = asyncio.create_task(admin.act_on_device_code("approve"))
    with pytest.raises(ConnectError, match="Referrals admin role"):
        await connect(pc, admin, tmp_path / "t.json")
    await user
    assert not (tmp_path / "t.json").exists()


async def test_app_without_the_delegated_permission_is_refused(
    pc: PartnerCenter, tmp_path: Path
) -> None:
    await pc.control("PUT", "/identity/app", {"delegated_permission": False})
    admin = Admin(pc)
    user = asyncio.create_task(admin.act_on_device_code("approve"))
    with pytest.raises(SignInError, match="lacks the delegated Partner Center permission"):
        await connect(pc, admin, tmp_path / "t.json")
    await user


async def test_a_revoked_or_idle_refresh_token_says_to_connect_again(
    pc: PartnerCenter, tmp_path: Path
) -> None:
    admin = Admin(pc)
    user = asyncio.create_task(admin.act_on_device_code("approve"))
    await connect(pc, admin, tmp_path / "t.json")
    await user
    store = FileRefreshTokenStore(tmp_path / "t.json", clock=pc.clock)

    # Unused for longer than Entra's 90-day inactivity window: expired.
    pc.clock.advance(91 * 86400)
    idle = RefreshTokenProvider(pc.credentials, store, clock=pc.clock)
    with pytest.raises(SignInRefusedError) as caught:
        await idle.token()
    assert str(caught.value) == "Partner Center sign-in expired: run cosell connect partner-center"
    assert caught.value.code == "invalid_grant"
    assert "inactivity" in str(caught.value.__cause__)

    # Revoked through the control API (as after a password reset).
    admin = Admin(pc)
    user = asyncio.create_task(admin.act_on_device_code("approve"))
    await connect(pc, admin, tmp_path / "t.json")
    await user
    await pc.control("POST", "/identity/revoke-refresh-tokens")
    revoked = RefreshTokenProvider(pc.credentials, store, clock=pc.clock)
    with pytest.raises(SignInRefusedError, match="sign-in expired") as caught:
        await revoked.token()
    assert "revoked" in str(caught.value.__cause__)


def test_the_command_says_what_to_set_first(tmp_path: Path) -> None:
    config = tmp_path / "cosell.toml"
    config.write_text("[partner_center]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["connect", "partner-center", "--config", str(config)])
    assert result.exit_code == 1
    assert "partner_center.tenant_id, partner_center.client_id not set" in result.output
    assert "Connect your accounts" in result.output


async def test_a_revoked_sign_in_stops_the_calls_until_connected_again(pc: PartnerCenter) -> None:
    await pc.control("POST", "/identity/revoke-refresh-tokens")
    tokens_before = pc.sandbox.stats.count("/{tenant}/oauth2/v2.0/token")
    for _ in range(20):  # a burst of reconciles, all within the minute
        with pytest.raises(SignInRefusedError) as caught:
            await pc.referrals.list_page(top=1)
        assert str(caught.value) == (
            "Partner Center sign-in expired: run cosell connect partner-center"
        )
    # One failing token request for the whole burst; the Referrals API was not called.
    assert pc.sandbox.stats.count("/{tenant}/oauth2/v2.0/token") - tokens_before == 1
    assert pc.sandbox.stats.count("/v1.0/engagements/referrals") == 0
    # A new sign-in stored (as cosell connect does): the next call uses it at once.
    pc.store.save((await pc.control("POST", "/identity/consent"))["refresh_token"])
    page = await pc.referrals.list_page(top=1)
    assert page.referrals == ()
    assert pc.sandbox.stats.count("/v1.0/engagements/referrals") == 1
