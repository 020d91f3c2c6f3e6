"""The mapping file's model: fields, the stage table, and the opportunity's own fields.

A mapping (YAML, validated by these pydantic models) says, per canonical field: the Partner
Center path, the Salesforce object and field (`Opportunity.Amount`, or `Account.BillingCity`
for the opportunity's account), the direction, the conflict owner, the transform, whether
Partner Center makes it read-only after the referral is created, and a default for creates.

Structure the models cannot check one value at a time (duplicate names, one stage field, the
stage table's stages distinct, `reason_field` naming a field) is checked by the `Mapping`
validator, which reports every such problem at once with the place in the file it concerns
(`consistency_problems`); `load_mapping` turns those places into file:line:column.

The stage table (`StageTable`) is the one transform that needs more than a value: Partner
Center's status and substatus read as one canonical "Status/Substatus", and writing a stage to
Salesforce depends on the current `StageName`:

    Salesforce StageName         canonical            Partner Center status/substatus
    on_hold_stage            <-> New/Pending      <-> New/Pending, New/Received
    any other open stage     <-> Active/Accepted  <-> Active/Accepted
    won_stage, other_won     <-> Closed/Won       <-> Closed/Won
    lost_stage, other_lost   <-> Closed/Lost      <-> Closed/Lost (+ statusReason)
    lost_stage               <-  Closed/Declined, Closed/Expired, Closed/Error

Writing "Active/Accepted" keeps the current `StageName` when it is already an open stage other
than the on-hold stage (a seller's own pipeline stage is never overwritten), else sets
`active_stage`; writing a closed value keeps a current stage that already reads the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cosell.mapping.transforms import (
    DateTransform,
    DealTypeTransform,
    SimpleTransform,
    StageTransform,
    TextTransform,
    Transform,
    ValueMappingError,
)
from cosell.mapping.types import STAGE_FIELD, Direction, FieldRule, Owner, Value

OPPORTUNITY = "Opportunity"
ACCOUNT = "Account"
LEAD = "Lead"
ROLES = (OPPORTUNITY, ACCOUNT)
"""The Salesforce records a field can live on: the opportunity, and its account (AccountId)."""
LEAD_ROLES = (LEAD,)
"""The record a field of the `lead` section lives on."""

STAGE_PATH = "status"
"""The Partner Center path of the stage field (the stage transform also writes substatus)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RECORD_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SALESFORCE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)$")
_PATH = re.compile(r"^/?[A-Za-z][A-Za-z0-9]*(/([A-Za-z][A-Za-z0-9]*|0))*$")

Loc = tuple[str | int, ...]
"""A place in the mapping document: keys and list indexes from the root."""


@dataclass(frozen=True)
class Problem:
    """One problem with a mapping, and where it is.

    Attributes:
        place: `file:line:column` (or `file` when the place is the whole file).
        message: what is wrong and what to do.
    """

    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


