"""Referrals API, the 2026 fields: deal types, partner role, FY26 solution area and play,
marketplace intent (spec §9.2 to 9.4), the client against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from pc_contract_kit import PartnerCenter, new_referral
from pydantic import ValidationError

from cosell.partnercenter.errors import InvalidRequestError
from cosell.partnercenter.models import (
    AssistanceRequestCode,
    Consent,
    CustomerMarketplaceIntent,
    DealType,
    InviteContext,
    PartnerRole,
    Referral,
    ReferralChanges,
    ReferralDetails,
    ReferralType,
    SolutionArea,
    SolutionPlay,
)

FY26: dict[str, Any] = {
    "partner_role": PartnerRole.DEPLOYMENT_SERVICES,
    "solution_area": SolutionArea.CLOUD_AND_AI_PLATFORMS,
    "solution_play": SolutionPlay.MIGRATE_AND_MODERNIZE_YOUR_ESTATE,
    "customer_marketplace_intent": CustomerMarketplaceIntent.HAVE_NOT_DECIDED,
}


def _details(*, services: bool) -> ReferralDetails:
    requirements: dict[str, Any] = {"solutions": [{"id": "SOL-34104-EBB", "type": "Name"}]}
    if services:
        requirements["services"] = [{"id": "DeploymentOrMigration"}]
    return ReferralDetails.model_validate(
        {
            "dealValue": 25000,
            "currency": "USD",
            "closingDateTime": "2026-06-30T00:00:00Z",
            "requirements": requirements,
        }
    )


def _of_type(deal_type: DealType, *, services: bool = False, **fields: Any) -> dict[str, Any]:
    help_code = AssistanceRequestCode.PROOF_OF_CONCEPT_OR_DEMO if deal_type.asks_help else None
    return {
        "type": ReferralType.SHARED if deal_type.consent else ReferralType.INDEPENDENT,
        "consent": Consent(consent_to_share_referral_with_microsoft_sellers=deal_type.consent),
        "invite_context": None
        if help_code is None
        else InviteContext(assistance_request_code=help_code),
        "details": _details(services=services),
        **fields,
    }


@pytest.mark.parametrize("deal_type", list(DealType))
async def test_each_deal_type_is_created_and_read_back(
    pc: PartnerCenter, deal_type: DealType
) -> None:
    created = await pc.referrals.create(new_referral(**_of_type(deal_type)))
    assert created.deal_type is deal_type
    assert created.id is not None
    assert (await pc.referrals.get(created.id)).deal_type is deal_type
    assert created.is_shared_with_microsoft is deal_type.consent


async def test_a_services_co_sell_referral_carries_the_fy26_fields(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(
        new_referral(**_of_type(DealType.CO_SELL, services=True, **FY26))
    )
    assert created.is_services_co_sell
    assert created.id is not None
    read = await pc.referrals.get(created.id)
    assert {k: getattr(read, k) for k in FY26} == FY26
    assert read.missing_services_co_sell_fields() == []
    raw = await pc.http.get(
        f"{pc.info['referrals_api']}/{created.id}",
        headers={"Authorization": f"Bearer {await pc.user_tokens.token()}"},
    )
    assert raw.json()["solutionPlay"] == "MigrateAndModernizeYourEstate"  # top level


async def test_the_client_refuses_a_services_co_sell_referral_without_them() -> None:
    with pytest.raises(ValidationError, match="services co-sell referral needs solutionPlay"):
        new_referral(
            **_of_type(
                DealType.CO_SELL,
                services=True,
                **{k: v for k, v in FY26.items() if k != "solution_play"},
            )
        )


async def test_the_service_refuses_a_services_co_sell_referral_without_them(
    pc: PartnerCenter,
) -> None:
    created = await pc.referrals.create(new_referral(**_of_type(DealType.CO_SELL)))
    assert created.id is not None
    services = {"op": "add", "path": "/details/requirements/services", "value": [{"id": "x"}]}
    with pytest.raises(InvalidRequestError) as refused:
        await pc.referrals.patch(created.id, [services], etag=created.e_tag)
    assert refused.value.target == "/partnerRole"
    after = await pc.referrals.get(created.id)
    assert not after.is_services_co_sell


async def test_a_patch_sets_and_changes_the_fields(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(new_referral(**_of_type(DealType.PARTNER_LED)))
    assert created.id is not None
    first = ReferralChanges(**FY26)
    assert first.problems(created) == []
    updated = await pc.referrals.update(created.id, first, etag=created.e_tag, current=created)
    assert updated is not None
    assert {k: getattr(updated, k) for k in FY26} == FY26
    second = ReferralChanges(
        solution_area=SolutionArea.SECURITY,
        solution_play=SolutionPlay.DATA_SECURITY,
        customer_marketplace_intent=CustomerMarketplaceIntent.YES,
    )
    again = await pc.referrals.update(created.id, second, etag=updated.e_tag, current=updated)
    assert again is not None
    assert (again.solution_area, again.solution_play, again.customer_marketplace_intent) == (
        SolutionArea.SECURITY,
        SolutionPlay.DATA_SECURITY,
        CustomerMarketplaceIntent.YES,
    )
    assert again.partner_role is PartnerRole.DEPLOYMENT_SERVICES


async def test_partner_led_turns_co_sell_but_co_sell_never_turns_back(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(new_referral(**_of_type(DealType.PARTNER_LED)))
    assert created.id is not None
    to_co_sell = ReferralChanges(assistance_request_code=AssistanceRequestCode.GENERAL_OR_OTHER)
    assert to_co_sell.problems(created) == []
    co_sell = await pc.referrals.update(created.id, to_co_sell, etag=created.e_tag, current=created)
    assert co_sell is not None
    assert co_sell.deal_type is DealType.CO_SELL
    back = ReferralChanges(assistance_request_code=AssistanceRequestCode.UNKNOWN)
    assert back.problems(co_sell)
    private = ReferralChanges(consent_to_share_referral_with_microsoft_sellers=False)
    assert private.problems(co_sell) == [
        "consent consentToShareReferralWithMicrosoftSellers cannot be withdrawn once given"
    ]


async def test_unknown_taxonomy_values_round_trip(pc: PartnerCenter) -> None:
    newer = {
        "partner_role": PartnerRole("FutureRole"),
        "solution_area": SolutionArea("AreaOfFY27"),
        "solution_play": SolutionPlay("PlayOfFY27"),
        "customer_marketplace_intent": CustomerMarketplaceIntent("Maybe"),
    }
    created = await pc.referrals.create(
        new_referral(**_of_type(DealType.CO_SELL, services=True, **newer))
    )
    assert created.id is not None
    read = await pc.referrals.get(created.id)
    assert {k: getattr(read, k) for k in newer} == newer
    assert not any(getattr(read, k).is_known for k in newer)
    assert read.solution_play == "PlayOfFY27"
    changed = ReferralChanges(solution_play=SolutionPlay("PlayOfFY28"))
    updated = await pc.referrals.update(created.id, changed, etag=read.e_tag, current=read)
    assert updated is not None
    assert updated.solution_play == "PlayOfFY28"
    assert updated.solution_area == "AreaOfFY27"


def test_the_variant_placement_and_a_list_are_read() -> None:
    referral = Referral.model_validate(
        {
            "partnerRole": ["SolutionDesign", "Transaction"],
            "details": {
                "requirements": {
                    "additionalRequirements": {
                        "solutionArea": "security",
                        "solutionPlay": "DataSecurity",
                        "customerMarketplaceIntent": "",
                    }
                }
            },
        }
    )
    assert referral.partner_role is PartnerRole.SOLUTION_DESIGN
    assert referral.solution_area is SolutionArea.SECURITY
    assert referral.solution_play is SolutionPlay.DATA_SECURITY
    assert referral.customer_marketplace_intent is None
