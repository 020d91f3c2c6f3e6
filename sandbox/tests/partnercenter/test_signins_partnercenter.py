"""The sandbox's interactive sign-ins over HTTP: PKCE, single use, redirect URI, MFA, control."""

from __future__ import annotations

import httpx

from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
from cosell_sandbox.signins import pkce_challenge

VERIFIER = "v" * 64
REFERRALS = "https://api.partner.microsoft.com/.default"
REDIRECT = "http://127.0.0.1:5123"


async def _approved_code(client: httpx.AsyncClient, info: dict[str, str], *, mfa: bool) -> str:
    page = await client.get(
        f"/{info['tenant_id']}/oauth2/v2.0/authorize",
        params={
            "client_id": info["client_id"],
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": f"{REFERRALS} offline_access",
            "state": "s1",
            "code_challenge": pkce_challenge(VERIFIER),
            "code_challenge_method": "S256",
        },
    )
    assert page.status_code == 200, page.text
    sign_in = page.headers["x-sandbox-sign-in"]
    approved = await client.post(f"/control/identity/sign-ins/{sign_in}/approve", json={"mfa": mfa})
    assert approved.status_code == 200, approved.text
    redirect = httpx.URL(approved.json()["redirect"]["url"])
    assert redirect.params["state"] == "s1"
    return redirect.params["code"]


async def _redeem(
    client: httpx.AsyncClient, info: dict[str, str], code: str, **overrides: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": info["client_id"],
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        **overrides,
    }
    return await client.post(f"/{info['tenant_id']}/oauth2/v2.0/token", data=form)


async def test_a_code_needs_its_verifier_and_redirect_and_is_used_once(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    info = sandbox.info()
    code = await _approved_code(client, info, mfa=True)
    wrong = await _redeem(client, info, code, code_verifier="w" * 64)
    assert wrong.json()["error_codes"] == [501481]
    elsewhere = await _redeem(client, info, code, redirect_uri="http://127.0.0.1:9999")
    assert elsewhere.json()["error_codes"] == [50011]
    redeemed = await _redeem(client, info, code)
    assert redeemed.status_code == 200, redeemed.text
    assert "refresh_token" in redeemed.json()
    again = await _redeem(client, info, code)
    assert again.json()["error_codes"] == [54005]


async def test_mfa_decides_whether_the_referrals_api_answers(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    info = sandbox.info()
    for mfa, status in ((True, 200), (False, 401)):
        token = (await _redeem(client, info, await _approved_code(client, info, mfa=mfa))).json()
        listed = await client.get(
            "/v1.0/engagements/referrals",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert listed.status_code == status, listed.text
        if status == 401:
            assert listed.json()["error"]["code"] == "900421"
            # The refresh token of a sign-in without MFA yields no MFA either.
            refreshed = await client.post(
                f"/{info['tenant_id']}/oauth2/v2.0/token",
                data={
                    "grant_type": "refresh_token",
                    "client_id": info["client_id"],
                    "client_secret": info["client_secret"],
                    "refresh_token": token["refresh_token"],
                    "scope": REFERRALS,
                },
            )
            again = await client.get(
                "/v1.0/engagements/referrals",
                headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
            )
            assert again.json()["error"]["code"] == "900421"


async def test_the_authorize_endpoint_refuses_what_it_cannot_serve(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    info = sandbox.info()
    base = {
        "client_id": info["client_id"],
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": REFERRALS,
        "code_challenge": pkce_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    for change, code in (
        ({"redirect_uri": "https://evil.example/cb"}, 50011),
        ({"code_challenge": ""}, 501491),
        ({"code_challenge_method": "plain"}, 501491),
        ({"response_type": "token"}, 700054),
    ):
        answer = await client.get(
            f"/{info['tenant_id']}/oauth2/v2.0/authorize", params={**base, **change}
        )
        assert answer.status_code == 400, change
        assert answer.json()["error_codes"] == [code], change
    unknown = await client.post("/control/identity/sign-ins/nope/approve")
    assert unknown.status_code == 404


async def _web_sign_in(client: httpx.AsyncClient, info: dict[str, str]) -> str:
    """A web app's OpenID Connect sign-in (no resource scope); the authorize page's action."""
    page = await client.get(
        f"/{info['tenant_id']}/oauth2/v2.0/authorize",
        params={
            "client_id": info["client_id"],
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "openid profile email",
            "state": "s2",
            "nonce": "n2",
            "code_challenge": pkce_challenge(VERIFIER),
            "code_challenge_method": "S256",
        },
    )
    assert page.status_code == 200, page.text
    assert 'id="sandbox-approve"' in page.text
    return page.text.split('<form method="post" action="', 1)[1].split('"', 1)[0]


async def test_a_web_sign_in_yields_an_id_token_with_app_roles_and_the_nonce(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    import jwt

    info = sandbox.info()
    roles = await client.put("/control/identity/user", json={"app_roles": ["Console.Viewer"]})
    assert roles.status_code == 200, roles.text
    action = await _web_sign_in(client, info)
    answered = await client.post(action, data={"as": "user"})
    assert answered.status_code == 303
    redirect = httpx.URL(answered.headers["location"])
    assert redirect.params["state"] == "s2"
    token = await _redeem(client, info, redirect.params["code"], scope="openid profile email")
    assert token.status_code == 200, token.text
    claims = jwt.decode(token.json()["id_token"], options={"verify_signature": False})
    assert claims["tid"] == info["tenant_id"]
    assert claims["iss"] == f"https://login.microsoftonline.com/{info['tenant_id']}/v2.0"
    assert claims["aud"] == info["client_id"]
    assert claims["nonce"] == "n2"
    assert claims["roles"] == ["Console.Viewer"]
    access = jwt.decode(token.json()["access_token"], options={"verify_signature": False})
    assert access["aud"] == "https://graph.microsoft.com"  # openid alone: a Graph token


async def test_a_user_of_another_tenant_gets_an_id_token_naming_that_tenant(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    import jwt

    from cosell_sandbox.partnercenter.identity import OTHER_TENANT_ID

    info = sandbox.info()
    answered = await client.post(await _web_sign_in(client, info), data={"as": "other-tenant"})
    code = httpx.URL(answered.headers["location"]).params["code"]
    token = (await _redeem(client, info, code, scope="openid profile")).json()
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["tid"] == OTHER_TENANT_ID
    assert claims["iss"] == f"https://login.microsoftonline.com/{OTHER_TENANT_ID}/v2.0"


async def test_cancelling_on_the_authorize_page_sends_access_denied_back(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    info = sandbox.info()
    answered = await client.post(await _web_sign_in(client, info), data={"as": "deny"})
    redirect = httpx.URL(answered.headers["location"])
    assert redirect.params["error"] == "access_denied"
    assert redirect.params["state"] == "s2"
    refused = await client.post(await _web_sign_in(client, info), data={"as": "maybe"})
    assert refused.status_code == 400
    bad_roles = await client.put("/control/identity/user", json={"app_roles": "Console.Viewer"})
    assert bad_roles.status_code == 400
