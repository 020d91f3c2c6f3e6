from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from pc_fakes import REAL_REFERRAL, referral_payload

from cosell.partnercenter.models import (
    AssistanceRequestCode,
    Consent,
    CustomerProfile,
    Member,
    NewReferral,
    Referral,
    ReferralChanges,
    ReferralDetails,
    ReferralStatus,
    ReferralSubstatus,
    ReferralType,
    SolutionTag,
    check_transition,
)

S = ReferralStatus
SS = ReferralSubstatus


def test_real_payload_parses_with_nulls_empty_strings_and_unknown_fields() -> None:
    referral = Referral.model_validate(referral_payload())
    assert referral.id == "2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11"
    assert referral.e_tag == '"00006d10-0000-0000-0000-5c70aa630000"'  # quotes kept
    assert referral.status is S.ACTIVE
    assert referral.substatus is SS.ACCEPTED
    assert referral.type is ReferralType.SHARED
    assert referral.created_date_time == datetime(2019, 2, 23, 2, 5, 23, 293181, tzinfo=UTC)
    assert referral.closed_date_time is None  # "" read as None
    assert referral.team == []  # null list read as empty
    assert referral.details is not None
    assert referral.details.deal_value == Decimal("12500.5")
    assert referral.details.requirements is not None
    assert referral.details.requirements.industries == []
    assert referral.details.requirements.solutions[0].id == "SOL-34104-EBB"
    assert referral.customer_profile is not None
    assert referral.customer_profile.team[0].email == "ann@fabrikam.example"
    assert referral.invite_context is not None
    assert (
        referral.invite_context.assistance_request_code
        is AssistanceRequestCode.PROOF_OF_CONCEPT_OR_DEMO
    )
    assert referral.tracking_info is not None
    assert referral.tracking_info.microsoft_msx_id == "7-2XXXXXX"
    assert referral.links is not None
    assert referral.links.self_ is not None
    assert referral.is_shared_with_microsoft
    assert not referral.is_terminal


@pytest.mark.parametrize("field", ["status", "substatus", "type", "qualification", "direction"])
def test_empty_and_null_enums_read_as_none(field: str) -> None:
    assert getattr(Referral.model_validate(referral_payload(**{field: ""})), field) is None
    assert getattr(Referral.model_validate(referral_payload(**{field: None})), field) is None


def test_unknown_enum_value_is_kept_and_round_trips() -> None:
    referral = Referral.model_validate(referral_payload(substatus="Engaged", status="active"))
    assert referral.status is S.ACTIVE  # matched case-insensitively
    assert referral.substatus == "Engaged"
    assert referral.substatus is not None
    assert not referral.substatus.is_known
    assert referral.model_dump(mode="json", by_alias=True)["substatus"] == "Engaged"


def test_everything_missing_or_null_is_accepted() -> None:
    referral = Referral.model_validate(
        {"id": None, "customerProfile": None, "details": {"dealValue": "", "requirements": None}}
    )
    assert referral.id is None
    assert referral.details is not None
    assert referral.details.deal_value is None


def test_string_deal_value_and_naive_datetimes() -> None:
    referral = Referral.model_validate(
        {"details": {"dealValue": "10000", "closingDateTime": "2019-06-30T00:00:00.1234567"}}
    )
    assert referral.details is not None
    assert referral.details.deal_value == Decimal(10000)
    assert referral.details.closing_date_time == datetime(2019, 6, 30, 0, 0, 0, 123456, tzinfo=UTC)


def _new(**overrides: object) -> NewReferral:
    fields: dict[str, object] = {
        "name": "Fabrikam deal",
        "type": ReferralType.SHARED,
        "customer_profile": CustomerProfile.model_validate(
            {"name": "Fabrikam", "address": {"country": "US"}, "team": [{"email": "a@b.example"}]}
        ),
        "consent": Consent(consent_to_share_referral_with_microsoft_sellers=True),
        "details": ReferralDetails.model_validate(
            {"dealValue": "2500.00", "currency": "EUR", "closingDateTime": "2026-03-01T00:00:00Z"}
        ),
        "external_reference_id": "006XX",
    }
    fields.update(overrides)
    return NewReferral.model_validate(fields)


