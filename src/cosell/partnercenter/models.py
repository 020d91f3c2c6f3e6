"""The Referral resource, its enums, the status rules, and the typed change set.

Reading (`Referral` and its nested types) is tolerant, because real responses are messier
than the documented tables (spec §3.14): unknown fields are ignored, every field may be
null, `""` or missing (a blank object reads as None, a blank list as empty, blank list
items are dropped), and enum-typed fields may hold `""` (read as None) or a value this code
has never seen (kept as a pseudo-member of the enum, so it round-trips and compares
unequal to every known member). Datetimes accept 7 fractional digits and naive values
(read as UTC). The `eTag` is kept exactly as received, quotes included (spec §2.5).

Writing is strict: `NewReferral` checks what Partner Center requires on create (spec §2.3:
type, customer profile with an ISO-2 country, consent, details with an ISO-4217 currency),
and `ReferralChanges` turns a typed set of changes into the JSON Patch operations the PATCH
endpoint accepts (only `replace` and `add`, spec §2.4).

`check_transition` is the status/substatus table of spec §3.3 as a pure function:

    New    -> New | Active | Closed    substatus Pending, Received
    Active -> Active | Closed          substatus Accepted
    Closed -> (terminal)               substatus Won, Lost, Declined, Expired, Error

Deal types and the 2026 fields (spec §9.2 to 9.4). A referral is *Private* (not shared with
Microsoft sellers, no help asked), *Partner-led* (shared, no help) or *Co-sell* (shared, help
asked): `DealType.of` derives it from `consent.consentToShareReferralWithMicrosoftSellers` and
`inviteContext.assistanceRequestCode`, `DealType.consent`/`asks_help` go the other way.
`partnerRole`, `solutionArea` and `solutionPlay` (the FY26 taxonomy) are required for a
*services co-sell* referral: a co-sell referral whose requirements name services
(`details.requirements.services`; which referrals Partner Center counts as services co-sell is
not documented, this is cosell's reading [I]). They, and `customerMarketplaceIntent`
(`Yes`/`No`/`HaveNotDecided`), are written at the referral's top level, where the create page's
table lists them; a referral that carries them under `details.requirements.additionalRequirements`
(a variant one third-party source reports) is read from there too. Values this code does not know
(a taxonomy newer than FY26) round-trip like every other enum's.

`Expired` is set by Partner Center itself after 14 days, never by a partner. Within the table,
the lifecycle of spec §3.3 narrows two moves: a New (incoming) referral is accepted or declined
(or closed as Error), never Won or Lost before it is accepted; an Active one is closed as Won,
Lost or Error, never Declined. A decline needs a `statusReason`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, NewType, TypeVar, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from cosell.partnercenter.ids import ReferralId as ReferralId
from cosell.partnercenter.ids import check_referral_id as check_referral_id

EngagementId = NewType("EngagementId", str)


_E = TypeVar("_E", bound="TolerantEnum")


class TolerantEnum(StrEnum):
    """A string enum that matches case-insensitively and keeps unknown values.

    An unknown value becomes a pseudo-member (not listed in the enum, equal only to its
    own string), so data this code does not know yet survives a read-modify-write.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        for member in cls:
            if member.value.lower() == value.lower():
                return member
        pseudo = str.__new__(cls, value)
        pseudo._name_ = value
        pseudo._value_ = value
        return pseudo

    @property
    def is_known(self) -> bool:
        """Whether this value is one of the enum's documented members."""
        return self.value in type(self)._value2member_map_


class ReferralStatus(TolerantEnum):
    """Top-level state of a referral (spec §3.2)."""

    NONE = "None"
    NEW = "New"
    ACTIVE = "Active"
    CLOSED = "Closed"


class ReferralSubstatus(TolerantEnum):
    """Detail of the state (spec §3.2); `Error` is used by the product though not in the 2023 table."""

    NONE = "None"
    PENDING = "Pending"
    RECEIVED = "Received"
    ACCEPTED = "Accepted"
    WON = "Won"
    LOST = "Lost"
    DECLINED = "Declined"
    EXPIRED = "Expired"
    ERROR = "Error"


class ReferralType(TolerantEnum):
    """Who sees the referral (spec §3.5)."""

    INDEPENDENT = "Independent"
    SHARED = "Shared"


class ReferralQualification(TolerantEnum):
    """Where the referral was qualified (spec §3.6)."""

    NONE = "None"
    DIRECT = "Direct"
    MARKETING_QUALIFIED = "MarketingQualified"
    SALES_QUALIFIED = "SalesQualified"


