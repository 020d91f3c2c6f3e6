"""Field rules of a referral, checked on create and again after every PATCH.

`normalize_referral` walks the fields Partner Center validates and returns a copy with the
documented coercions applied (a numeric string `dealValue`, as in the PATCH example
`"value": "10000"`, becomes a number; ISO codes are kept as sent but must be upper-case members
of the real code lists). Fields it does not know are kept untouched: real referrals carry many
undocumented fields (spec §3.14), and a client's round trip must not lose them. Nulls and empty
strings are accepted wherever real responses contain them (enum-typed `customerProfile.size`).

The 2026 fields (spec §9). `partnerRole`, `solutionArea`, `solutionPlay` and
`customerMarketplaceIntent` are kept at the referral's top level, where the create page's table
lists them; their exact JSON placement is not documented, so the variant one third-party source
reports, `details.requirements.additionalRequirements.{partnerRole,...}`, is read too (either
placement satisfies the rule below; each is stored as sent). Each is a string (or an array of
strings, the other shape a multi-choice field could take). Their values are kept, never refused:
the FY26 lists are not published for the API (cosell's `models.SolutionArea` and `SolutionPlay`
hold its reading, for example `AIBusinessSolutions` / `MigrateAndModernizeYourEstate`;
`customerMarketplaceIntent` is documented as `Yes`, `No`, `HaveNotDecided`) and a newer
taxonomy must round-trip. A *services co-sell* referral (help requested from Microsoft and services named
in `details.requirements.services`: Partner Center does not document which referrals it counts
as services co-sell, this is the sandbox's reading) without a partner role, solution area or
solution play is refused with 400 `invalidRequest` whose target is the missing member
(`/partnerRole`), as the create page documents them "required for services co-sell" (spec §2.3).

The first problem found is raised as a `FieldError` whose `target` is the JSON path of the field
(`/customerProfile/address/country`), which the API renders as a 400 `invalidRequest`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Final

from cosell_sandbox.partnercenter.formats import COUNTRY_CODES, CURRENCY_CODES, parse_timestamp

REFERRAL_TYPES: Final = ("Independent", "Shared")
QUALIFICATIONS: Final = ("None", "Direct", "MarketingQualified", "SalesQualified")
DIRECTIONS: Final = ("Incoming", "Outgoing")
TARGET_TYPES: Final = ("None", "BusinessProfileLocation", "SolutionProfile")
ASSISTANCE_REQUEST_CODES: Final = (
    "Unknown",
    "None",
    "GeneralOrOther",
    "CustomerTechnicalArchitecture",
    "ProofOfConceptOrDemo",
    "QuotesOrLicensing",
    "PostSalesCustomerSuccess",
    "WorkloadSpecificValueProposition",
)
NO_HELP_CODES: Final = ("", "Unknown", "None")
CUSTOMER_SIZES: Final = (
    "1to50employees",
    "51to500employees",
    "Morethan500employees",
    "1to9employees",
    "10to50employees",
    "51to250employees",
    "251to1000employees",
    "1001to5000employees",
    "5001to10000employees",
    "10001to20000employees",
    "Morethan20000employees",
)
SALES_STAGE_NAMES: Final = ("Qualify", "Develop", "Propose", "Close")
PROFILE_TYPES: Final = ("Duns", "External")
SOLUTION_TYPES: Final = ("None", "Category", "Name")
CONSENT_FLAGS: Final = (
    "consentToToShareInfoWithOthers",
    "consentToContact",
    "consentToShareReferralWithMicrosoftSellers",
    "consentToMicrosoftToContactSpecificPartners",
)
SERVICES_CO_SELL_FIELDS: Final = ("partnerRole", "solutionArea", "solutionPlay")
MAX_TEAM_MEMBERS: Final = 50  # "up to 50 team members per deal" (spec §2.7, S-BULK)
MAX_SOLUTIONS: Final = 50  # "up to 50 solutions per deal" (spec §2.7, S-BULK)
MAX_NAME_LENGTH: Final = 255  # the UI's deal-name limit [I]; longer names are a client bug


class FieldError(Exception):
    """A field value Partner Center refuses; `target` is the field's JSON path."""

    def __init__(self, message: str, target: str) -> None:
        super().__init__(message)
        self.message = message
        self.target = target


def _object(value: Any, target: str, *, required: bool) -> dict[str, Any] | None:
    if value is None:
        if required:
            raise FieldError(f"{target} is required", target)
        return None
    if not isinstance(value, dict):
        raise FieldError(f"{target} must be a JSON object", target)
    return value


def _array(value: Any, target: str, *, limit: int | None = None) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(f"{target} must be a JSON array", target)
    if limit is not None and len(value) > limit:
        raise FieldError(f"{target} has {len(value)} items; at most {limit} are allowed", target)
    return value