class MappingError(Exception):
    """A mapping file that cannot be used; `problems` lists every problem with its place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _api_name(value: str, what: str) -> str:
    if not _API_NAME.match(value):
        raise ValueError(f"{value!r} is not a Salesforce API name ({what})")
    return value


class OpportunityFields(_Spec):
    """The opportunity fields cosell itself writes; they are not merged.

    Attributes:
        sync: the checkbox a seller ticks to share the opportunity with Partner Center.
        referral_id: the referral's id (external id, unique); creates upsert on it.
        referral_link: the referral's page in Partner Center.
        partner_center_status: the referral's "Status/Substatus", read-only for sellers.
        sync_status: Synced / Pending / Error.
        sync_error: the last error, for the seller.
        audit: the audit trail, newest first.
    """

    sync: str = "Sync_with_Partner_Center__c"
    referral_id: str = "Referral_Identifier__c"
    referral_link: str = "Referral_Link__c"
    partner_center_status: str = "Partner_Center_Status__c"
    sync_status: str = "Partner_Center_Sync_Status__c"
    sync_error: str = "Partner_Center_Sync_Error__c"
    audit: str = "Audit__c"

    @field_validator("*")
    @classmethod
    def _names(cls, value: str) -> str:
        return _api_name(value, "a field of Opportunity")

    def names(self) -> dict[str, str]:
        """Role (`sync`, `referral_id`, ...) -> field name."""
        return dict(self.model_dump())


class ChildObject(_Spec):
    """A child object of the opportunity whose rows are one of the synced collections.

    Attributes:
        object: the child object's API name.
        relationship: the opportunity's child relationship name (the subquery's FROM).
        parent: the child's field that points to the opportunity.
        fields: the other fields cosell reads or writes on it.
    """

    object: str
    relationship: str
    parent: str
    fields: tuple[str, ...] = ()

    @field_validator("object", "relationship", "parent")
    @classmethod
    def _name(cls, value: str) -> str:
        return _api_name(value, "a child object of Opportunity")

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _api_name(name.split(".")[-1], "a field of a child object")
        return value


class SolutionObject(ChildObject):
    """The Microsoft solutions of an opportunity (`details.requirements.solutions`).

    Attributes:
        solution_id: the solution's Partner Center id (`SOL-...` or a GUID): its identity.
        name: the solution's name.
        type: the solution's type (`Name`, `Category`, `None`).
    """

    object: str = "Microsoft_Solution__c"
    relationship: str = "Microsoft_Solutions__r"
    parent: str = "Opportunity__c"
    solution_id: str = "Solution_Id__c"
    name: str = "Name"
    type: str = "Solution_Type__c"

    @field_validator("solution_id", "name", "type")
    @classmethod
    def _solution_field(cls, value: str) -> str:
        return _api_name(value, "a field of the solution object")

    def names(self) -> tuple[str, ...]:
        """The solution fields cosell reads and writes (identity first)."""
        return (self.solution_id, self.name, self.type, *self.fields)


def _contact_roles() -> ChildObject:
    return ChildObject(
        object="OpportunityContactRole",
        relationship="OpportunityContactRoles",
        parent="OpportunityId",
        fields=("ContactId", "IsPrimary", "Role"),
    )


def _team_members() -> ChildObject:
    return ChildObject(
        object="OpportunityTeamMember",
        relationship="OpportunityTeamMembers",
        parent="OpportunityId",
        fields=("UserId", "OpportunityAccessLevel"),
    )


class Collections(_Spec):
    """The opportunity's child rows kept in sync as sets with the referral's lists.

    Attributes:
        solutions: Microsoft solutions <-> `details.requirements.solutions` (by solution id).
        contact_roles: contact roles -> Contact <-> `customerProfile.team` (by email).
        team_members: team members -> User <-> the referral's `team` (by email).
    """

    solutions: SolutionObject = Field(default_factory=SolutionObject)
    contact_roles: ChildObject = Field(default_factory=_contact_roles)
    team_members: ChildObject = Field(default_factory=_team_members)

    def objects(self) -> dict[str, ChildObject]:
        """Section key -> child object."""
        return {
            "solutions": self.solutions,
            "contact_roles": self.contact_roles,
            "team_members": self.team_members,
        }


class StageTable(_Spec):
    """How Partner Center's status/substatus and the opportunity's StageName correspond.

    Attributes:
        on_hold_stage: the stage of a referral not yet accepted (New/Pending); moving an
            opportunity out of it accepts the referral.
        active_stage: the stage set when a referral is accepted and the opportunity is on hold
            (or closed).
        won_stage: the stage for Closed/Won.
        lost_stage: the stage for Closed/Lost, and for Closed/Declined/Expired/Error.
        other_won_stages: more closed-won stages of the org (read as Closed/Won).
        other_lost_stages: more closed-lost stages of the org (read as Closed/Lost).
        reason_field: the canonical name of a mapped field holding the loss reason; its value
            is sent as `statusReason` when the opportunity is lost or declined.
        lost_reason: the `statusReason` when there is no reason field or it is empty.
        declined_reason: the `statusReason` of a decline (lost while on hold) without a reason.
    """

    on_hold_stage: str
    active_stage: str
    won_stage: str
    lost_stage: str
    other_won_stages: tuple[str, ...] = ()
    other_lost_stages: tuple[str, ...] = ()
    reason_field: str | None = None
    lost_reason: str = Field(default="Lost in Salesforce", min_length=1)
    declined_reason: str = Field(default="Declined in Salesforce", min_length=1)

    @property
    def won_stages(self) -> tuple[str, ...]:
        """Every stage that reads as Closed/Won."""
        return (self.won_stage, *self.other_won_stages)

    @property
    def lost_stages(self) -> tuple[str, ...]:
        """Every stage that reads as Closed/Lost."""
        return (self.lost_stage, *self.other_lost_stages)

    def stage_names(self) -> dict[str, str]:
        """Every stage the table names, by the key it is named under."""
        named = {
            "on_hold_stage": self.on_hold_stage,
            "active_stage": self.active_stage,
            "won_stage": self.won_stage,
            "lost_stage": self.lost_stage,
        }
        named |= {f"other_won_stages[{i}]": s for i, s in enumerate(self.other_won_stages)}
        named |= {f"other_lost_stages[{i}]": s for i, s in enumerate(self.other_lost_stages)}
        return named

    def from_partner_center(self, status: Any, substatus: Any) -> Value:
        """The canonical "Status/Substatus" of a referral.

        New/Pending and New/Received (and a New referral without substatus) read as
        "New/Pending", an Active referral as "Active/Accepted": each pair means one thing to
        Salesforce, and must compare equal to the stage it is written as.
        """
        if status is None or status == "":
            return None
        status_text = _known(str(status), ("None", "New", "Active", "Closed"))
        sub_text = None if substatus in (None, "") else str(substatus)
        if status_text == "New" and (sub_text is None or sub_text.lower() in _NEW_SUBSTATUSES):
            return "New/Pending"
        if status_text == "Active" and (
            sub_text is None or sub_text.lower() in ("accepted", "none")
        ):
            return "Active/Accepted"
        sub_known = _known(sub_text or "None", _SUBSTATUSES)
        return f"{status_text}/{sub_known}"

    def to_partner_center(self, value: Value) -> tuple[str, str]:
        """The (status, substatus) of a canonical stage."""
        if not isinstance(value, str) or "/" not in value:
            raise ValueMappingError(f"stage {value!r} is not a Partner Center Status/Substatus")
        status, _, substatus = value.partition("/")
        return status, substatus

    def from_salesforce(self, stage: Any) -> Value:
        """The canonical stage of a StageName."""
        if stage is None or stage == "":
            return None
        name = str(stage)
        if name == self.on_hold_stage:
            return "New/Pending"
        if name in self.won_stages:
            return "Closed/Won"
        if name in self.lost_stages:
            return "Closed/Lost"
        return "Active/Accepted"

    def to_salesforce(self, value: Value, current: Any = None) -> str | None:
        """The StageName to write for a canonical stage, given the current one.

        Args:
            value: the canonical stage ("Status/Substatus").
            current: the opportunity's StageName now (None for a new opportunity).

        Returns:
            The StageName; `current` itself when it already reads as `value`.
        """
        if value is None:
            return None
        status, substatus = self.to_partner_center(value)
        text = f"{status}/{substatus}"
        current_name = None if current in (None, "") else str(current)
        if current_name is not None and self.from_salesforce(current_name) == self._read_as(text):
            return current_name
        if status == "New":
            return self.on_hold_stage
        if status == "Active":
            return self.active_stage
        if text == "Closed/Won":
            return self.won_stage
        if status == "Closed":
            return self.lost_stage
        raise ValueMappingError(
            f"stage {value!r} has no Salesforce stage: use New, Active or Closed as the status"
        )

    def _read_as(self, value: str) -> str:
        """What Salesforce reads back after `value` is written (Declined reads as Lost)."""
        if value.startswith("New/"):
            return "New/Pending"
        if value.startswith("Active/"):
            return "Active/Accepted"
        return "Closed/Won" if value == "Closed/Won" else "Closed/Lost"


_NEW_SUBSTATUSES = ("pending", "received", "none")
_STATUSES = ("New", "Active", "Closed")
_SUBSTATUSES = (
    "None",
    "Pending",
    "Received",
    "Accepted",
    "Won",
    "Lost",
    "Declined",
    "Expired",
    "Error",
)


def _known(text: str, known: tuple[str, ...]) -> str:
    """`text` in the documented spelling when it is a documented value (any case)."""
    return next((k for k in known if k.lower() == text.lower()), text)


def _transform_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class FieldMapping(_Spec):
    """One mapped field.

    Attributes:
        name: the canonical field name (lower_snake_case, unique in the mapping).
        partner_center: the referral path, camelCase segments joined by `/`
            (`details/dealValue`).
        salesforce: `Object.Field`, where Object is `Opportunity` or `Account` (the
            opportunity's account); or null for a constant, whose `default` stands for the
            Salesforce side (e.g. `details/currency` in an org without multiple currencies).
        direction: `both`, `to_salesforce` or `to_partner_center`.
        owner: `partner_center` or `salesforce`: who wins when both changed it differently.
        transform: how values compare and convert (default `text`).
        read_only_after_create: Partner Center refuses changes once the referral exists.
        read_only_once_set: Partner Center refuses changes once Partner Center holds a value
            (not unset, not false): it can be set once, never changed or cleared after.
        default: the value used when a record is created and the source has none (a
            Salesforce value, read through the transform).
        default_days_from_today: for a `date` field, a default relative to the day the record
            is created (e.g. 90: a referral from Microsoft without a closing date becomes an
            opportunity closing in 90 days, since CloseDate is required in Salesforce).
        description: free text for the admin.
    """

    name: str
    partner_center: str
    salesforce: str | None
    direction: Direction
    owner: Owner
    transform: Transform = Field(default_factory=TextTransform)
    read_only_after_create: bool = False
    read_only_once_set: bool = False
    default: str | bool | int | float | date | None = None
    default_days_from_today: int | None = Field(default=None, ge=0)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} is not a field name: use lower_snake_case (letters, digits, _)"
            )
        return value

    @field_validator("partner_center")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError(
                f"{value!r} is not a referral path: camelCase names joined by '/', "
                "e.g. details/dealValue (0 names a list's first item: customerProfile/team/0/email)"
            )
        return value.strip("/")

    @field_validator("salesforce")
    @classmethod
    def _salesforce(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _SALESFORCE.match(value)
        if not match or match.group(1) not in ROLES:
            raise ValueError(
                f"{value!r} must be Opportunity.<Field> or Account.<Field> (the opportunity's "
                "account), e.g. Opportunity.Amount (Lead fields go in the lead section)"
            )
        return value

    @field_validator("transform", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _transform_shorthand(value)

    @field_validator("default")
    @classmethod
    def _default_reads(cls, value: Any, info: ValidationInfo) -> Any:
        transform = info.data.get("transform")
        if value is None or transform is None:
            return value
        if isinstance(transform, StageTransform):
            if not isinstance(value, str) or value.partition("/")[0] not in _STATUSES:
                raise ValueError(
                    f"default {value!r} of the stage must be a Partner Center Status/Substatus "
                    "such as 'New/Pending' or 'Active/Accepted'"
                )
            return value
        try:
            transform.from_salesforce(value.isoformat() if isinstance(value, date) else value)
        except ValueMappingError as exc:
            raise ValueError(f"default {value!r} does not fit the transform: {exc}") from None
        return value

    @model_validator(mode="after")
    def _relative_default(self) -> FieldMapping:
        if self.default_days_from_today is None:
            return self
        if not isinstance(self.transform, DateTransform):
            raise ValueError(  # noqa: TRY004 - pydantic reports ValueErrors with their place
                "default_days_from_today is for date fields only (transform: date); "
                "use default for other fields"
            )
        if self.default is not None:
            raise ValueError("give either default or default_days_from_today, not both")
        return self

    def _raw_default(self) -> Any:
        return self.default.isoformat() if isinstance(self.default, date) else self.default

    @property
    def is_constant(self) -> bool:
        """Whether the field has no Salesforce side (its default stands for it)."""
        return self.salesforce is None

    @property
    def sobject(self) -> str:
        """The Salesforce record it lives on: `Opportunity` or `Account` ("" for a constant)."""
        return (self.salesforce or "").partition(".")[0]

    @property
    def sf_field(self) -> str:
        """The Salesforce field's API name ("" for a constant)."""
        return (self.salesforce or "").partition(".")[2]

    @property
    def path(self) -> tuple[str, ...]:
        """The referral path's segments."""
        return tuple(self.partner_center.split("/"))

    @property
    def is_stage(self) -> bool:
        """Whether this is the stage field (status/substatus <-> StageName)."""
        return isinstance(self.transform, StageTransform)

    @property
    def is_deal_type(self) -> bool:
        """Whether this is a deal type (read from the whole referral, `DealTypeTransform`)."""
        return isinstance(self.transform, DealTypeTransform)

    @property
    def simple_transform(self) -> SimpleTransform:
        """The transform of a non-stage field."""
        if isinstance(self.transform, StageTransform):
            raise TypeError(f"field {self.name!r} is the stage field; use the stage table")
        return self.transform

    def default_on(self, today: date) -> Value:
        """The default for a record created on `today`: a relative date default, or `default_value`."""
        if self.default_days_from_today is not None:
            return (today + timedelta(days=self.default_days_from_today)).isoformat()
        return self.default_value

    @property
    def default_value(self) -> Value:
        """The default as a canonical value (None when there is none)."""
        if self.default is None:
            return None
        if isinstance(self.transform, StageTransform):
            return str(self.default)
        return self.transform.from_salesforce(self._raw_default())

    def rule(self) -> FieldRule:
        """What the merge needs to know about this field."""
        return FieldRule(
            name=self.name,
            direction=self.direction,
            owner=self.owner,
            read_only_after_create=self.read_only_after_create,
            read_only_once_set=self.read_only_once_set,
            kind=self.transform.type,
            with_answer=self.partner_center == "statusReason",
            path=self.partner_center,
        )


class LeadStatuses(_Spec):
    """The `Lead.Status` values that carry a lead referral's state (lead sync).

    Attributes:
        new: the status of a Lead created from a new referral.
        accepted: the status a seller sets to accept the referral: cosell accepts it in
            Partner Center and converts the Lead into an opportunity.
        converted: the converted status `convertLead()` gets (a status marking conversion).
        declined: the status a seller sets to decline the referral; cosell also sets it when
            the referral is declined, expires or closes in Partner Center.
    """

    new: str = Field(default="Open - Not Contacted", min_length=1)
    accepted: str = Field(default="Working - Contacted", min_length=1)
    converted: str = Field(default="Closed - Converted", min_length=1)
    declined: str = Field(default="Closed - Not Converted", min_length=1)

    def names(self) -> dict[str, str]:
        """Key (`new`, `accepted`, ...) -> status."""
        return dict(self.model_dump())


class LeadFieldMapping(FieldMapping):
    """A field of the lead section: like `FieldMapping`, on `Lead.<Field>`."""

    @field_validator("salesforce")
    @classmethod
    def _salesforce(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _SALESFORCE.match(value)
        if not match or match.group(1) not in LEAD_ROLES:
            raise ValueError(
                f"{value!r}: a field of the lead section lives on the Lead: use Lead.<Field>, "
                "e.g. Lead.Company"
            )
        return value


class LeadSection(_Spec):
    """How lead referrals become Leads (with `[sync] lead_sync` on).

    Attributes:
        statuses: the Lead statuses of a lead referral's states.
        fields: the Lead's mapped fields (`Lead.<Field>`); cosell's own fields on the Lead have
            the opportunity's names (`opportunity:`).
    """

    statuses: LeadStatuses = Field(default_factory=LeadStatuses)
    fields: list[LeadFieldMapping] = Field(min_length=1)


class Mapping(_Spec):
    """A whole mapping: the fields, the stage table and the opportunity's own fields.

    Attributes:
        version: the file format's version (1).
        opportunity: the opportunity fields cosell writes itself.
        collections: the opportunity's child objects synced as sets (solutions, contacts, team).
        stages: the stage table.
        fields: the mapped fields, in the order they are compared and written.
        record_type: the developer name of the record type cosell's new opportunities should
            have (None: the integration user's default record type). `cosell mapping check`
            checks the stage table against its sales process.
        defaults: values written only when cosell creates a record, for Salesforce fields no
            mapped field fills (`Opportunity.<Field>` or `Account.<Field>` -> value), e.g. a
            required custom field.
    """

    version: Literal[1] = 1
    opportunity: OpportunityFields = Field(default_factory=OpportunityFields)
    collections: Collections = Field(default_factory=Collections)
    stages: StageTable
    fields: list[FieldMapping] = Field(min_length=1)
    lead: LeadSection | None = None
    record_type: str | None = None
    defaults: dict[str, str | bool | int | float] = Field(default_factory=dict)

    @field_validator("record_type")
    @classmethod
    def _record_type(cls, value: str | None) -> str | None:
        if value is not None and not _RECORD_TYPE.match(value):
            raise ValueError(
                f"{value!r} is not a record type's developer name (letters, digits and _, "
                "e.g. Partner_Deal; Setup > Object Manager > Opportunity > Record Types)"
            )
        return value

    @field_validator("defaults")
    @classmethod
    def _defaults(
        cls, value: dict[str, str | bool | int | float]
    ) -> dict[str, str | bool | int | float]:
        for key in value:
            match = _SALESFORCE.match(key)
            if not match or match.group(1) not in ROLES:
                raise ValueError(
                    f"defaults key {key!r} must be Opportunity.<Field> or Account.<Field>, "
                    "e.g. Opportunity.Region__c"
                )
        return value

    def create_defaults(self, sobject: str) -> dict[str, str | bool | int | float]:
        """The `defaults` of one object, by field API name."""
        prefix = f"{sobject}."
        return {k[len(prefix) :]: v for k, v in self.defaults.items() if k.startswith(prefix)}

    _source: str = PrivateAttr(default="<mapping>")
    _places: dict[Loc, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        problems = consistency_problems(self)
        if problems:
            raise PydanticCustomError(
                "mapping_consistency",
                "the mapping is inconsistent: {summary}",
                {
                    "summary": "; ".join(message for _, message in problems),
                    "problems": problems,
                },
            )
        return self

    @property
    def source(self) -> str:
        """Where the mapping was read from (a file path, or `<mapping>`)."""
        return self._source

    def place(self, *loc: str | int) -> str:
        """`file:line:column` of a place in the mapping (the nearest known enclosing place).

        Args:
            *loc: keys and indexes from the root, e.g. `("fields", 3, "salesforce")`.
        """
        for end in range(len(loc), 0, -1):
            found = self._places.get(tuple(loc[:end]))
            if found is not None:
                return found
        return self._source

    def rules(self) -> list[FieldRule]:
        """The merge rules of every field, in mapping order."""
        return [f.rule() for f in self.fields]

    def field(self, name: str) -> FieldMapping:
        """The field called `name`.

        Raises:
            KeyError: no such field (the message lists the mapping's fields).
        """
        for mapped in self.fields:
            if mapped.name == name:
                return mapped
        raise KeyError(
            f"the mapping has no field {name!r}; it has: {', '.join(f.name for f in self.fields)}"
        )

    @property
    def stage_field(self) -> FieldMapping | None:
        """The field using the stage transform, if any."""
        return next((f for f in self.fields if f.is_stage), None)

    def fields_on(self, sobject: str) -> list[FieldMapping]:
        """The fields that live on `sobject` (`Opportunity` or `Account`)."""
        return [f for f in self.fields if f.sobject == sobject]

    def lead_mapping(self) -> Mapping | None:
        """The lead section as a mapping of its own (its fields on `Lead`), or None without one.

        The reads, merges and writes of `convert` then work on a Lead as on an opportunity;
        places in the file are those of the whole mapping (under `lead.`).
        """
        if self.lead is None:
            return None
        return self.model_copy(update={"fields": list(self.lead.fields), "lead": None})


def consistency_problems(mapping: Mapping) -> list[tuple[Loc, str]]:
    """What is wrong across fields: each problem with its place in the document.

    Checks: unique field names, Salesforce fields and Partner Center paths (a deal type field
    may share the consent's path with a visibility field; one deal type); at most one stage
    field, on the `status` path and an opportunity field;
    distinct stages in the table; `reason_field` naming a mapped field.
    """
    problems: list[tuple[Loc, str]] = []
    seen_names: dict[str, int] = {}
    seen_sf: dict[str, int] = {}
    seen_pc: dict[str, int] = {}
    for index, mapped in enumerate(mapping.fields):
        for key, value, seen, what in (
            ("name", mapped.name, seen_names, "field name"),
            ("salesforce", (mapped.salesforce or "").lower(), seen_sf, "Salesforce field"),
            (
                "partner_center",
                # A deal type writes the consent a visibility field may map too: one of each.
                "deal_type" if mapped.is_deal_type else mapped.partner_center.lower(),
                seen_pc,
                "deal type" if mapped.is_deal_type else "Partner Center path",
            ),
        ):
            if not value:
                continue
            if value in seen:
                problems.append(
                    (
                        ("fields", index, key),
                        f"duplicate {what} {getattr(mapped, key)!r}: fields[{seen[value]}] "
                        "already maps it; each may be mapped once",
                    )
                )
            else:
                seen[value] = index
    mapped_sf = {(f.salesforce or "").lower() for f in mapping.fields}
    for key in mapping.defaults:
        if key.lower() in mapped_sf:
            problems.append(
                (
                    ("defaults", key),
                    f"{key} is mapped by a field; give that field a default instead (defaults "
                    "are for Salesforce fields no field maps)",
                )
            )
    for index, mapped in enumerate(mapping.fields):
        if mapped.is_constant and mapped.default is None:
            problems.append(
                (
                    ("fields", index, "salesforce"),
                    "a field without a Salesforce field is a constant: give it a default (the "
                    "value Partner Center gets)",
                )
            )
        if mapped.is_constant and mapped.direction != Direction.TO_PARTNER_CENTER:
            problems.append(
                (
                    ("fields", index, "direction"),
                    "a constant (no Salesforce field) can only flow to_partner_center",
                )
            )
    if mapping.lead is not None:
        problems += _lead_problems(mapping.lead)
    stage_indexes = [i for i, f in enumerate(mapping.fields) if f.is_stage]
    for index in stage_indexes[1:]:
        problems.append(
            (("fields", index, "transform"), "only one field may use the stage transform")
        )
    for index in stage_indexes:
        mapped = mapping.fields[index]
        if mapped.partner_center != STAGE_PATH:
            problems.append(
                (
                    ("fields", index, "partner_center"),
                    f"the stage transform reads and writes status and substatus: its "
                    f"partner_center path must be {STAGE_PATH!r}",
                )
            )
        if mapped.sobject != OPPORTUNITY:
            problems.append(
                (("fields", index, "salesforce"), "the stage field must be on the Opportunity")
            )
        if mapped.name != STAGE_FIELD:
            problems.append(
                (
                    ("fields", index, "name"),
                    f"the field with the stage transform must be named {STAGE_FIELD!r} (the "
                    "merge applies Partner Center's status rules to it by that name)",
                )
            )
    for index, mapped in enumerate(mapping.fields):
        if mapped.name == STAGE_FIELD and not mapped.is_stage:
            problems.append(
                (
                    ("fields", index, "transform"),
                    f"the field named {STAGE_FIELD!r} is the stage: give it transform: stage",
                )
            )
        elif mapped.partner_center == STAGE_PATH and not mapped.is_stage:
            problems.append(
                (
                    ("fields", index, "transform"),
                    "status is mapped with the stage transform only (transform: stage)",
                )
            )
    named: dict[str, str] = {}
    for key, stage in mapping.stages.stage_names().items():
        if stage in named:
            problems.append(
                (
                    ("stages", key.partition("[")[0]),
                    f"stage {stage!r} is both {named[stage]} and {key}; each stage may have "
                    "one meaning",
                )
            )
        named.setdefault(stage, key)
    reason = mapping.stages.reason_field
    if reason is not None and all(f.name != reason for f in mapping.fields):
        problems.append(
            (
                ("stages", "reason_field"),
                f"reason_field {reason!r} is not a field of the mapping; name a mapped field "
                "(e.g. one mapped from Opportunity.Loss_Reason__c)",
            )
        )
    return problems


def _lead_problems(lead: LeadSection) -> list[tuple[Loc, str]]:
    """What is wrong in the lead section: fields off the Lead, duplicates, a stage, statuses."""
    problems: list[tuple[Loc, str]] = []
    seen: dict[str, int] = {}
    for index, mapped in enumerate(lead.fields):
        if mapped.is_stage:
            problems.append(
                (
                    ("lead", "fields", index, "transform"),
                    "the lead's status is set by lead.statuses, not by the stage transform",
                )
            )
        for key, value in (
            ("name", mapped.name),
            ("salesforce", (mapped.salesforce or "").lower()),
        ):
            tag = f"{key}:{value}"
            if tag in seen:
                problems.append(
                    (
                        ("lead", "fields", index, key),
                        f"duplicate {key} {getattr(mapped, key)!r}: lead.fields[{seen[tag]}] "
                        "already maps it",
                    )
                )
            seen.setdefault(tag, index)
    named: dict[str, str] = {}
    for key, status in lead.statuses.names().items():
        if status in named:
            problems.append(
                (
                    ("lead", "statuses", key),
                    f"status {status!r} is both {named[status]} and {key}; each status may "
                    "have one meaning",
                )
            )
        named.setdefault(status, key)
    return problems