class ReferralDirection(TolerantEnum):
    """Incoming (received) or outgoing (created by us)."""

    INCOMING = "Incoming"
    OUTGOING = "Outgoing"


class AssistanceRequestCode(TolerantEnum):
    """The help asked of Microsoft ("How can Microsoft help?", spec §3.10); `Unknown` is none."""

    UNKNOWN = "Unknown"
    NONE = "None"
    GENERAL_OR_OTHER = "GeneralOrOther"
    CUSTOMER_TECHNICAL_ARCHITECTURE = "CustomerTechnicalArchitecture"
    PROOF_OF_CONCEPT_OR_DEMO = "ProofOfConceptOrDemo"
    QUOTES_OR_LICENSING = "QuotesOrLicensing"
    POST_SALES_CUSTOMER_SUCCESS = "PostSalesCustomerSuccess"
    WORKLOAD_SPECIFIC_VALUE_PROPOSITION = "WorkloadSpecificValueProposition"


class SolutionType(TolerantEnum):
    """Kind of a solution tag (spec §3.11)."""

    NONE = "None"
    CATEGORY = "Category"
    NAME = "Name"


class TargetType(TolerantEnum):
    """Kind of a referral target (spec §3.12)."""

    NONE = "None"
    BUSINESS_PROFILE_LOCATION = "BusinessProfileLocation"
    SOLUTION_PROFILE = "SolutionProfile"


NO_HELP_CODES = frozenset({AssistanceRequestCode.UNKNOWN, AssistanceRequestCode.NONE})
"""Assistance request codes that mean "no help asked of Microsoft"."""


class DealType(StrEnum):
    """The three deal types Partner Center offers at creation (spec §9.2), in a seller's words."""

    PRIVATE = "Private"
    PARTNER_LED = "Partner-led"
    CO_SELL = "Co-sell"

    @classmethod
    def of(cls, shared: bool | None, help_code: AssistanceRequestCode | None) -> DealType:
        """The deal type of a referral's visibility to Microsoft sellers and help requested."""
        if help_code is not None and help_code not in NO_HELP_CODES:
            return cls.CO_SELL
        return cls.PARTNER_LED if shared else cls.PRIVATE

    @property
    def consent(self) -> bool:
        """`consent.consentToShareReferralWithMicrosoftSellers` for this deal type."""
        return self is not DealType.PRIVATE

    @property
    def asks_help(self) -> bool:
        """Whether this deal type asks Microsoft for help (an assistance request code)."""
        return self is DealType.CO_SELL


class PartnerRole(TolerantEnum):
    """The partner's role in a services co-sell referral (spec §3.13; spellings [I])."""

    PRESALES_ENVISIONING = "PresalesEnvisioning"
    SOLUTION_DESIGN = "SolutionDesign"
    PROOF_OF_CONCEPT = "ProofOfConcept"
    BUSINESS_STRATEGY = "BusinessStrategy"
    DEPLOYMENT_SERVICES = "DeploymentServices"
    ADOPTION_AND_CHANGE_MANAGEMENT = "AdoptionAndChangeManagement"
    TRANSACTION = "Transaction"
    MANAGED_SERVICES = "ManagedServices"


class SolutionArea(TolerantEnum):
    """FY26 solution areas (spec §3.13, §9.3: three areas from FY26; spellings [I])."""

    AI_BUSINESS_SOLUTIONS = "AIBusinessSolutions"
    CLOUD_AND_AI_PLATFORMS = "CloudAndAIPlatforms"
    SECURITY = "Security"


class SolutionPlay(TolerantEnum):
    """FY26 solution plays (spec §9.3; the list is not published for the API, spellings [I])."""

    COPILOT_AND_AGENTS_AT_WORK = "CopilotAndAgentsAtWork"
    SALES_TRANSFORMATION_WITH_AI = "SalesTransformationWithAI"
    SERVICE_TRANSFORMATION_WITH_AI = "ServiceTransformationWithAI"
    FINANCE_AND_SUPPLY_CHAIN_TRANSFORMATION_WITH_AI = "FinanceAndSupplyChainTransformationWithAI"
    MIGRATE_AND_MODERNIZE_YOUR_ESTATE = "MigrateAndModernizeYourEstate"
    UNIFY_YOUR_DATA_PLATFORM = "UnifyYourDataPlatform"
    INNOVATE_WITH_AZURE_AI_APPS_AND_AGENTS = "InnovateWithAzureAIAppsAndAgents"
    MODERN_SECOPS_WITH_UNIFIED_PLATFORM = "ModernSecOpsWithUnifiedPlatform"
    PROTECT_CLOUD_AI_PLATFORM_AND_APPS = "ProtectCloudAIPlatformAndApps"
    DATA_SECURITY = "DataSecurity"