def _enum(value: Any, allowed: tuple[str, ...], target: str, *, nullable: bool = True) -> None:
    if nullable and value in (None, ""):
        return
    if value not in allowed:
        raise FieldError(
            f"{target} is {value!r}; use one of {', '.join(allowed)}",
            target,
        )


def _text(value: Any, target: str, *, required: bool) -> None:
    if value is None or value == "":
        if required:
            raise FieldError(f"{target} is required and must not be empty", target)
        return
    if not isinstance(value, str):
        raise FieldError(f"{target} must be a string", target)


def _timestamp(value: Any, target: str, *, required: bool) -> None:
    if value is None or value == "":
        if required:
            raise FieldError(f"{target} is required (an ISO 8601 date-time)", target)
        return
    if not isinstance(value, str):
        raise FieldError(f"{target} must be an ISO 8601 date-time string", target)
    try:
        parse_timestamp(value)
    except ValueError as exc:
        raise FieldError(f"{target}: {exc}", target) from exc


def _deal_value(value: Any, target: str) -> int | float:
    number: float
    if isinstance(value, bool):
        raise FieldError(f"{target} must be a number", target)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise FieldError(f"{target} is {value!r}, which is not a number", target) from None
    else:
        raise FieldError(f"{target} is required and must be a number (for example 10000)", target)
    if not math.isfinite(number) or number < 0:
        raise FieldError(f"{target} must be a finite number of at least 0", target)
    return int(number) if number.is_integer() else number


def help_requested(referral: dict[str, Any]) -> bool:
    """Whether the referral asks Microsoft for help (`inviteContext.assistanceRequestCode`)."""
    invite = referral.get("inviteContext")
    code = invite.get("assistanceRequestCode") if isinstance(invite, dict) else None
    return code not in (None, *NO_HELP_CODES)


def shared_with_microsoft(referral: dict[str, Any]) -> bool:
    """Whether the referral is shared with Microsoft sellers (spec §7.2).

    True when it consents to share with Microsoft sellers, asks Microsoft for help, or targets
    Microsoft's business profile location (`{"type": "BusinessProfileLocation", "id": "msft"}`).
    """
    consent = referral.get("consent")
    if (
        isinstance(consent, dict)
        and consent.get("consentToShareReferralWithMicrosoftSellers") is True
    ):
        return True
    if help_requested(referral):
        return True
    targets = referral.get("target")
    return isinstance(targets, list) and any(
        isinstance(t, dict)
        and t.get("type") == "BusinessProfileLocation"
        and str(t.get("id", "")).lower() == "msft"
        for t in targets
    )


def _choice(value: Any, target: str) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return
    raise FieldError(f"{target} must be a string (or an array of strings)", target)


def _services_co_sell_members(
    result: dict[str, Any], requirements: dict[str, Any] | None
) -> dict[str, Any]:
    """The 2026 members as sent, top level first, then `additionalRequirements` (checked)."""
    extra = _object(
        (requirements or {}).get("additionalRequirements"),
        "/details/requirements/additionalRequirements",
        required=False,
    )
    found: dict[str, Any] = {}
    for name in (*SERVICES_CO_SELL_FIELDS, "customerMarketplaceIntent"):
        _choice(result.get(name), f"/{name}")
        if extra is not None:
            _choice(extra.get(name), f"/details/requirements/additionalRequirements/{name}")
        value = result.get(name)
        if value in (None, "", []) and extra is not None:
            value = extra.get(name)
        found[name] = value
    return found


def is_services_co_sell(referral: dict[str, Any]) -> bool:
    """Whether a referral asks Microsoft for help and names services in its requirements."""
    details = referral.get("details")
    requirements = details.get("requirements") if isinstance(details, dict) else None
    services = requirements.get("services") if isinstance(requirements, dict) else None
    return help_requested(referral) and bool(services)


