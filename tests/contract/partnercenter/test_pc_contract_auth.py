"""Tokens against the sandbox's Entra ID, and each API refusing the wrong ones (spec §1.1)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pc_contract_kit import PartnerCenter, new_referral

from cosell.clock import ManualClock
from cosell.partnercenter.auth import (
    REFERRALS_SCOPE,
    WEBHOOKS_SCOPE,
    ClientCredentialsProvider,
    InMemoryRefreshTokenStore,
    PasswordProvider,
    RefreshTokenProvider,
)
from cosell.partnercenter.errors import (
    AccessDeniedError,
    AuthConfigurationError,
    AuthenticationError,
    MfaRequiredError,
    SignInRefusedError,
)
from cosell.partnercenter.webhooks import WebhooksClient


async def _statuses(pc: PartnerCenter, status: int) -> int:
    stats = await pc.control("GET", "/stats")
    return sum(c["count"] for c in stats["calls"] if c["status"] == status)


async def test_refresh_token_is_rotated_and_the_new_one_works(pc: PartnerCenter) -> None:
    initial = pc.store.load()
    await pc.referrals.list_page()
    rotated = pc.store.load()
    assert rotated is not None
    assert rotated != initial
    other = RefreshTokenProvider(pc.credentials, InMemoryRefreshTokenStore(rotated), clock=pc.clock)
    client = pc.referrals_client(other)
    await client.list_page()


async def test_tokens_are_renewed_before_they_expire_on_the_clock(pc: PartnerCenter) -> None:
    await pc.control("PUT", "/identity/token-lifetime", {"seconds": 120})
    await pc.referrals.list_page()
    assert pc.user_tokens.acquisitions == 1
    pc.clock.advance(50)
    await pc.referrals.list_page()
    assert pc.user_tokens.acquisitions == 1  # cached
    pc.clock.advance(20)  # 70 s: past lifetime minus the margin (half of 120 s)
    await pc.referrals.list_page()
    assert pc.user_tokens.acquisitions == 2
    assert await _statuses(pc, 401) == 0  # never sent an expired token


async def test_an_expired_token_is_refused_then_refreshed_once(pc: PartnerCenter) -> None:
    frozen = ManualClock()  # the provider's clock stands still: it believes its token is fresh
    tokens = RefreshTokenProvider(pc.credentials, pc.store, clock=frozen)
    client = pc.referrals_client(tokens)
    await client.list_page()
    pc.clock.advance(3601)  # the sandbox's clock moves past the token's expiry
    created = await client.create(new_referral())
    assert created.id is not None
    assert tokens.acquisitions == 2
    assert await _statuses(pc, 401) == 1


async def test_revoked_access_tokens_are_replaced(pc: PartnerCenter) -> None:
    await pc.referrals.list_page()
    await pc.control("POST", "/identity/revoke-access-tokens")
    await pc.referrals.list_page()
    assert pc.user_tokens.acquisitions == 2


async def test_revoked_refresh_token_asks_for_consent_again(pc: PartnerCenter) -> None:
    await pc.control("POST", "/identity/revoke-refresh-tokens")
    with pytest.raises(AuthConfigurationError, match="cosell connect partner-center") as caught:
        await pc.referrals.list_page()
    assert caught.value.code == "invalid_grant"
    assert str(pc.store.load()) not in str(caught.value)


async def test_webhooks_audience_token_is_refused_by_the_referrals_api(pc: PartnerCenter) -> None:
    tokens = RefreshTokenProvider(
        pc.credentials, pc.store, scopes=(WEBHOOKS_SCOPE,), clock=pc.clock
    )
    with pytest.raises(AuthenticationError, match="audience"):
        await pc.referrals_client(tokens).list_page()
    assert tokens.acquisitions == 2  # refreshed once, refused again: terminal


async def test_app_only_token_is_refused_by_the_referrals_api(pc: PartnerCenter) -> None:
    tokens = ClientCredentialsProvider(pc.credentials, scopes=(REFERRALS_SCOPE,), clock=pc.clock)
    with pytest.raises(AccessDeniedError, match="App\\+User"):
        await pc.referrals_client(tokens).list_page()


async def test_referrals_audience_token_is_refused_by_the_webhooks_api(pc: PartnerCenter) -> None:
    client = WebhooksClient(
        pc.http, pc.user_tokens, base_url=pc.info["webhooks_api"], clock=pc.clock
    )
    with pytest.raises(AuthenticationError, match="audience"):
        await client.events()


async def test_user_token_for_the_webhooks_api_is_accepted(pc: PartnerCenter) -> None:
    tokens = RefreshTokenProvider(
        pc.credentials, pc.store, scopes=(WEBHOOKS_SCOPE,), clock=pc.clock
    )
    client = WebhooksClient(pc.http, tokens, base_url=pc.info["webhooks_api"], clock=pc.clock)
    assert "referral-created" in await client.events()


async def test_password_grant(pc: PartnerCenter) -> None:
    tokens = PasswordProvider(
        pc.credentials, pc.info["username"], pc.info["password"], clock=pc.clock
    )
    # The password grant has no second factor: Partner Center refuses its tokens (900421),
    # at once and without a second token (a new one would carry no MFA either).
    with pytest.raises(SignInRefusedError, match=r"no MFA.*cosell connect partner-center") as got:
        await pc.referrals_client(tokens).list_page()
    assert isinstance(got.value.__cause__, MfaRequiredError)
    assert tokens.acquisitions == 1


async def test_wrong_password(pc: PartnerCenter) -> None:
    tokens = PasswordProvider(
        pc.credentials, pc.info["username"], "not-the-password", clock=pc.clock
    )
    with pytest.raises(AuthConfigurationError, match="username or password") as caught:
        await tokens.token()
    assert "not-the-password" not in str(caught.value)


async def test_wrong_client_secret(pc: PartnerCenter) -> None:
    credentials = replace(pc.credentials, client_secret="wrong-secret-value")
    tokens = ClientCredentialsProvider(credentials, clock=pc.clock)
    with pytest.raises(AuthConfigurationError, match="client secret") as caught:
        await tokens.token()
    assert caught.value.code == "invalid_client"
    assert "wrong-secret-value" not in str(caught.value)


async def test_unknown_tenant(pc: PartnerCenter) -> None:
    credentials = replace(pc.credentials, tenant_id="00000000-0000-0000-0000-000000000000")
    tokens = ClientCredentialsProvider(credentials, clock=pc.clock)
    with pytest.raises(AuthConfigurationError, match="tenant"):
        await tokens.token()