SOLUTION_PLAY_AREAS: dict[SolutionPlay, SolutionArea] = {
    SolutionPlay.COPILOT_AND_AGENTS_AT_WORK: SolutionArea.AI_BUSINESS_SOLUTIONS,
    SolutionPlay.SALES_TRANSFORMATION_WITH_AI: SolutionArea.AI_BUSINESS_SOLUTIONS,
    SolutionPlay.SERVICE_TRANSFORMATION_WITH_AI: SolutionArea.AI_BUSINESS_SOLUTIONS,
    SolutionPlay.FINANCE_AND_SUPPLY_CHAIN_TRANSFORMATION_WITH_AI: SolutionArea.AI_BUSINESS_SOLUTIONS,
    SolutionPlay.MIGRATE_AND_MODERNIZE_YOUR_ESTATE: SolutionArea.CLOUD_AND_AI_PLATFORMS,
    SolutionPlay.UNIFY_YOUR_DATA_PLATFORM: SolutionArea.CLOUD_AND_AI_PLATFORMS,
    SolutionPlay.INNOVATE_WITH_AZURE_AI_APPS_AND_AGENTS: SolutionArea.CLOUD_AND_AI_PLATFORMS,
    SolutionPlay.MODERN_SECOPS_WITH_UNIFIED_PLATFORM: SolutionArea.SECURITY,
    SolutionPlay.PROTECT_CLOUD_AI_PLATFORM_AND_APPS: SolutionArea.SECURITY,
    SolutionPlay.DATA_SECURITY: SolutionArea.SECURITY,
}
"""The FY26 solution area each play belongs to."""


class CustomerMarketplaceIntent(TolerantEnum):
    """Whether the customer means to buy through the marketplace (spec §9.4)."""

    YES = "Yes"
    NO = "No"
    HAVE_NOT_DECIDED = "HaveNotDecided"


SERVICES_CO_SELL_FIELDS = ("partnerRole", "solutionArea", "solutionPlay")
"""What a services co-sell referral must carry (spec §2.3, §9.3), as JSON members."""

TERMINAL_SUBSTATUSES = frozenset(
    {
        ReferralSubstatus.WON,
        ReferralSubstatus.LOST,
        ReferralSubstatus.DECLINED,
        ReferralSubstatus.EXPIRED,
        ReferralSubstatus.ERROR,
    }
)

_NEXT_STATUSES: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    ReferralStatus.NEW: frozenset(
        {ReferralStatus.NEW, ReferralStatus.ACTIVE, ReferralStatus.CLOSED}
    ),
    ReferralStatus.ACTIVE: frozenset({ReferralStatus.ACTIVE, ReferralStatus.CLOSED}),
    ReferralStatus.CLOSED: frozenset(),
}

ALLOWED_SUBSTATUSES: dict[ReferralStatus, frozenset[ReferralSubstatus]] = {
    ReferralStatus.NEW: frozenset({ReferralSubstatus.PENDING, ReferralSubstatus.RECEIVED}),
    ReferralStatus.ACTIVE: frozenset({ReferralSubstatus.ACCEPTED}),
    ReferralStatus.CLOSED: TERMINAL_SUBSTATUSES,
}


def is_terminal(status: ReferralStatus | None, substatus: ReferralSubstatus | None) -> bool:
    """Whether a referral in this state accepts no further changes."""
    return status == ReferralStatus.CLOSED or substatus in TERMINAL_SUBSTATUSES