def normalize_referral(referral: dict[str, Any]) -> dict[str, Any]:
    """Check a referral's fields and return a copy with the documented coercions applied.

    Raises:
        FieldError: the first field Partner Center would refuse.
    """
    result = copy.deepcopy(referral)
    _text(result.get("name"), "/name", required=True)
    if len(result["name"]) > MAX_NAME_LENGTH:
        raise FieldError(f"/name is longer than {MAX_NAME_LENGTH} characters", "/name")
    _enum(result.get("type"), REFERRAL_TYPES, "/type", nullable=False)
    _enum(result.get("qualification"), QUALIFICATIONS, "/qualification")
    _text(result.get("externalReferenceId"), "/externalReferenceId", required=False)
    _text(result.get("statusReason"), "/statusReason", required=False)
    stage = result.get("salesStage")
    if stage not in (None, "") and not (
        stage in SALES_STAGE_NAMES
        or (isinstance(stage, str) and stage.isdigit() and 0 <= int(stage) <= 100)
    ):
        raise FieldError(
            f"/salesStage is {stage!r}; use a percentage string such as '40' or one of "
            f"{', '.join(SALES_STAGE_NAMES)}",
            "/salesStage",
        )

    profile = _object(result.get("customerProfile"), "/customerProfile", required=True)
    assert profile is not None
    _text(profile.get("name"), "/customerProfile/name", required=True)
    _enum(profile.get("size"), CUSTOMER_SIZES, "/customerProfile/size")
    address = _object(profile.get("address"), "/customerProfile/address", required=True)
    assert address is not None
    country = address.get("country")
    if country not in COUNTRY_CODES:
        raise FieldError(
            f"/customerProfile/address/country is {country!r}; use an ISO 3166-1 alpha-2 "
            "country code in upper case, such as 'US' or 'DE'",
            "/customerProfile/address/country",
        )
    for index, item in enumerate(_array(profile.get("ids"), "/customerProfile/ids")):
        entry = _object(item, f"/customerProfile/ids/{index}", required=True)
        assert entry is not None
        _enum(entry.get("profileType"), PROFILE_TYPES, f"/customerProfile/ids/{index}/profileType")
    for index, item in enumerate(_array(profile.get("team"), "/customerProfile/team")):
        _object(item, f"/customerProfile/team/{index}", required=True)

    consent = _object(result.get("consent"), "/consent", required=True)
    assert consent is not None
    for flag in CONSENT_FLAGS:
        if consent.get(flag) not in (None, True, False):
            raise FieldError(f"/consent/{flag} must be true or false", f"/consent/{flag}")

    details = _object(result.get("details"), "/details", required=True)
    assert details is not None
    details["dealValue"] = _deal_value(details.get("dealValue"), "/details/dealValue")
    currency = details.get("currency")
    if currency not in CURRENCY_CODES:
        raise FieldError(
            f"/details/currency is {currency!r}; use an ISO 4217 currency code in upper case, "
            "such as 'USD' or 'EUR'",
            "/details/currency",
        )
    _timestamp(details.get("closingDateTime"), "/details/closingDateTime", required=True)
    _text(details.get("notes"), "/details/notes", required=False)
    requirements = _object(details.get("requirements"), "/details/requirements", required=False)
    if requirements is not None:
        solutions = _array(
            requirements.get("solutions"), "/details/requirements/solutions", limit=MAX_SOLUTIONS
        )
        for index, item in enumerate(solutions):
            target = f"/details/requirements/solutions/{index}"
            solution = _object(item, target, required=True)
            assert solution is not None
            _text(solution.get("id"), f"{target}/id", required=True)
            _enum(solution.get("type"), SOLUTION_TYPES, f"{target}/type")

    for index, item in enumerate(_array(result.get("team"), "/team", limit=MAX_TEAM_MEMBERS)):
        member = _object(item, f"/team/{index}", required=True)
        assert member is not None
        _text(member.get("email"), f"/team/{index}/email", required=False)

    invite = _object(result.get("inviteContext"), "/inviteContext", required=False)
    if invite is not None:
        _enum(
            invite.get("assistanceRequestCode"),
            ASSISTANCE_REQUEST_CODES,
            "/inviteContext/assistanceRequestCode",
        )
        _text(invite.get("notes"), "/inviteContext/notes", required=False)

    for index, item in enumerate(_array(result.get("target"), "/target")):
        entry = _object(item, f"/target/{index}", required=True)
        assert entry is not None
        _enum(entry.get("type"), TARGET_TYPES, f"/target/{index}/type", nullable=False)
        _text(entry.get("id"), f"/target/{index}/id", required=True)

    members = _services_co_sell_members(result, requirements)
    if is_services_co_sell(result):
        for name in SERVICES_CO_SELL_FIELDS:
            if members[name] in (None, "", []):
                raise FieldError(
                    f"{name} is required for a services co-sell referral (one that asks "
                    "Microsoft for help and names services); send the partner role, solution "
                    "area and solution play of the FY26 taxonomy",
                    f"/{name}",
                )
    if help_requested(result):
        solutions = (requirements or {}).get("solutions") or []
        if not solutions:
            raise FieldError(
                "Solution ID is required: a referral that asks Microsoft for help needs at "
                "least one co-sell ready or Microsoft solution in details.requirements.solutions",
                "/details/requirements/solutions",
            )
        if not profile.get("team"):
            raise FieldError(
                "a referral that asks Microsoft for help needs a customer contact in "
                "customerProfile.team",
                "/customerProfile/team",
            )
    return result
