"""Webhooks API registration and signed callbacks: the client against the sandbox (spec §4)."""

from __future__ import annotations

import pytest
from pc_contract_kit import BASE, PartnerCenter, new_referral

from cosell.partnercenter.errors import (
    CertificateUrlRejectedError,
    InvalidSignatureError,
    RegistrationExistsError,
)
from cosell.partnercenter.models import (
    Consent,
    ReferralChanges,
    ReferralDetails,
    ReferralId,
    ReferralType,
)

HOOK = "https://hooks.contoso.example/partner-center"
REFERRAL_EVENTS = [
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
]


async def test_events_list_names_the_referral_events(pc: PartnerCenter) -> None:
    events = await pc.webhooks.events()
    assert set(REFERRAL_EVENTS) <= set(events)
    assert "test-created" in events


async def test_register_show_conflict_and_overwrite(pc: PartnerCenter) -> None:
    assert await pc.webhooks.show() is None
    registration = await pc.webhooks.register(HOOK, REFERRAL_EVENTS)
    assert registration.webhook_url == HOOK
    assert set(registration.webhook_events) == set(REFERRAL_EVENTS)
    shown = await pc.webhooks.show()
    assert shown is not None
    assert shown.webhook_url == HOOK
    with pytest.raises(RegistrationExistsError, match="--overwrite"):
        await pc.webhooks.register(HOOK + "/v2", ["referral-created"])
    replaced = await pc.webhooks.register(HOOK + "/v2", ["referral-created"], overwrite=True)
    assert replaced.webhook_url == HOOK + "/v2"
    updated = await pc.webhooks.update(HOOK, ["referral-updated"])
    assert updated.webhook_events == ("referral-updated",)
    shown = await pc.webhooks.show()
    assert shown is not None
    assert shown.webhook_events == ("referral-updated",)


async def test_validation_events_are_delivered_verified_and_throttled(pc: PartnerCenter) -> None:
    await pc.webhooks.register(HOOK, ["test-created", *REFERRAL_EVENTS])
    first = await pc.webhooks.send_validation_event()
    await pc.sandbox.webhooks.drain()
    verifier = await pc.verifier()
    event = await verifier.verify(pc.callbacks[0].body, pc.callbacks[0].headers)
    assert event.event_name == "test-created"
    result = await pc.webhooks.validation_result(first)
    assert result.correlation_id == first
    assert result.results
    assert result.results[0].system_error is not True
    await pc.webhooks.send_validation_event()
    pc.clock.sleeps.clear()
    third = await pc.webhooks.send_validation_event()  # 2 per minute: waits Retry-After
    assert third not in (first,)
    assert pc.clock.sleeps
    assert sum(pc.clock.sleeps) >= 1


async def test_referral_events_are_signed_and_verified(pc: PartnerCenter) -> None:
    await pc.webhooks.register(HOOK, REFERRAL_EVENTS)
    created = await pc.referrals.create(
        new_referral(
            type=ReferralType.SHARED,
            consent=Consent(consent_to_share_referral_with_microsoft_sellers=True),
            invite_context={"assistanceRequestCode": "ProofOfConceptOrDemo"},
            details=ReferralDetails.model_validate(
                {
                    "dealValue": 25000,
                    "currency": "USD",
                    "closingDateTime": "2026-06-30T00:00:00Z",
                    "requirements": {"solutions": [{"id": "SOL-34104-EBB", "type": "Name"}]},
                }
            ),
        )
    )
    assert created.id is not None
    await pc.referrals.update(created.id, ReferralChanges(notes="changed"), etag=created.e_tag)
    await pc.control("POST", f"/referrals/{created.id}/microsoft/accept")
    await pc.sandbox.webhooks.drain()
    verifier = await pc.verifier()
    events = [await verifier.verify(c.body, c.headers) for c in pc.callbacks]
    names = {e.event_name for e in events}
    assert {
        "referral-created",
        "referral-updated",
        "related-referral-created",
        "related-referral-updated",
    } <= names
    ours = [e for e in events if e.event_name.startswith("referral-")]
    assert {e.referral_id for e in ours} == {created.id}
    for event in events:
        assert event.resource_name == "referral"
        assert event.referral_id is not None
        # a hint only: the referral is re-read with our own credentials and base URL
        assert (
            await pc.referrals.get(ReferralId(event.referral_id))
        ).engagement_id == created.engagement_id
    assert verifier.downloads == 1  # the certificate was fetched once and cached


async def test_tampered_callbacks_and_the_default_allow_list_are_refused(pc: PartnerCenter) -> None:
    await pc.webhooks.register(HOOK, REFERRAL_EVENTS)
    await pc.referrals.create(new_referral())
    await pc.sandbox.webhooks.drain()
    callback = pc.callbacks[0]
    verifier = await pc.verifier()
    await verifier.verify(callback.body, callback.headers)
    with pytest.raises(InvalidSignatureError):
        await verifier.verify(
            callback.body.replace(b"referral-created", b"referral-updated"), callback.headers
        )
    production = await pc.verifier(
        allowed_certificate_urls=["https://3psostorageacct.blob.core.windows.net/cert/"]
    )
    with pytest.raises(CertificateUrlRejectedError):
        await production.verify(callback.body, callback.headers)
    assert callback.headers["x-ms-certificate-url"].startswith(f"{BASE}/cert/")


async def test_signature_in_x_ms_signature_when_registered_so(pc: PartnerCenter) -> None:
    await pc.webhooks.register(HOOK, REFERRAL_EVENTS, signature_in_ms_signature_header=True)
    await pc.referrals.create(new_referral())
    await pc.sandbox.webhooks.drain()
    callback = pc.callbacks[0]
    assert "x-ms-signature" in callback.headers
    assert "authorization" not in callback.headers
    event = await (await pc.verifier()).verify(callback.body, callback.headers)
    assert event.event_name == "referral-created"
