"""Referrals API: the client against the sandbox, to the spec (§2, §3)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from pc_contract_kit import PartnerCenter, new_referral

from cosell.partnercenter.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from cosell.partnercenter.models import (
    AssistanceRequestCode,
    Consent,
    CustomerProfile,
    Member,
    NewReferral,
    Referral,
    ReferralChanges,
    ReferralDetails,
    ReferralDirection,
    ReferralId,
    ReferralStatus,
    ReferralSubstatus,
    ReferralType,
    SolutionTag,
    check_transition,
)

S = ReferralStatus
SS = ReferralSubstatus
SEVEN_DIGITS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


async def incoming(pc: PartnerCenter, kind: str = "co-sell") -> Referral:
    body = await pc.control("POST", "/referrals/incoming", {"kind": kind})
    return await pc.referrals.get(ReferralId(body["id"]))


async def test_create_stores_an_outgoing_active_accepted_referral(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(new_referral())
    assert created.id
    assert created.engagement_id
    assert created.status is S.ACTIVE
    assert created.substatus is SS.ACCEPTED
    assert created.direction is ReferralDirection.OUTGOING
    assert created.external_reference_id == "006000000000001AAA"
    assert created.e_tag is not None
    assert created.e_tag.startswith('"')
    assert created.e_tag.endswith('"')
    assert created.details is not None
    assert created.details.deal_value == Decimal(25000)
    raw = await pc.http.get(
        f"{pc.info['referrals_api']}/{created.id}",
        headers={"Authorization": f"Bearer {await pc.user_tokens.token()}"},
    )
    assert SEVEN_DIGITS.match(raw.json()["createdDateTime"])
    fetched = await pc.referrals.get(created.id)
    assert fetched.e_tag == created.e_tag
    assert fetched.name == created.name


async def test_get_unknown_referral_is_not_found(pc: PartnerCenter) -> None:
    with pytest.raises(NotFoundError, match="404"):
        await pc.referrals.get(ReferralId("00000000-0000-0000-0000-000000000000"))


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        (
            {
                "customer_profile": CustomerProfile.model_validate(
                    {"name": "X", "address": {"country": "ZZ"}}
                )
            },
            "country",
        ),
        (
            {
                "details": ReferralDetails.model_validate(
                    {"dealValue": 1, "currency": "XXQ", "closingDateTime": "2026-06-30T00:00:00Z"}
                )
            },
            "currency",
        ),
    ],
)
async def test_create_refused_by_the_server_names_the_field(
    pc: PartnerCenter, fields: dict[str, object], target: str
) -> None:
    # model_construct skips the client's own checks, to see the server's.
    base = new_referral()
    bad = NewReferral.model_construct(**{**dict(base), **fields})
    with pytest.raises(InvalidRequestError) as caught:
        await pc.referrals.create(bad)
    assert caught.value.target is not None
    assert target in caught.value.target


async def test_list_pages_over_three_pages_and_filters(pc: PartnerCenter) -> None:
    created = []
    for i in range(5):
        created.append(await pc.referrals.create(new_referral(f"Deal {i}")))
        pc.clock.advance(1)  # distinct createdDateTime, for the descending order below
    listed = [r async for r in pc.referrals.list(orderby="createdDateTime asc")]
    assert [r.id for r in listed] == [r.id for r in created]  # page size 2: three pages
    pages = [await pc.referrals.list_page(count=True)]  # the sandbox's page size is 2
    while pages[-1].next_link is not None:
        pages.append(await pc.referrals.list_page(next_link=pages[-1].next_link))
    assert [len(p.referrals) for p in pages] == [2, 2, 1]
    assert all(p.count == 5 for p in pages)
    assert [r.id for p in pages for r in p.referrals] == [r.id for r in created]
    page = await pc.referrals.list_page(filter=f"id eq '{created[3].id}'", count=True)
    assert [r.id for r in page.referrals] == [created[3].id]
    assert page.count == 1
    newest = await pc.referrals.list_page(orderby="createdDateTime desc", top=1, select="id,name")
    assert newest.referrals[0].id == created[-1].id
    assert newest.referrals[0].status is None  # not selected
    outgoing = [
        r
        async for r in pc.referrals.list(
            filter="status eq 'Active' and direction eq 'Outgoing' and customerProfile/address/country eq 'US'"
        )
    ]
    assert len(outgoing) == 5


async def test_update_with_etag_then_stale_etag_conflicts(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(new_referral())
    assert created.id is not None
    changes = ReferralChanges(
        name="Renamed",
        deal_value=Decimal("30000.50"),
        currency="EUR",
        notes="updated notes",
        team_to_add=(Member(first_name="Bo", last_name="Ng", email="bo@partner.example"),),
    )
    updated = await pc.referrals.update(created.id, changes, etag=created.e_tag)
    assert updated is not None
    assert updated.name == "Renamed"
    assert updated.details is not None
    assert updated.details.deal_value == Decimal("30000.50")
    assert updated.details.currency == "EUR"
    assert updated.details.notes == "updated notes"
    assert updated.team[-1].email == "bo@partner.example"
    assert updated.e_tag != created.e_tag
    with pytest.raises(ConflictError) as caught:
        await pc.referrals.update(
            created.id, ReferralChanges(notes="lost update"), etag=created.e_tag
        )
    assert caught.value.status == 412
    assert caught.value.code == "preconditionFailed"
    assert caught.value.target == "ETag"
    assert (
        await pc.referrals.update(
            created.id, ReferralChanges(notes="n2"), etag=updated.e_tag, return_representation=False
        )
        is None
    )
    assert (await pc.referrals.get(created.id)).details.notes == "n2"  # type: ignore[union-attr]
    assert (
        await pc.referrals.update(created.id, ReferralChanges(notes="no etag"), etag=None)
        is not None
    )


async def test_read_only_fields_are_refused(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(
        new_referral(
            type=ReferralType.SHARED,
            consent=Consent(
                consent_to_share_referral_with_microsoft_sellers=True, consent_to_contact=True
            ),
            invite_context={
                "assistanceRequestCode": "ProofOfConceptOrDemo",
                "notes": "help please",
            },
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
    for changes in (
        ReferralChanges(consent_to_share_referral_with_microsoft_sellers=False),
        ReferralChanges(consent_to_contact=False),
        ReferralChanges(assistance_request_code=AssistanceRequestCode.QUOTES_OR_LICENSING),
        ReferralChanges(invite_notes="rewritten"),
    ):
        assert changes.problems(created), changes  # the client foresees it ...
        with pytest.raises(InvalidRequestError, match="read-only"):  # ... and the server refuses it
            await pc.referrals.update(created.id, changes, etag=created.e_tag)
    # Fields the change set cannot express are refused as well (a raw JSON Patch).
    token = await pc.user_tokens.token()
    for path, value in (
        ("/customerProfile/name", "Other"),
        ("/customerProfile/address/country", "DE"),
        ("/id", "x"),
    ):
        response = await pc.http.patch(
            f"{pc.info['referrals_api']}/{created.id}",
            json=[{"op": "replace", "path": path, "value": value}],
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "invalidRequest"


async def test_solutions_replace(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(new_referral())
    assert created.id is not None
    updated = await pc.referrals.update(
        created.id,
        ReferralChanges(
            solutions=(
                SolutionTag.model_validate({"id": "SOL-1-ABC", "name": "One", "type": "Name"}),
            )
        ),
        etag=created.e_tag,
        current=created,
    )
    assert updated is not None
    assert updated.details is not None
    assert updated.details.requirements is not None
    assert [s.id for s in updated.details.requirements.solutions] == ["SOL-1-ABC"]


# --- status transitions ---------------------------------------------------------------------------

# (starting point, target status, target substatus, status reason)
LEGAL = [
    ("outgoing", S.CLOSED, SS.WON, None),
    ("outgoing", S.CLOSED, SS.LOST, "Chose another vendor"),
    ("outgoing", S.CLOSED, SS.ERROR, "Test referral"),
    ("outgoing", S.ACTIVE, SS.ACCEPTED, None),
    ("incoming", S.ACTIVE, SS.ACCEPTED, None),
    ("incoming", S.CLOSED, SS.DECLINED, "Not a customer"),
    ("incoming", S.NEW, SS.RECEIVED, None),
    ("incoming", S.CLOSED, SS.ERROR, "Duplicate"),
]
ILLEGAL = [
    ("outgoing", S.NEW, SS.PENDING, None),
    ("outgoing", S.ACTIVE, SS.PENDING, None),
    ("outgoing", S.CLOSED, SS.ACCEPTED, None),
    ("outgoing", S.CLOSED, SS.DECLINED, "Not interested"),
    ("outgoing", S.CLOSED, SS.EXPIRED, None),
    ("incoming", S.CLOSED, SS.WON, None),
    ("incoming", S.CLOSED, SS.LOST, "No budget"),
    ("incoming", S.NEW, SS.ACCEPTED, None),
    ("incoming", S.CLOSED, SS.EXPIRED, None),
]


WIN_WAIT = 72 * 3600  # deal registration asks for 72 hours between creation and Won (§3.3)


async def old_enough_to_win(pc: PartnerCenter) -> Referral:
    """A referral of our own, created 72 hours ago (a win keeps it eligible for registration)."""
    created = await pc.referrals.create(new_referral())
    pc.clock.advance(WIN_WAIT)
    return created


async def _start(pc: PartnerCenter, kind: str) -> Referral:
    if kind == "outgoing":
        return await old_enough_to_win(pc)
    return await incoming(pc)


@pytest.mark.parametrize(("start", "status", "substatus", "reason"), LEGAL)
async def test_legal_transitions(
    pc: PartnerCenter, start: str, status: S, substatus: SS, reason: str | None
) -> None:
    referral = await _start(pc, start)
    assert referral.id is not None
    assert check_transition(referral.status, referral.substatus, status, substatus) is None
    changes = ReferralChanges(status=status, substatus=substatus, status_reason=reason)
    assert changes.problems(referral) == []
    updated = await pc.referrals.update(referral.id, changes, etag=referral.e_tag)
    assert updated is not None
    assert (updated.status, updated.substatus) == (status, substatus)


@pytest.mark.parametrize(("start", "status", "substatus", "reason"), ILLEGAL)
async def test_illegal_transitions(
    pc: PartnerCenter, start: str, status: S, substatus: SS, reason: str | None
) -> None:
    referral = await _start(pc, start)
    assert referral.id is not None
    assert check_transition(referral.status, referral.substatus, status, substatus) is not None
    changes = ReferralChanges(status=status, substatus=substatus, status_reason=reason)
    with pytest.raises(InvalidRequestError):
        await pc.referrals.update(referral.id, changes, etag=referral.e_tag)
    after = await pc.referrals.get(referral.id)
    assert (after.status, after.substatus) == (referral.status, referral.substatus)


async def test_won_is_taken_right_after_creation(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(new_referral())
    assert created.id is not None
    won = ReferralChanges(status=S.CLOSED, substatus=SS.WON)
    assert won.problems(created) == []
    updated = await pc.referrals.update(created.id, won, etag=created.e_tag)
    assert updated is not None
    assert (updated.status, updated.substatus) == (S.CLOSED, SS.WON)


async def test_decline_needs_a_reason(pc: PartnerCenter) -> None:
    referral = await incoming(pc)
    assert referral.id is not None
    changes = ReferralChanges(status=S.CLOSED, substatus=SS.DECLINED)
    assert changes.problems(referral)
    with pytest.raises(InvalidRequestError):
        await pc.referrals.update(referral.id, changes, etag=referral.e_tag)


@pytest.mark.parametrize(
    ("substatus", "reason"), [(SS.WON, None), (SS.LOST, "Budget"), (SS.ERROR, "Test")]
)
async def test_closed_referrals_are_terminal(
    pc: PartnerCenter, substatus: SS, reason: str | None
) -> None:
    created = await old_enough_to_win(pc)
    assert created.id is not None
    closed = await pc.referrals.update(
        created.id,
        ReferralChanges(status=S.CLOSED, substatus=substatus, status_reason=reason),
        etag=created.e_tag,
    )
    assert closed is not None
    assert closed.is_terminal
    assert ReferralChanges(notes="more").problems(closed)
    with pytest.raises(InvalidRequestError):
        await pc.referrals.update(created.id, ReferralChanges(notes="more"), etag=closed.e_tag)
    with pytest.raises(InvalidRequestError):
        await pc.referrals.update(
            created.id, ReferralChanges(status=S.ACTIVE, substatus=SS.ACCEPTED), etag=closed.e_tag
        )


async def test_declined_is_terminal(pc: PartnerCenter) -> None:
    referral = await incoming(pc)
    assert referral.id is not None
    declined = await pc.referrals.update(
        referral.id,
        ReferralChanges(status=S.CLOSED, substatus=SS.DECLINED, status_reason="Not a customer"),
        etag=referral.e_tag,
    )
    assert declined is not None
    assert declined.is_terminal
    with pytest.raises(InvalidRequestError):
        await pc.referrals.update(
            referral.id,
            ReferralChanges(status=S.ACTIVE, substatus=SS.ACCEPTED),
            etag=declined.e_tag,
        )


async def test_incoming_referrals_expire_after_14_days_and_are_terminal(pc: PartnerCenter) -> None:
    referral = await incoming(pc, "lead")
    assert referral.id is not None
    assert referral.direction is ReferralDirection.INCOMING
    assert (referral.status, referral.substatus) == (S.NEW, SS.PENDING)
    assert referral.expiration_date_time is not None
    await pc.control("POST", "/clock/advance", {"seconds": 14 * 24 * 3600 + 60})
    expired = await pc.referrals.get(referral.id)
    assert (expired.status, expired.substatus) == (S.CLOSED, SS.EXPIRED)
    with pytest.raises(InvalidRequestError):
        await pc.referrals.update(
            referral.id, ReferralChanges(status=S.ACTIVE, substatus=SS.ACCEPTED), etag=expired.e_tag
        )


async def test_shared_referral_gets_a_microsoft_side_in_the_engagement(pc: PartnerCenter) -> None:
    created = await pc.referrals.create(
        new_referral(
            type=ReferralType.SHARED,
            consent=Consent(consent_to_share_referral_with_microsoft_sellers=True),
            invite_context={"assistanceRequestCode": "CustomerTechnicalArchitecture"},
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
    assert created.is_shared_with_microsoft
    engagement = [
        r async for r in pc.referrals.list(filter=f"engagementId eq '{created.engagement_id}'")
    ]
    assert len(engagement) == 2
    microsoft = next(r for r in engagement if r.id != created.id)
    assert microsoft.organization_id == "msft"
    await pc.control("POST", f"/referrals/{created.id}/microsoft/accept")
    await pc.control("PUT", f"/referrals/{created.id}/microsoft/msx-id", {"msxId": "7-ABCDEFGHI"})
    accepted = await pc.referrals.get(ReferralId(str(microsoft.id)))
    assert (accepted.status, accepted.substatus) == (S.ACTIVE, SS.ACCEPTED)
    assert accepted.tracking_info is not None
    assert accepted.tracking_info.microsoft_msx_id == "7-ABCDEFGHI"
    assert microsoft.id is not None
    with pytest.raises(AccessDeniedError, match="read-only"):
        # Microsoft's referral is read-only to the partner.
        await pc.referrals.update(
            microsoft.id, ReferralChanges(notes="mine now"), etag=accepted.e_tag
        )


async def test_lookup_by_external_reference_and_engagement(pc: PartnerCenter) -> None:
    mine = await pc.referrals.create(new_referral(external_reference_id="006AAA'quoted"))
    await pc.referrals.create(new_referral(external_reference_id="006BBB"))
    found = await pc.referrals.find_by_external_reference("006AAA'quoted")
    assert [r.id for r in found] == [mine.id]
    assert await pc.referrals.find_by_external_reference("006CCC") == []
    assert mine.engagement_id is not None
    assert [r.id for r in await pc.referrals.engagement(mine.engagement_id)] == [mine.id]


ALL_STATES = [
    (S.NEW, SS.PENDING),
    (S.NEW, SS.RECEIVED),
    (S.ACTIVE, SS.ACCEPTED),
    (S.CLOSED, SS.WON),
    (S.CLOSED, SS.LOST),
    (S.CLOSED, SS.DECLINED),
    (S.CLOSED, SS.ERROR),
    (S.CLOSED, SS.EXPIRED),
]


async def _in_state(pc: PartnerCenter, status: S, substatus: SS) -> Referral:
    if (status, substatus) == (S.ACTIVE, SS.ACCEPTED):
        return await old_enough_to_win(pc)
    referral = await incoming(pc)
    assert referral.id is not None
    if (status, substatus) == (S.NEW, SS.RECEIVED):
        moved = await pc.referrals.update(
            referral.id, ReferralChanges(status=S.NEW, substatus=SS.RECEIVED), etag=referral.e_tag
        )
        assert moved is not None
        return moved
    return referral


@pytest.mark.parametrize(
    ("status", "substatus"), [(S.NEW, SS.PENDING), (S.NEW, SS.RECEIVED), (S.ACTIVE, SS.ACCEPTED)]
)
async def test_every_transition_agrees_with_check_transition(
    pc: PartnerCenter, status: S, substatus: SS
) -> None:
    """From each open state to each of the eight states: the sandbox and the client's rule agree."""
    disagreements = []
    for target_status, target_substatus in ALL_STATES:
        referral = await _in_state(pc, status, substatus)
        assert referral.id is not None
        assert (referral.status, referral.substatus) == (status, substatus)
        legal = check_transition(status, substatus, target_status, target_substatus) is None
        changes = ReferralChanges(
            status=target_status, substatus=target_substatus, status_reason="Reason given"
        )
        try:
            await pc.referrals.update(referral.id, changes, etag=referral.e_tag)
        except InvalidRequestError:
            accepted = False
        else:
            accepted = True
        if accepted != legal:
            disagreements.append((target_status.value, target_substatus.value, legal, accepted))
    assert disagreements == []