def test_new_referral_body_is_camel_case_without_nulls() -> None:
    body = _new().to_json()
    assert body["type"] == "Shared"
    assert body["externalReferenceId"] == "006XX"
    assert body["customerProfile"]["address"] == {"country": "US"}
    assert body["consent"] == {"consentToShareReferralWithMicrosoftSellers": True}
    assert body["details"]["dealValue"] == 2500
    assert isinstance(body["details"]["dealValue"], int)
    assert body["details"]["closingDateTime"].startswith("2026-03-01T00:00:00")
    assert "status" not in body


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "customer_profile": CustomerProfile.model_validate(
                    {"name": "X", "address": {"country": "USA"}}
                )
            },
            "2-letter ISO",
        ),
        ({"customer_profile": CustomerProfile.model_validate({"name": "X"})}, "2-letter ISO"),
        (
            {"customer_profile": CustomerProfile.model_validate({"address": {"country": "US"}})},
            "customerProfile.name",
        ),
        (
            {
                "details": ReferralDetails.model_validate(
                    {"dealValue": 1, "currency": "usd", "closingDateTime": "2026-03-01T00:00:00Z"}
                )
            },
            "ISO 4217",
        ),
        (
            {
                "details": ReferralDetails.model_validate(
                    {"dealValue": -1, "currency": "USD", "closingDateTime": "2026-03-01T00:00:00Z"}
                )
            },
            "dealValue",
        ),
        (
            {"details": ReferralDetails.model_validate({"dealValue": 1, "currency": "USD"})},
            "closingDateTime",
        ),
    ],
)
def test_new_referral_refuses_what_partner_center_would(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _new(**overrides)


def test_change_set_to_json_patch() -> None:
    changes = ReferralChanges(
        name="New name",
        deal_value=Decimal("10000.50"),
        currency="EUR",
        closing_date_time=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        notes="",
        status=S.CLOSED,
        substatus=SS.WON,
        status_reason="Customer signed",
        assistance_request_code=AssistanceRequestCode.QUOTES_OR_LICENSING,
        consent_to_share_referral_with_microsoft_sellers=True,
        team_to_add=(Member(first_name="Bo", email="bo@partner.example"),),
        solutions=(SolutionTag.model_validate({"id": "SOL-1", "type": "Name"}),),
    )
    assert changes.to_json_patch() == [
        {"op": "replace", "path": "/name", "value": "New name"},
        {"op": "replace", "path": "/details/dealValue", "value": 10000.5},
        {"op": "replace", "path": "/details/currency", "value": "EUR"},
        {
            "op": "replace",
            "path": "/details/closingDateTime",
            "value": "2026-03-01T12:00:00.000000Z",
        },
        {"op": "replace", "path": "/details/notes", "value": ""},
        {
            "op": "replace",
            "path": "/inviteContext/assistanceRequestCode",
            "value": "QuotesOrLicensing",
        },
        {
            "op": "replace",
            "path": "/consent/consentToShareReferralWithMicrosoftSellers",
            "value": True,
        },
        {
            "op": "replace",
            "path": "/details/requirements/solutions",
            "value": [{"id": "SOL-1", "type": "Name"}],
        },
        {"op": "replace", "path": "/status", "value": "Closed"},
        {"op": "replace", "path": "/substatus", "value": "Won"},
        {"op": "replace", "path": "/statusReason", "value": "Customer signed"},
        {
            "op": "add",
            "path": "/team/-",
            "value": {"firstName": "Bo", "email": "bo@partner.example"},
        },
    ]
    assert not changes.is_empty
    assert ReferralChanges().is_empty
    assert ReferralChanges().to_json_patch() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"currency": "eur"}, "ISO 4217"),
        ({"deal_value": Decimal(-1)}, ">= 0"),
        ({"closing_date_time": datetime(2026, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
        ({"substatus": SS.WON}, "needs the status"),
    ],
)
def test_change_set_refuses_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReferralChanges(**kwargs)  # type: ignore[arg-type]


LEGAL = [
    (S.NEW, SS.PENDING, S.ACTIVE, SS.ACCEPTED),
    (S.NEW, SS.RECEIVED, S.ACTIVE, SS.ACCEPTED),
    (S.NEW, SS.PENDING, S.NEW, SS.RECEIVED),
    (S.NEW, SS.PENDING, S.CLOSED, SS.DECLINED),
    (S.NEW, SS.PENDING, S.CLOSED, SS.ERROR),
    (S.ACTIVE, SS.ACCEPTED, S.CLOSED, SS.WON),
    (S.ACTIVE, SS.ACCEPTED, S.CLOSED, SS.LOST),
    (S.ACTIVE, SS.ACCEPTED, S.CLOSED, SS.ERROR),
    (S.ACTIVE, SS.ACCEPTED, S.ACTIVE, SS.ACCEPTED),
    (S.ACTIVE, SS.ACCEPTED, S.ACTIVE, None),
]
ILLEGAL = [
    (S.ACTIVE, SS.ACCEPTED, S.NEW, SS.PENDING, "cannot change to New"),
    (S.NEW, SS.PENDING, S.ACTIVE, SS.PENDING, "not allowed with status Active"),
    (S.NEW, SS.PENDING, S.CLOSED, SS.ACCEPTED, "not allowed with status Closed"),
    (S.ACTIVE, SS.ACCEPTED, S.CLOSED, None, "not allowed with status Closed"),
    (S.ACTIVE, SS.ACCEPTED, S.CLOSED, SS.EXPIRED, "only Partner Center expires"),
    (S.NEW, SS.PENDING, S.CLOSED, SS.WON, "accept the referral first"),
    (S.NEW, SS.RECEIVED, S.CLOSED, SS.LOST, "accept the referral first"),
    (S.ACTIVE, SS.ACCEPTED, S.CLOSED, SS.DECLINED, "only a New referral can be declined"),
    (S.CLOSED, SS.WON, S.ACTIVE, SS.ACCEPTED, "closed"),
    (S.CLOSED, SS.LOST, S.CLOSED, SS.WON, "closed"),
    (S.CLOSED, SS.DECLINED, S.CLOSED, SS.DECLINED, "closed"),
    (S.CLOSED, SS.EXPIRED, S.ACTIVE, SS.ACCEPTED, "closed"),
    (None, None, S.ACTIVE, SS.ACCEPTED, "unknown"),
]


@pytest.mark.parametrize(("cur", "cur_sub", "new", "new_sub"), LEGAL)
def test_legal_transitions(cur: S, cur_sub: SS, new: S, new_sub: SS | None) -> None:
    assert check_transition(cur, cur_sub, new, new_sub) is None


@pytest.mark.parametrize(("cur", "cur_sub", "new", "new_sub", "why"), ILLEGAL)
def test_illegal_transitions(
    cur: S | None, cur_sub: SS | None, new: S, new_sub: SS | None, why: str
) -> None:
    reason = check_transition(cur, cur_sub, new, new_sub)
    assert reason is not None
    assert why in reason


def test_problems_checks_state_and_read_only_fields() -> None:
    referral = Referral.model_validate(referral_payload())
    assert ReferralChanges(notes="x").problems(referral) == []
    assert ReferralChanges(status=S.CLOSED, substatus=SS.WON).problems(referral) == []
    private = ReferralChanges(consent_to_share_referral_with_microsoft_sellers=False).problems(
        referral
    )
    assert any("cannot be withdrawn" in p for p in private)
    help_change = ReferralChanges(assistance_request_code=AssistanceRequestCode.GENERAL_OR_OTHER)
    assert any("read-only" in p for p in help_change.problems(referral))
    contact = ReferralChanges(consent_to_contact=False).problems(referral)
    assert any("consentToContact" in p for p in contact)
    notes = ReferralChanges(invite_notes="changed").problems(referral)
    assert any("notes to Microsoft" in p for p in notes)
    incoming = Referral.model_validate(referral_payload(status="New", substatus="Pending"))
    decline = ReferralChanges(status=S.CLOSED, substatus=SS.DECLINED)
    assert any("statusReason" in p for p in decline.problems(incoming))
    with_reason = ReferralChanges(status=S.CLOSED, substatus=SS.DECLINED, status_reason="No budget")
    assert with_reason.problems(incoming) == []
    closed = Referral.model_validate(referral_payload(status="Closed", substatus="Won"))
    assert closed.is_terminal
    assert "closed" in ReferralChanges(notes="x").problems(closed)[0]
    assert ReferralChanges().problems(closed) == []


def test_change_set_adds_absent_parents_when_the_current_referral_is_known() -> None:
    bare = Referral.model_validate(
        referral_payload(inviteContext=None, team=None, details={"dealValue": 1, "currency": "USD"})
    )
    changes = ReferralChanges(
        assistance_request_code=AssistanceRequestCode.GENERAL_OR_OTHER,
        invite_notes="please help",
        solutions=(SolutionTag.model_validate({"id": "SOL-9"}),),
        team_to_add=(Member(email="a@p.example"), Member(email="b@p.example")),
    )
    assert changes.to_json_patch(bare) == [
        {
            "op": "add",
            "path": "/inviteContext",
            "value": {"assistanceRequestCode": "GeneralOrOther", "notes": "please help"},
        },
        {"op": "add", "path": "/details/requirements", "value": {"solutions": [{"id": "SOL-9"}]}},
        {
            "op": "add",
            "path": "/team",
            "value": [{"email": "a@p.example"}, {"email": "b@p.example"}],
        },
    ]
    full = Referral.model_validate(referral_payload(team=[{"email": "x@p.example"}]))
    assert [op["op"] for op in changes.to_json_patch(full)] == ["replace"] * 3 + ["add"] * 2


@pytest.mark.parametrize("code", ["Unknown", "None", "", None])
def test_no_help_codes_do_not_share_with_microsoft(code: str | None) -> None:
    referral = Referral.model_validate(
        referral_payload(
            consent={"consentToShareReferralWithMicrosoftSellers": False},
            inviteContext={"assistanceRequestCode": code},
            target=[],
        )
    )
    assert not referral.is_shared_with_microsoft
    assert (
        ReferralChanges(assistance_request_code=AssistanceRequestCode.GENERAL_OR_OTHER).problems(
            referral
        )
        == []
    )


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found.extend(_paths(child, (*prefix, index)))
    return found


REAL_PATHS = _paths(referral_payload())


@pytest.mark.parametrize("path", REAL_PATHS, ids=["/".join(map(str, p)) for p in REAL_PATHS])
@pytest.mark.parametrize("blank", [None, ""])
def test_null_or_empty_anywhere_is_accepted(path: tuple[object, ...], blank: object) -> None:
    body = referral_payload()
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = blank
    referral = Referral.model_validate(body)
    assert referral.id is None or referral.id == REAL_REFERRAL["id"]