def check_transition(
    current_status: ReferralStatus | None,
    current_substatus: ReferralSubstatus | None,
    new_status: ReferralStatus,
    new_substatus: ReferralSubstatus | None,
) -> str | None:
    """Check a status/substatus change against Partner Center's rules (spec §3.3).

    Args:
        current_status: the referral's status now.
        current_substatus: the referral's substatus now.
        new_status: the status to move to.
        new_substatus: the substatus to move to; None keeps the current one.

    Returns:
        None when the change is legal, else a sentence saying why it is not.
    """
    if is_terminal(current_status, current_substatus):
        return (
            f"the referral is closed ({current_status}/{current_substatus}); Partner Center "
            "allows no changes to a Won, Lost, Declined, Expired or Error referral"
        )
    substatus = new_substatus if new_substatus is not None else current_substatus
    if current_status not in _NEXT_STATUSES:
        return f"the referral's current status {current_status!r} is unknown; re-read it"
    allowed_next = _NEXT_STATUSES[current_status]
    if new_status not in allowed_next:
        legal = ", ".join(sorted(s.value for s in allowed_next))
        return f"status {current_status} cannot change to {new_status}; allowed: {legal}"
    allowed_sub = ALLOWED_SUBSTATUSES[new_status]
    if substatus not in allowed_sub:
        legal = ", ".join(sorted(s.value for s in allowed_sub))
        return f"substatus {substatus} is not allowed with status {new_status}; use one of: {legal}"
    if substatus == ReferralSubstatus.EXPIRED:
        return "only Partner Center expires a referral (after 14 days without an answer)"
    if new_status == ReferralStatus.CLOSED:
        if current_status == ReferralStatus.NEW and substatus in (
            ReferralSubstatus.WON,
            ReferralSubstatus.LOST,
        ):
            return f"accept the referral first (Active/Accepted), then close it as {substatus}"
        if current_status == ReferralStatus.ACTIVE and substatus == ReferralSubstatus.DECLINED:
            return "only a New referral can be declined; close an accepted one as Lost instead"
    return None


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _utc(value: object) -> object:
    value = _blank_to_none(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _decimal_out(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _decimal_in(value: object) -> object:
    value = _blank_to_none(value)
    if isinstance(value, str):
        return value.replace(",", "")  # "10,000" appears in hand-made payloads
    return value


def _as_utc(value: object) -> object:
    value = _blank_to_none(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value  # let pydantic report it (it accepts more than fromisoformat)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return _utc(value)


Opt = Annotated[str | None, BeforeValidator(lambda v: None if v is None else str(v))]
OptDateTime = Annotated[datetime | None, BeforeValidator(_as_utc)]
OptDecimal = Annotated[
    Decimal | None,
    BeforeValidator(_decimal_in),
    PlainSerializer(lambda v: None if v is None else _decimal_out(v), return_type=Any),
]
OptBool = Annotated[bool | None, BeforeValidator(_blank_to_none)]


def _to_enum(cls: type[_E], value: object) -> _E | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, cls):
        return value
    return cls(str(value))


class _Tolerant(BaseModel):
    """Base of every model read from Partner Center."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        alias_generator=to_camel,
        frozen=True,
        serialize_by_alias=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_containers(cls, value: object, info: ValidationInfo) -> object:
        """Blank (null or "") lists are empty, blank list items dropped, blank objects null."""
        if info.field_name is None:
            return value
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, list) and get_origin(annotation) is list:
            return [item for item in value if not _is_blank(item)]
        if not _is_blank(value):
            return value
        if get_origin(annotation) is list:
            return []
        members = get_args(annotation) or (annotation,)
        if any(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            return None
        return value


OptReferralStatus = Annotated[
    ReferralStatus | None, BeforeValidator(partial(_to_enum, ReferralStatus))
]
OptReferralSubstatus = Annotated[
    ReferralSubstatus | None, BeforeValidator(partial(_to_enum, ReferralSubstatus))
]
OptReferralType = Annotated[ReferralType | None, BeforeValidator(partial(_to_enum, ReferralType))]
OptReferralQualification = Annotated[
    ReferralQualification | None, BeforeValidator(partial(_to_enum, ReferralQualification))
]
OptReferralDirection = Annotated[
    ReferralDirection | None, BeforeValidator(partial(_to_enum, ReferralDirection))
]
OptAssistanceRequestCode = Annotated[
    AssistanceRequestCode | None, BeforeValidator(partial(_to_enum, AssistanceRequestCode))
]
OptSolutionType = Annotated[SolutionType | None, BeforeValidator(partial(_to_enum, SolutionType))]
OptTargetType = Annotated[TargetType | None, BeforeValidator(partial(_to_enum, TargetType))]


def _single(cls: type[_E], value: object) -> _E | None:
    """An enum value sent as a string, or as a list of strings (its first is kept)."""
    if isinstance(value, list):
        value = next((v for v in value if not _is_blank(v)), None)
    return _to_enum(cls, value)


OptPartnerRole = Annotated[PartnerRole | None, BeforeValidator(partial(_single, PartnerRole))]
OptSolutionArea = Annotated[SolutionArea | None, BeforeValidator(partial(_single, SolutionArea))]
OptSolutionPlay = Annotated[SolutionPlay | None, BeforeValidator(partial(_single, SolutionPlay))]
OptMarketplaceIntent = Annotated[
    CustomerMarketplaceIntent | None,
    BeforeValidator(partial(_single, CustomerMarketplaceIntent)),
]


class ContactPreference(_Tolerant):
    """How a member wants to be contacted."""

    locale: Opt = None
    disable_notifications: OptBool = None


class Member(_Tolerant):
    """A person: a customer contact or a member of the referral's team."""

    first_name: Opt = None
    last_name: Opt = None
    email: Opt = None
    phone_number: Opt = None
    title: Opt = None
    contact_preference: ContactPreference | None = None


class Address(_Tolerant):
    """A postal address; `country` is ISO 3166-1 alpha-2."""

    address_line1: Opt = None
    address_line2: Opt = None
    city: Opt = None
    state: Opt = None
    postal_code: Opt = None
    country: Opt = None
    region: Opt = None


class CustomerId(_Tolerant):
    """An id of the customer (DUNS or a Microsoft account id)."""

    profile_type: Opt = None
    id: Opt = None


class CustomerProfile(_Tolerant):
    """The customer the referral is about."""

    name: Opt = None
    address: Address | None = None
    size: Opt = None
    team: list[Member] = Field(default_factory=list)
    ids: list[CustomerId] = Field(default_factory=list)
    is_matching_complete: OptBool = None


class Consent(_Tolerant):
    """What the customer consented to (note the API's own spelling `consentToToShare...`)."""

    consent_to_to_share_info_with_others: OptBool = None
    consent_to_contact: OptBool = None
    consent_to_share_referral_with_microsoft_sellers: OptBool = None
    consent_to_microsoft_to_contact_specific_partners: OptBool = None


class InvitedBy(_Tolerant):
    """The organisation that sent an incoming referral."""

    organization_id: Opt = None
    organization_name: Opt = None


class InviteContext(_Tolerant):
    """Why and by whom a referral was shared; `assistanceRequestCode` is the help asked of Microsoft."""

    notes: Opt = None
    invited_by: InvitedBy | None = None
    assistance_request_code: OptAssistanceRequestCode = None
    invited_mpn_id: Opt = None


class Tag(_Tolerant):
    """An industry, product or service tag."""

    id: Opt = None


class SolutionTag(_Tolerant):
    """A solution the customer needs: a co-sell solution id (`SOL-...`) or a category."""

    id: Opt = None
    name: Opt = None
    type: OptSolutionType = None
    publisher_name: Opt = None


class Requirements(_Tolerant):
    """What the customer needs."""

    industries: list[Tag] = Field(default_factory=list)
    products: list[Tag] = Field(default_factory=list)
    services: list[Tag] = Field(default_factory=list)
    solutions: list[SolutionTag] = Field(default_factory=list)


def _lift_services_co_sell(value: object) -> object:
    """Read the services co-sell members from `details.requirements.additionalRequirements`.

    Only when the referral does not carry them at its top level (the placement cosell writes).
    """
    if not isinstance(value, dict):
        return value
    details = value.get("details")
    requirements = details.get("requirements") if isinstance(details, dict) else None
    extra = requirements.get("additionalRequirements") if isinstance(requirements, dict) else None
    if not isinstance(extra, dict):
        return value
    lifted = {
        k: extra[k]
        for k in (*SERVICES_CO_SELL_FIELDS, "customerMarketplaceIntent")
        if _is_blank(value.get(k)) and not _is_blank(extra.get(k))
    }
    return {**value, **lifted} if lifted else value


class ReferralDetails(_Tolerant):
    """Deal value, currency, closing date, notes and requirements."""

    notes: Opt = None
    deal_value: OptDecimal = None
    currency: Opt = None
    closing_date_time: OptDateTime = None
    requirements: Requirements | None = None
    customer_requested_contact: OptBool = None


class ReferralTarget(_Tolerant):
    """Whom a referral is addressed to; `BusinessProfileLocation` `msft` is Microsoft."""

    id: Opt = None
    type: OptTargetType = None


class TrackingInfo(_Tolerant):
    """Microsoft's CRM ids for the deal."""

    microsoft_msx_id: Opt = None
    microsoft_us_fed_opportunity_id: Opt = Field(None, alias="microsoftUSFedOpportunityId")
    microsoft_us_fed_lead_id: Opt = Field(None, alias="microsoftUSFedLeadId")
    migrated_psc_deal_id: Opt = Field(None, alias="migratedPSCDealId")
    migrated_psc_partner_deal_id: Opt = Field(None, alias="migratedPSCPartnerDealId")


class Link(_Tolerant):
    """A link in `links`; never relied upon for navigation (the docs misspell them)."""

    uri: Opt = None
    method: Opt = None


class Links(_Tolerant):
    """The referral's links."""

    related_referrals: Link | None = None
    self_: Link | None = Field(None, alias="self")


class Referral(_Tolerant):
    """A referral as Partner Center returns it."""

    id: ReferralId | None = None
    engagement_id: EngagementId | None = None
    name: Opt = None
    organization_id: Opt = None
    organization_name: Opt = None
    external_reference_id: Opt = None
    created_date_time: OptDateTime = None
    updated_date_time: OptDateTime = None
    expiration_date_time: OptDateTime = None
    accepted_date_time: OptDateTime = None
    closed_date_time: OptDateTime = None
    status: OptReferralStatus = None
    substatus: OptReferralSubstatus = None
    status_reason: Opt = None
    type: OptReferralType = None
    qualification: OptReferralQualification = None
    direction: OptReferralDirection = None
    customer_profile: CustomerProfile | None = None
    consent: Consent | None = None
    details: ReferralDetails | None = None
    team: list[Member] = Field(default_factory=list)
    invite_context: InviteContext | None = None
    target: list[ReferralTarget] = Field(default_factory=list)
    e_tag: Opt = None
    links: Links | None = None
    tracking_info: TrackingInfo | None = None
    sales_stage: Opt = None
    mpn_id: Opt = None
    campaign_id: Opt = None
    partner_role: OptPartnerRole = None
    solution_area: OptSolutionArea = None
    solution_play: OptSolutionPlay = None
    customer_marketplace_intent: OptMarketplaceIntent = None

    _lift = model_validator(mode="before")(_lift_services_co_sell)

    @field_validator("id", "engagement_id", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        value = _blank_to_none(value)
        return None if value is None else str(value)

    @property
    def is_terminal(self) -> bool:
        """Whether Partner Center accepts no further changes to this referral."""
        return is_terminal(self.status, self.substatus)

    @property
    def is_shared_with_microsoft(self) -> bool:
        """Whether Microsoft sellers see this referral (consent, help requested, or target msft)."""
        if self.consent and self.consent.consent_to_share_referral_with_microsoft_sellers:
            return True
        code = self.invite_context.assistance_request_code if self.invite_context else None
        if code is not None and code not in NO_HELP_CODES:
            return True
        return any(t.id == "msft" for t in self.target)

    @property
    def deal_type(self) -> DealType:
        """Private, Partner-led or Co-sell, from the consent and the help requested (spec §9.2)."""
        shared = (
            self.consent.consent_to_share_referral_with_microsoft_sellers if self.consent else None
        )
        code = self.invite_context.assistance_request_code if self.invite_context else None
        return DealType.of(shared, code)

    @property
    def is_services_co_sell(self) -> bool:
        """A co-sell referral whose requirements name services (see the module docstring)."""
        requirements = self.details.requirements if self.details else None
        return self.deal_type is DealType.CO_SELL and bool(requirements and requirements.services)

    def missing_services_co_sell_fields(self) -> list[str]:
        """The services co-sell members a services co-sell referral lacks (JSON names)."""
        if not self.is_services_co_sell:
            return []
        values = (self.partner_role, self.solution_area, self.solution_play)
        return [n for n, v in zip(SERVICES_CO_SELL_FIELDS, values, strict=True) if v is None]


_ISO2 = re.compile(r"^[A-Z]{2}$")
_ISO4217 = re.compile(r"^[A-Z]{3}$")


class NewReferral(BaseModel):
    """A referral to create (POST). Strict: what Partner Center requires is checked here.

    Partner Center stores a partner's own referral as Active/Accepted and Outgoing whatever
    status is sent, so none is sent.
    """

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    name: str = Field(min_length=1)
    type: ReferralType
    customer_profile: CustomerProfile
    consent: Consent
    details: ReferralDetails
    external_reference_id: str | None = None
    qualification: ReferralQualification | None = ReferralQualification.SALES_QUALIFIED
    team: list[Member] = Field(default_factory=list)
    invite_context: InviteContext | None = None
    target: list[ReferralTarget] = Field(default_factory=list)
    partner_role: PartnerRole | None = None
    solution_area: SolutionArea | None = None
    solution_play: SolutionPlay | None = None
    customer_marketplace_intent: CustomerMarketplaceIntent | None = None

    @field_validator(
        "partner_role",
        "solution_area",
        "solution_play",
        "customer_marketplace_intent",
        mode="before",
    )
    @classmethod
    def _tolerant_enums(cls, value: object, info: ValidationInfo) -> object:
        enum = {
            "partner_role": PartnerRole,
            "solution_area": SolutionArea,
            "solution_play": SolutionPlay,
            "customer_marketplace_intent": CustomerMarketplaceIntent,
        }[str(info.field_name)]
        return _single(enum, value)

    @model_validator(mode="after")
    def _required_parts(self) -> NewReferral:
        profile = self.customer_profile
        if not profile.name:
            raise ValueError("customerProfile.name is required: the customer's company name")
        country = profile.address.country if profile.address else None
        if not country or not _ISO2.match(country):
            raise ValueError(
                f"customerProfile.address.country must be a 2-letter ISO 3166 code such as 'US' "
                f"(got {country!r})"
            )
        details = self.details
        if not details.currency or not _ISO4217.match(details.currency):
            raise ValueError(
                f"details.currency must be a 3-letter ISO 4217 code such as 'USD' "
                f"(got {details.currency!r})"
            )
        if details.deal_value is None or details.deal_value < 0:
            raise ValueError("details.dealValue must be a number >= 0")
        if details.closing_date_time is None:
            raise ValueError("details.closingDateTime is required")
        missing = Referral.model_validate(self.to_json()).missing_services_co_sell_fields()
        if missing:
            raise ValueError(
                f"a services co-sell referral needs {', '.join(missing)}: Partner Center "
                "requires the partner role, solution area and solution play (FY26) for one"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        """The request body, in Partner Center's camelCase, without unset (None) fields."""
        body: dict[str, Any] = _prune(self.model_dump(mode="json", by_alias=True))
        return body


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def format_datetime(value: datetime) -> str:
    """Partner Center's datetime format: UTC, ISO 8601, fractional seconds, `Z`."""
    if value.tzinfo is None:
        raise ValueError("datetimes sent to Partner Center must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ReferralChanges:
    """A typed set of changes to a referral; None means "leave as is".

    `to_json_patch` turns it into JSON Patch operations: `replace` for scalar fields and
    whole lists, `add` with `/-` for appended team members (spec §2.4). Fields Partner
    Center makes read-only after creation (customer name and address, spec §5.5) are
    deliberately absent.
    """

    name: str | None = None
    deal_value: Decimal | None = None
    currency: str | None = None
    closing_date_time: datetime | None = None
    notes: str | None = None
    status: ReferralStatus | None = None
    substatus: ReferralSubstatus | None = None
    status_reason: str | None = None
    assistance_request_code: AssistanceRequestCode | None = None
    invite_notes: str | None = None
    consent_to_share_referral_with_microsoft_sellers: bool | None = None
    consent_to_contact: bool | None = None
    consent_to_share_info_with_others: bool | None = None
    external_reference_id: str | None = None
    sales_stage: str | None = None
    team_to_add: tuple[Member, ...] = field(default=())
    solutions: tuple[SolutionTag, ...] | None = None
    partner_role: PartnerRole | None = None
    solution_area: SolutionArea | None = None
    solution_play: SolutionPlay | None = None
    customer_marketplace_intent: CustomerMarketplaceIntent | None = None

    def __post_init__(self) -> None:
        if self.currency is not None and not _ISO4217.match(self.currency):
            raise ValueError(
                f"currency must be a 3-letter ISO 4217 code such as 'USD' (got {self.currency!r})"
            )
        if self.deal_value is not None and self.deal_value < 0:
            raise ValueError(f"deal value must be >= 0 (got {self.deal_value})")
        if self.closing_date_time is not None and self.closing_date_time.tzinfo is None:
            raise ValueError("closing_date_time must be timezone-aware")
        if self.substatus is not None and self.status is None:
            raise ValueError(
                "a substatus change needs the status too (Partner Center checks them as a pair)"
            )

    @property
    def is_empty(self) -> bool:
        """Whether there is nothing to send."""
        return not self.to_json_patch()

    def to_json_patch(self, current: Referral | None = None) -> list[dict[str, Any]]:
        """The JSON Patch operations (RFC 6902, `replace` and `add` only), in a stable order.

        Args:
            current: the referral as last read. JSON Patch needs a member's parent to exist;
                with `current`, a change under an absent optional object (`inviteContext`,
                `details.requirements`) becomes one `add` of that object, and team members
                for a referral without a team become one `add` of the whole list. Without
                it, every change is a `replace` of the member itself.

        Returns:
            The operations; empty when there is nothing to change.
        """
        ops: list[dict[str, Any]] = []
        created: dict[str, dict[str, Any]] = {}

        def absent(parent: str) -> bool:
            if current is None:
                return False
            if parent == "/inviteContext":
                return current.invite_context is None
            if parent == "/details/requirements":
                return current.details is None or current.details.requirements is None
            return False

        def replace(path: str, value: Any) -> None:
            if value is None:
                return
            if isinstance(value, StrEnum):
                value = value.value
            parent, _, member = path.rpartition("/")
            if absent(parent):
                if parent not in created:
                    created[parent] = {}
                    ops.append({"op": "add", "path": parent, "value": created[parent]})
                created[parent][member] = value
                return
            ops.append({"op": "replace", "path": path, "value": value})

        replace("/name", self.name)
        replace("/externalReferenceId", self.external_reference_id)
        replace(
            "/details/dealValue", None if self.deal_value is None else _decimal_out(self.deal_value)
        )
        replace("/details/currency", self.currency)
        replace(
            "/details/closingDateTime",
            None if self.closing_date_time is None else format_datetime(self.closing_date_time),
        )
        replace("/details/notes", self.notes)
        replace("/salesStage", self.sales_stage)
        replace("/inviteContext/assistanceRequestCode", self.assistance_request_code)
        replace("/inviteContext/notes", self.invite_notes)
        replace(
            "/consent/consentToShareReferralWithMicrosoftSellers",
            self.consent_to_share_referral_with_microsoft_sellers,
        )
        replace("/consent/consentToContact", self.consent_to_contact)
        replace("/consent/consentToToShareInfoWithOthers", self.consent_to_share_info_with_others)
        if self.solutions is not None:
            replace(
                "/details/requirements/solutions",
                [_prune(s.model_dump(mode="json", by_alias=True)) for s in self.solutions],
            )
        for path, value in (
            ("/partnerRole", self.partner_role),
            ("/solutionArea", self.solution_area),
            ("/solutionPlay", self.solution_play),
            ("/customerMarketplaceIntent", self.customer_marketplace_intent),
        ):
            if value is not None:  # optional top-level members: `add` sets or replaces one
                ops.append({"op": "add", "path": path, "value": value.value})
        replace("/status", self.status)
        replace("/substatus", self.substatus)
        replace("/statusReason", self.status_reason)
        members = [_prune(m.model_dump(mode="json", by_alias=True)) for m in self.team_to_add]
        if members and current is not None and not current.team:
            ops.append({"op": "add", "path": "/team", "value": members})
        else:
            ops.extend({"op": "add", "path": "/team/-", "value": m} for m in members)
        return ops

    def problems(self, current: Referral) -> list[str]:
        """What Partner Center would refuse in this change set, checked against the current referral.

        Args:
            current: the referral as last read.

        Returns:
            One sentence per problem; empty when the change looks acceptable.
        """
        if self.is_empty:
            return []
        found: list[str] = []
        if current.is_terminal:
            return [
                f"the referral is closed ({current.status}/{current.substatus}); "
                "Partner Center allows no changes after Won, Lost, Declined or Expired"
            ]
        if self.status is not None:
            reason = check_transition(
                current.status,
                current.substatus,
                self.status,
                self.substatus,
            )
            if reason:
                found.append(reason)
        if (
            self.status == ReferralStatus.CLOSED
            and self.substatus == ReferralSubstatus.DECLINED
            and not (self.status_reason or "").strip()
        ):
            found.append("declining a referral needs a statusReason (why it is declined)")
        consent = current.consent or Consent()
        for name, old, new in (
            (
                "consentToShareReferralWithMicrosoftSellers",
                consent.consent_to_share_referral_with_microsoft_sellers,
                self.consent_to_share_referral_with_microsoft_sellers,
            ),
            ("consentToContact", consent.consent_to_contact, self.consent_to_contact),
            (
                "consentToToShareInfoWithOthers",
                consent.consent_to_to_share_info_with_others,
                self.consent_to_share_info_with_others,
            ),
        ):
            if old is True and new is False:
                found.append(f"consent {name} cannot be withdrawn once given")
        if self.invite_notes is not None and current.is_shared_with_microsoft:
            old_notes = current.invite_context.notes if current.invite_context else None
            if self.invite_notes != (old_notes or ""):
                found.append(
                    "the notes to Microsoft are read-only once the referral is shared with Microsoft"
                )
        code = current.invite_context.assistance_request_code if current.invite_context else None
        if (
            self.assistance_request_code is not None
            and code is not None
            and code not in NO_HELP_CODES
            and self.assistance_request_code != code
        ):
            found.append(f"the help requested from Microsoft is read-only once set (it is {code})")
        return found
