"""The standard objects of the emulated org: a built-in description of what a real org's describe says.

Our own fields and objects come from the metadata XML (`orgschema`); everything Salesforce ships
is described here, with real API names, describe types, lengths, picklists and key prefixes (spec
§2.8, §3). The org is a Developer Edition org with Notes and Opportunity Teams enabled, without
record types, person accounts or State and Country Picklists.

Conventions every object follows:

- `Id` comes first; the system audit fields (`CreatedDate`, `CreatedById`, `LastModifiedDate`,
  `LastModifiedById`, `SystemModstamp`) come last, read-only, and `OwnerId` (defaulted to the
  running user) exists only where Salesforce has it. Objects that have no `IsDeleted` in a real org
  (`User`, `OpportunityStage`) have none here either, so a query naming it fails the same way.
- A field the org computes (`IsClosed`, `Contact.Name`, `Lead.IsConverted`, …) is neither createable
  nor updateable; the record store fills it in. A field Salesforce sets when it is omitted on create
  (`OwnerId`, `Lead.Status`, `CurrencyIsoCode`, every checkbox) is `defaulted_on_create`, so
  required-on-create (`createable and not nillable and not defaulted_on_create`) matches the org.
- `CurrencyIsoCode` exists on currency-bearing objects only when the org has multi-currency on.

Choices where Salesforce's behaviour is not documented (spec §8):

- `Opportunity.StageName` and `Lead.Status` are restricted picklists. Each stage drives
  `Probability`, `IsClosed`, `IsWon` and `ForecastCategoryName` through `OPPORTUNITY_STAGES`, so a
  stage outside the table has no meaning; the sandbox rejects it with
  INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST rather than inventing one (spec §8 q3).
- `ContentNote` ids share `ContentDocument`'s key prefix 069, as in a real org (a note *is* a
  content document); `Schema.by_key_prefix("069")` answers `ContentDocument`, registered first.
- References point only at objects this org describes (no Campaign, Pricebook2, Profile,
  RecordType, Group), so every `referenceTo` resolves in SOQL; polymorphic references list several.
- Key prefixes not in spec §2.8 are inferred: `01J` for `OpportunityStage`; custom objects get
  theirs from `orgschema`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from cosell_sandbox.salesforce.schema import (
    ChildRelationshipSchema,
    FieldSchema,
    PicklistValue,
    SObjectSchema,
)

__all__ = [
    "CONVERTED_LEAD_STATUSES",
    "CURRENCIES",
    "CURRENCY_BEARING_OBJECTS",
    "DEFAULT_CURRENCY",
    "LEAD_STATUSES",
    "OPPORTUNITY_STAGES",
    "OpportunityStageInfo",
    "audit_fields",
    "currency_field",
    "field",
    "owner_field",
    "standard_objects",
]


@dataclass(frozen=True)
class OpportunityStageInfo:
    """One row of the org's stage table (the `OpportunityStage` object).

    Attributes:
        name: The `StageName` picklist value (also `MasterLabel` and `ApiName`).
        default_probability: `Probability` set when an opportunity enters the stage.
        is_closed: `IsClosed` of opportunities in the stage.
        is_won: `IsWon` of opportunities in the stage.
        forecast_category: `ForecastCategoryName` (the label: Pipeline, Best Case, Commit,
            Closed, Omitted).
        sort_order: Position in the picklist, from 1.
    """

    name: str
    default_probability: int
    is_closed: bool
    is_won: bool
    forecast_category: str
    sort_order: int

    @property
    def forecast_category_api(self) -> str:
        """`ForecastCategory` (the API value behind `ForecastCategoryName`)."""
        return _FORECAST_API_BY_NAME[self.forecast_category]


# A Developer Edition org's stages in picklist order (spec §3.1). Probabilities are the Salesforce
# defaults; open stages forecast as Pipeline, Closed Won as Closed and Closed Lost as Omitted.
OPPORTUNITY_STAGES: tuple[OpportunityStageInfo, ...] = tuple(
    OpportunityStageInfo(name, probability, closed, won, forecast, order)
    for order, (name, probability, closed, won, forecast) in enumerate(
        [
            ("Prospecting", 10, False, False, "Pipeline"),
            ("Qualification", 10, False, False, "Pipeline"),
            ("Needs Analysis", 20, False, False, "Pipeline"),
            ("Value Proposition", 50, False, False, "Pipeline"),
            ("Id. Decision Makers", 60, False, False, "Pipeline"),
            ("Perception Analysis", 70, False, False, "Pipeline"),
            ("Proposal/Price Quote", 75, False, False, "Pipeline"),
            ("Negotiation/Review", 90, False, False, "Pipeline"),
            ("Closed Won", 100, True, True, "Closed"),
            ("Closed Lost", 0, True, False, "Omitted"),
        ],
        start=1,
    )
)

# ForecastCategoryName label -> ForecastCategory API value, as a real org pairs them.
_FORECAST_API_BY_NAME = {
    "Omitted": "Omitted",
    "Pipeline": "Pipeline",
    "Best Case": "BestCase",
    "Commit": "Forecast",
    "Closed": "Closed",
}

# Lead statuses of a new org; the first is the default, "Closed - Converted" marks conversion.
LEAD_STATUSES: tuple[str, ...] = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
CONVERTED_LEAD_STATUSES: tuple[str, ...] = ("Closed - Converted",)
"""The lead statuses whose `LeadStatus.IsConverted` is true: `convertLead()` takes only these."""

DEFAULT_CURRENCY = "USD"  # the corporate currency of the emulated org

# ISO 4217 code -> the label Salesforce shows; a realistic set of active currencies.
CURRENCIES: dict[str, str] = {
    "USD": "U.S. Dollar",
    "EUR": "Euro",
    "GBP": "British Pound",
    "JPY": "Japanese Yen",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "INR": "Indian Rupee",
    "CHF": "Swiss Franc",
    "CNY": "Chinese Yuan",
    "SEK": "Swedish Krona",
    "NOK": "Norwegian Krone",
    "DKK": "Danish Krone",
    "NZD": "New Zealand Dollar",
    "SGD": "Singapore Dollar",
    "HKD": "Hong Kong Dollar",
    "BRL": "Brazilian Real",
    "MXN": "Mexican Peso",
    "ZAR": "South African Rand",
    "KRW": "Korean Won",
    "PLN": "Polish Zloty",
}

# Standard objects that get CurrencyIsoCode in a multi-currency org (custom objects always do).
CURRENCY_BEARING_OBJECTS: frozenset[str] = frozenset(
    {"Account", "Contact", "Lead", "Opportunity", "User"}
)

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "double": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "base64": "xsd:base64Binary",
    "address": "urn:address",
}
_TEXT_TYPES = frozenset(
    {"string", "textarea", "picklist", "multipicklist", "url", "email", "phone", "combobox"}
)
_LONG_TEXT = 255  # text longer than this (long text areas) cannot be filtered, sorted or grouped
_ID_LENGTH = 18  # ids and references are the 18-character form
_URL_LENGTH = 255  # Salesforce's fixed length for URL fields
_NUMBER_PRECISION = 18  # the most digits a Salesforce number or currency holds
_CURRENCY_SCALE = 2  # currency amounts default to cents
_PERCENT_PRECISION = 3  # percentages 0-100 without decimals, as Opportunity.Probability
_INT_DIGITS = 9  # describe's digits for an int field


def field(name: str, label: str, type_: str, **props: Any) -> FieldSchema:
    """A field with the describe properties Salesforce gives its type, overridden by `props`.

    Defaults by type: `soapType`; checkboxes are not nillable and default to false; ids and
    references are 18 characters; currency is (18, 2), percent (3, 0), int 9 digits; long text,
    base64 and compound addresses cannot be filtered or sorted; numbers, datetimes and long text
    cannot be grouped. `required=True` means not nillable (and so required on create unless
    `defaulted_on_create`); `read_only=True` means neither createable nor updateable.

    Args:
        name: The API name.
        label: The label.
        type_: The describe type (string, picklist, reference, …).
        **props: `FieldSchema` attributes, plus `required`, `read_only` and `values` (picklist
            values, each a string or a (value, label) pair; the one equal to `default_value`
            is the picklist's default).

    Returns:
        The field.
    """
    required = bool(props.pop("required", False))
    read_only = bool(props.pop("read_only", False))
    values: Iterable[str | tuple[str, str]] = props.pop("values", ())
    default_value = props.get("default_value")
    base: dict[str, Any] = {"soap_type": _SOAP_TYPES.get(type_, "xsd:string")}
    if type_ in ("id", "reference"):
        base["length"] = _ID_LENGTH
    elif type_ == "boolean":
        base.update(nillable=False, defaulted_on_create=True, default_value=False)
    elif type_ == "currency":
        base.update(precision=_NUMBER_PRECISION, scale=_CURRENCY_SCALE)
    elif type_ == "percent":
        base.update(precision=_PERCENT_PRECISION, scale=0)
    elif type_ == "double":
        base.update(precision=_NUMBER_PRECISION, scale=0)
    elif type_ == "int":
        base.update(digits=_INT_DIGITS)
    elif type_ == "url":
        base["length"] = _URL_LENGTH
    long_text = type_ == "textarea" and int(props.get("length", 0)) > _LONG_TEXT
    if long_text or type_ in ("base64", "address"):
        base.update(filterable=False, sortable=False, groupable=False)
    elif type_ in ("currency", "percent", "double", "datetime"):
        base["groupable"] = False
    if values:
        entries = []
        for value in values:
            api, text = value if isinstance(value, tuple) else (value, value)
            entries.append(PicklistValue(api, text, default=api == default_value))
        base["picklist_values"] = tuple(entries)
    if required:
        base["nillable"] = False
    if read_only:
        base.update(createable=False, updateable=False)
    base.update(props)
    return FieldSchema(name=name, label=label, type=type_, **base)


def _id() -> FieldSchema:
    return field(
        "Id",
        "Record ID",
        "id",
        required=True,
        read_only=True,
        defaulted_on_create=True,
        id_lookup=True,
    )


def _is_deleted() -> FieldSchema:
    return field("IsDeleted", "Deleted", "boolean", read_only=True)


def owner_field(label: str = "Owner ID") -> FieldSchema:
    """`OwnerId`: a required reference to User that defaults to the running user."""
    return field(
        "OwnerId",
        label,
        "reference",
        required=True,
        defaulted_on_create=True,
        reference_to=("User",),
        relationship_name="Owner",
    )


def audit_fields() -> list[FieldSchema]:
    """The read-only system fields a record gets on every committed write."""
    return [
        field(
            "CreatedDate",
            "Created Date",
            "datetime",
            required=True,
            read_only=True,
            defaulted_on_create=True,
        ),
        field(
            "CreatedById",
            "Created By ID",
            "reference",
            required=True,
            read_only=True,
            defaulted_on_create=True,
            reference_to=("User",),
            relationship_name="CreatedBy",
        ),
        field(
            "LastModifiedDate",
            "Last Modified Date",
            "datetime",
            required=True,
            read_only=True,
            defaulted_on_create=True,
        ),
        field(
            "LastModifiedById",
            "Last Modified By ID",
            "reference",
            required=True,
            read_only=True,
            defaulted_on_create=True,
            reference_to=("User",),
            relationship_name="LastModifiedBy",
        ),
        field(
            "SystemModstamp",
            "System Modstamp",
            "datetime",
            required=True,
            read_only=True,
            defaulted_on_create=True,
        ),
    ]


def currency_field() -> FieldSchema:
    """`CurrencyIsoCode`: restricted picklist of the org's currencies, defaulting to USD."""
    return field(
        "CurrencyIsoCode",
        "Currency ISO Code",
        "picklist",
        length=3,
        required=True,
        defaulted_on_create=True,
        default_value=DEFAULT_CURRENCY,
        restricted_picklist=True,
        values=list(CURRENCIES.items()),
    )


def _address(prefix: str, compound: str, label: str) -> list[FieldSchema]:
    """The street/city/state/postal code/country fields and their read-only compound field."""
    parts = [
        ("Street", "Street", "textarea", 255),  # lengths: Salesforce's address field sizes
        ("City", "City", "string", 40),
        ("State", "State/Province", "string", 80),
        ("PostalCode", "Zip/Postal Code", "string", 20),
        ("Country", "Country", "string", 80),
    ]
    fields = [
        field(prefix + name, f"{label} {text}".strip(), kind, length=length)
        for name, text, kind, length in parts
    ]
    fields = [replace(f, compound_field_name=compound) for f in fields]
    fields.append(field(compound, f"{label} Address".strip(), "address", read_only=True))
    return fields


def _string(name: str, label: str, length: int, **props: Any) -> FieldSchema:
    return field(name, label, "string", length=length, **props)


def _description(label: str = "Description") -> FieldSchema:
    return field("Description", label, "textarea", length=32000)  # Salesforce's long-text size


def _picklist(
    name: str, label: str, values: Iterable[str | tuple[str, str]], **props: Any
) -> FieldSchema:
    props.setdefault("length", 255)  # describe's length of a standard picklist
    return field(name, label, "picklist", values=list(values), **props)


_LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
_INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications",
    "Construction", "Consulting", "Education", "Electronics", "Energy", "Engineering",
    "Entertainment", "Environmental", "Finance", "Food & Beverage", "Government", "Healthcare",
    "Hospitality", "Insurance", "Machinery", "Manufacturing", "Media", "Not For Profit",
    "Recreation", "Retail", "Shipping", "Technology", "Telecommunications", "Transportation",
    "Utilities", "Other",
)  # fmt: skip
_RATINGS = ("Hot", "Warm", "Cold")
_SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx.")
_ACCOUNT_TYPES = (
    "Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller",
    "Installation Partner", "Technology Partner", "Other",
)  # fmt: skip
_OPPORTUNITY_TYPES = (
    "Existing Customer - Upgrade", "Existing Customer - Replacement",
    "Existing Customer - Downgrade", "New Customer",
)  # fmt: skip
_FORECAST_CATEGORY_NAMES = ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")
_CONTACT_ROLES = (
    "Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker", "Evaluator",
    "Executive Sponsor", "Influencer", "Technical Buyer", "Other",
)  # fmt: skip
_TEAM_ROLES = (
    "Account Manager", "Channel Manager", "Executive Sponsor", "Lead Qualifier",
    "Pre-Sales Consultant", "Sales Manager", "Sales Rep", "Opportunity Owner",
)  # fmt: skip
# The objects a Note can hang off, and a ContentDocumentLink can share a file with.
_NOTE_PARENTS = ("Account", "Contact", "Lead", "Opportunity")
_LINKED_ENTITIES = ("Account", "Contact", "Lead", "Opportunity", "User")


def _account() -> SObjectSchema:
    obj = SObjectSchema("Account", "Account", "Accounts", "001")
    fields = [
        _id(),
        _is_deleted(),
        _string("Name", "Account Name", 255, required=True, name_field=True),
        _picklist("Type", "Account Type", _ACCOUNT_TYPES),
        field(
            "ParentId",
            "Parent Account ID",
            "reference",
            reference_to=("Account",),
            relationship_name="Parent",
        ),
        *_address("Billing", "BillingAddress", "Billing"),
        *_address("Shipping", "ShippingAddress", "Shipping"),
        field("Phone", "Account Phone", "phone", length=40),
        field("Fax", "Account Fax", "phone", length=40),
        _string("AccountNumber", "Account Number", 40),
        field("Website", "Website", "url"),
        _string("Site", "Account Site", 80),
        _picklist("Industry", "Industry", _INDUSTRIES),
        field("AnnualRevenue", "Annual Revenue", "currency", precision=18, scale=0),
        field("NumberOfEmployees", "Employees", "int", digits=8),
        _picklist("Ownership", "Ownership", ("Public", "Private", "Subsidiary", "Other")),
        _picklist("Rating", "Account Rating", _RATINGS),
        _description("Account Description"),
        owner_field(),
        field("LastActivityDate", "Last Activity", "date", read_only=True),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    obj.child_relationships.extend(
        [
            ChildRelationshipSchema("ChildAccounts", "Account", "ParentId"),
            ChildRelationshipSchema("Contacts", "Contact", "AccountId", cascade_delete=True),
            ChildRelationshipSchema(
                "Opportunities", "Opportunity", "AccountId", cascade_delete=True
            ),
            ChildRelationshipSchema("Notes", "Note", "ParentId", cascade_delete=True),
            ChildRelationshipSchema(
                "ContentDocumentLinks", "ContentDocumentLink", "LinkedEntityId", cascade_delete=True
            ),
        ]
    )
    return obj


def _contact() -> SObjectSchema:
    obj = SObjectSchema("Contact", "Contact", "Contacts", "003")
    fields = [
        _id(),
        _is_deleted(),
        field(
            "AccountId",
            "Account ID",
            "reference",
            reference_to=("Account",),
            relationship_name="Account",
        ),
        _string("LastName", "Last Name", 80, required=True),
        _string("FirstName", "First Name", 40),
        _picklist("Salutation", "Salutation", _SALUTATIONS, length=40),
        _string("Name", "Full Name", 121, read_only=True, name_field=True),
        *_address("Mailing", "MailingAddress", "Mailing"),
        field("Phone", "Business Phone", "phone", length=40),
        field("MobilePhone", "Mobile Phone", "phone", length=40),
        field("Email", "Email", "email", length=80, id_lookup=True),
        _string("Title", "Title", 128),
        _string("Department", "Department", 80),
        _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
        _description("Contact Description"),
        owner_field(),
        field("LastActivityDate", "Last Activity", "date", read_only=True),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    obj.child_relationships.extend(
        [
            ChildRelationshipSchema(
                "OpportunityContactRoles",
                "OpportunityContactRole",
                "ContactId",
                cascade_delete=True,
            ),
            ChildRelationshipSchema("Notes", "Note", "ParentId", cascade_delete=True),
            ChildRelationshipSchema(
                "ContentDocumentLinks", "ContentDocumentLink", "LinkedEntityId", cascade_delete=True
            ),
        ]
    )
    return obj


def _lead() -> SObjectSchema:
    obj = SObjectSchema("Lead", "Lead", "Leads", "00Q")
    fields = [
        _id(),
        _is_deleted(),
        _string("LastName", "Last Name", 80, required=True),
        _string("FirstName", "First Name", 40),
        _picklist("Salutation", "Salutation", _SALUTATIONS, length=40),
        _string("Name", "Full Name", 121, read_only=True, name_field=True),
        _string("Title", "Title", 128),
        _string("Company", "Company", 255, required=True),
        *_address("", "Address", ""),
        field("Phone", "Phone", "phone", length=40),
        field("MobilePhone", "Mobile Phone", "phone", length=40),
        field("Email", "Email", "email", length=80, id_lookup=True),
        field("Website", "Website", "url"),
        _description(),
        _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
        _picklist(
            "Status",
            "Status",
            LEAD_STATUSES,
            length=40,
            required=True,
            defaulted_on_create=True,
            default_value=LEAD_STATUSES[0],
            restricted_picklist=True,
        ),
        _picklist("Industry", "Industry", _INDUSTRIES),
        _picklist("Rating", "Rating", _RATINGS),
        field("AnnualRevenue", "Annual Revenue", "currency", precision=18, scale=0),
        field("NumberOfEmployees", "Employees", "int", digits=8),
        owner_field(),
        field("IsConverted", "Converted", "boolean", read_only=True),
        field("ConvertedDate", "Converted Date", "date", read_only=True),
        field(
            "ConvertedAccountId",
            "Converted Account ID",
            "reference",
            read_only=True,
            reference_to=("Account",),
            relationship_name="ConvertedAccount",
        ),
        field(
            "ConvertedContactId",
            "Converted Contact ID",
            "reference",
            read_only=True,
            reference_to=("Contact",),
            relationship_name="ConvertedContact",
        ),
        field(
            "ConvertedOpportunityId",
            "Converted Opportunity ID",
            "reference",
            read_only=True,
            reference_to=("Opportunity",),
            relationship_name="ConvertedOpportunity",
        ),
        field("IsUnreadByOwner", "Unread By Owner", "boolean"),
        field("LastActivityDate", "Last Activity", "date", read_only=True),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    obj.child_relationships.extend(
        [
            ChildRelationshipSchema("Notes", "Note", "ParentId", cascade_delete=True),
            ChildRelationshipSchema(
                "ContentDocumentLinks", "ContentDocumentLink", "LinkedEntityId", cascade_delete=True
            ),
        ]
    )
    return obj


def _opportunity() -> SObjectSchema:
    obj = SObjectSchema("Opportunity", "Opportunity", "Opportunities", "006")
    fields = [
        _id(),
        _is_deleted(),
        field(
            "AccountId",
            "Account ID",
            "reference",
            reference_to=("Account",),
            relationship_name="Account",
        ),
        field("IsPrivate", "Private", "boolean"),
        _string("Name", "Name", 120, required=True, name_field=True),
        _description(),
        _picklist(
            "StageName",
            "Stage",
            (s.name for s in OPPORTUNITY_STAGES),
            required=True,
            restricted_picklist=True,
        ),
        field("Amount", "Amount", "currency"),
        field("Probability", "Probability (%)", "percent", defaulted_on_create=True),
        field("ExpectedRevenue", "Expected Amount", "currency", read_only=True, calculated=True),
        field("TotalOpportunityQuantity", "Quantity", "double", precision=18, scale=2),
        field("CloseDate", "Close Date", "date", required=True),
        _picklist("Type", "Opportunity Type", _OPPORTUNITY_TYPES),
        _string("NextStep", "Next Step", 255),
        _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
        field("IsClosed", "Closed", "boolean", read_only=True),
        field("IsWon", "Won", "boolean", read_only=True),
        _picklist(
            "ForecastCategory",
            "Forecast Category",
            _FORECAST_API_BY_NAME.values(),
            length=40,
            required=True,
            read_only=True,
            defaulted_on_create=True,
        ),
        _picklist(
            "ForecastCategoryName",
            "Forecast Category",
            _FORECAST_CATEGORY_NAMES,
            defaulted_on_create=True,
            restricted_picklist=True,
        ),
        field(
            "ContactId",
            "Contact ID",
            "reference",
            reference_to=("Contact",),
            relationship_name="Contact",
        ),
        field("HasOpportunityLineItem", "Has Line Item", "boolean", read_only=True),
        owner_field("Owner ID"),
        field("LastActivityDate", "Last Activity", "date", read_only=True),
        field("LastStageChangeDate", "Last Stage Change Date", "datetime", read_only=True),
        field("FiscalQuarter", "Fiscal Quarter", "int", read_only=True, digits=2),
        field("FiscalYear", "Fiscal Year", "int", read_only=True, digits=4),
        _string("Fiscal", "Fiscal Period", 6, read_only=True),
        field("HasOpenActivity", "Has Open Activity", "boolean", read_only=True),
        field("HasOverdueTask", "Has Overdue Task", "boolean", read_only=True),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    obj.child_relationships.extend(
        [
            ChildRelationshipSchema(
                "OpportunityContactRoles",
                "OpportunityContactRole",
                "OpportunityId",
                cascade_delete=True,
            ),
            ChildRelationshipSchema(
                "OpportunityTeamMembers",
                "OpportunityTeamMember",
                "OpportunityId",
                cascade_delete=True,
            ),
            ChildRelationshipSchema("Notes", "Note", "ParentId", cascade_delete=True),
            ChildRelationshipSchema(
                "ContentDocumentLinks", "ContentDocumentLink", "LinkedEntityId", cascade_delete=True
            ),
        ]
    )
    return obj


def _opportunity_contact_role() -> SObjectSchema:
    obj = SObjectSchema(
        "OpportunityContactRole", "Opportunity Contact Role", "Opportunity Contact Role", "00K"
    )
    fields = [
        _id(),
        _is_deleted(),
        field(
            "OpportunityId",
            "Opportunity ID",
            "reference",
            required=True,
            updateable=False,
            reference_to=("Opportunity",),
            relationship_name="Opportunity",
        ),
        field(
            "ContactId",
            "Contact ID",
            "reference",
            required=True,
            reference_to=("Contact",),
            relationship_name="Contact",
        ),
        _picklist("Role", "Role", _CONTACT_ROLES, length=40),
        field("IsPrimary", "Primary", "boolean"),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _opportunity_team_member() -> SObjectSchema:
    obj = SObjectSchema(
        "OpportunityTeamMember", "Opportunity Team Member", "Opportunity Team Members", "00q"
    )
    fields = [
        _id(),
        _is_deleted(),
        field(
            "OpportunityId",
            "Opportunity ID",
            "reference",
            required=True,
            updateable=False,
            reference_to=("Opportunity",),
            relationship_name="Opportunity",
        ),
        field(
            "UserId",
            "User ID",
            "reference",
            required=True,
            updateable=False,
            reference_to=("User",),
            relationship_name="User",
        ),
        _string("Name", "Name", 121, read_only=True, name_field=True),
        field("PhotoUrl", "Photo", "url", length=1024, read_only=True),
        _string("Title", "Title", 80, read_only=True),
        _picklist("TeamMemberRole", "Team Role", _TEAM_ROLES, length=40),
        _picklist(
            "OpportunityAccessLevel",
            "Opportunity Access",
            (("Read", "Read Only"), ("Edit", "Read/Write"), ("All", "Owner")),
            length=40,
            required=True,
            restricted_picklist=True,
        ),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _user(*, multi_currency: bool) -> SObjectSchema:
    obj = SObjectSchema("User", "User", "Users", "005", deletable=False)
    fields = [
        _id(),
        _string("Username", "Username", 80, required=True, unique=True, id_lookup=True),
        _string("LastName", "Last Name", 80, required=True),
        _string("FirstName", "First Name", 40),
        _string("Name", "Full Name", 121, read_only=True, name_field=True),
        _string("CompanyName", "Company Name", 80),
        _string("Department", "Department", 80),
        _string("Title", "Title", 80),
        field("Email", "Email", "email", length=128, required=True),
        field("Phone", "Phone", "phone", length=40),
        field("MobilePhone", "Mobile", "phone", length=40),
        _string("Alias", "Alias", 8, required=True),
        field("IsActive", "Active", "boolean", default_value=True),
        _picklist(
            "TimeZoneSidKey",
            "Time Zone",
            (
                "America/Los_Angeles",
                "America/New_York",
                "Europe/London",
                "Europe/Berlin",
                "Asia/Kolkata",
                "Asia/Tokyo",
                "Australia/Sydney",
                "GMT",
            ),
            length=40,
            required=True,
        ),
        _picklist(
            "LocaleSidKey",
            "Locale",
            ("en_US", "en_GB", "de_DE", "fr_FR", "ja_JP", "en_IN"),
            length=40,
            required=True,
        ),
        _picklist(
            "EmailEncodingKey",
            "Email Encoding",
            ("UTF-8", "ISO-8859-1", "Shift_JIS"),
            length=40,
            required=True,
        ),
        _picklist(
            "LanguageLocaleKey",
            "Language",
            ("en_US", "de", "fr", "ja"),
            length=40,
            required=True,
        ),
        _picklist(
            "UserType",
            "User Type",
            ("Standard", "PowerPartner", "CsnOnly", "AutomatedProcess"),
            length=40,
            read_only=True,
            defaulted_on_create=True,
            default_value="Standard",
        ),
    ]
    if multi_currency:
        fields.append(replace(currency_field(), name="DefaultCurrencyIsoCode", label="Currency"))
    fields.extend(audit_fields())
    for f in fields:
        obj.add_field(f)
    obj.child_relationships.append(
        ChildRelationshipSchema(
            "ContentDocumentLinks", "ContentDocumentLink", "LinkedEntityId", cascade_delete=True
        )
    )
    return obj


def _content_document() -> SObjectSchema:
    obj = SObjectSchema(
        "ContentDocument", "Content Document", "Content Documents", "069", createable=False
    )
    fields = [
        _id(),
        _is_deleted(),
        _string("Title", "Title", 255, required=True, name_field=True),
        _string("FileType", "File Type", 20, read_only=True),
        _string("FileExtension", "File Extension", 40, read_only=True),
        field("ContentSize", "Size", "int", read_only=True),
        field(
            "LatestPublishedVersionId",
            "Latest Published Version ID",
            "reference",
            reference_to=("ContentVersion",),
            relationship_name="LatestPublishedVersion",
        ),
        owner_field(),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    obj.child_relationships.extend(
        [
            ChildRelationshipSchema(
                "ContentDocumentLinks",
                "ContentDocumentLink",
                "ContentDocumentId",
                cascade_delete=True,
            ),
            ChildRelationshipSchema(
                "ContentVersions", "ContentVersion", "ContentDocumentId", cascade_delete=True
            ),
        ]
    )
    return obj


def _content_version() -> SObjectSchema:
    obj = SObjectSchema(
        "ContentVersion", "Content Version", "Content Versions", "068", deletable=False
    )
    fields = [
        _id(),
        _is_deleted(),
        field(
            "ContentDocumentId",
            "ContentDocument ID",
            "reference",
            updateable=False,
            reference_to=("ContentDocument",),
            relationship_name="ContentDocument",
        ),
        _string("Title", "Title", 255, required=True, name_field=True),
        _string("PathOnClient", "Path On Client", 500, updateable=False),
        field("VersionData", "Version Data", "base64", updateable=False),
        _string("FileType", "File Type", 20, read_only=True),
        _string("FileExtension", "File Extension", 40, read_only=True),
        field("ContentSize", "Size", "int", read_only=True),
        field("IsLatest", "Is Latest", "boolean", read_only=True),
        owner_field(),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _content_note() -> SObjectSchema:
    obj = SObjectSchema("ContentNote", "Note", "Notes", "069")
    fields = [
        _id(),
        _is_deleted(),
        _string("Title", "Title", 255, required=True, name_field=True),
        field("Content", "Content", "base64"),
        _string("TextPreview", "Text Preview", 255, read_only=True),
        _string("FileType", "File Type", 20, read_only=True),
        _string("FileExtension", "File Extension", 40, read_only=True),
        field("ContentSize", "Size", "int", read_only=True),
        field(
            "LatestPublishedVersionId",
            "Latest Published Version ID",
            "reference",
            read_only=True,
            reference_to=("ContentVersion",),
            relationship_name="LatestPublishedVersion",
        ),
        field("IsReadOnly", "Is Read Only", "boolean", read_only=True),
        _picklist(
            "SharingPrivacy",
            "Sharing Privacy",
            (("N", "Visible to Anyone With Record Access"), ("P", "Private on Records")),
            length=40,
            read_only=True,
            defaulted_on_create=True,
            default_value="N",
        ),
        owner_field(),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _content_document_link() -> SObjectSchema:
    obj = SObjectSchema(
        "ContentDocumentLink", "Content Document Link", "Content Document Link", "06A"
    )
    fields = [
        _id(),
        field(
            "LinkedEntityId",
            "Linked Entity ID",
            "reference",
            required=True,
            updateable=False,
            reference_to=_LINKED_ENTITIES,
            relationship_name="LinkedEntity",
        ),
        field(
            "ContentDocumentId",
            "ContentDocument ID",
            "reference",
            required=True,
            updateable=False,
            reference_to=("ContentDocument",),
            relationship_name="ContentDocument",
        ),
        _is_deleted(),
        field(
            "SystemModstamp",
            "System Modstamp",
            "datetime",
            required=True,
            read_only=True,
            defaulted_on_create=True,
        ),
        _picklist(
            "ShareType",
            "Share Type",
            (
                ("V", "Viewer Permission"),
                ("C", "Collaborator Permission"),
                ("I", "Inferred Permission"),
            ),
            length=40,
            required=True,
            restricted_picklist=True,
        ),
        _picklist(
            "Visibility",
            "Visibility",
            (
                ("AllUsers", "All Users"),
                ("InternalUsers", "Standard Users"),
                ("SharedUsers", "Shared Users"),
            ),
            length=40,
            defaulted_on_create=True,
            default_value="AllUsers",
            restricted_picklist=True,
        ),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _note() -> SObjectSchema:
    obj = SObjectSchema("Note", "Note", "Notes", "002")
    fields = [
        _id(),
        _is_deleted(),
        field(
            "ParentId",
            "Parent ID",
            "reference",
            required=True,
            updateable=False,
            reference_to=_NOTE_PARENTS,
            relationship_name="Parent",
        ),
        _string("Title", "Title", 80, required=True, name_field=True),
        field("IsPrivate", "Private", "boolean"),
        field("Body", "Body", "textarea", length=32000),
        owner_field(),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _opportunity_stage() -> SObjectSchema:
    obj = SObjectSchema(
        "OpportunityStage",
        "Opportunity Stage",
        "Opportunity Stage",
        "01J",
        createable=False,
        updateable=False,
        deletable=False,
    )
    fields = [
        _id(),
        _string("MasterLabel", "Master Label", 255, read_only=True),
        _string("ApiName", "Api Name", 255, read_only=True, name_field=True),
        field("IsActive", "Is Active", "boolean", read_only=True),
        field("SortOrder", "Sort Order", "int", read_only=True),
        field("IsClosed", "Closed", "boolean", read_only=True),
        field("IsWon", "Won", "boolean", read_only=True),
        _picklist(
            "ForecastCategory",
            "Forecast Type",
            _FORECAST_API_BY_NAME.values(),
            length=40,
            read_only=True,
            required=True,
        ),
        _picklist(
            "ForecastCategoryName",
            "Forecast Category",
            _FORECAST_CATEGORY_NAMES,
            read_only=True,
            required=True,
        ),
        field("DefaultProbability", "Probability (%)", "percent", read_only=True),
        _string("Description", "Description", 255, read_only=True),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _setup_object(name: str, label: str, plural: str, prefix: str) -> SObjectSchema:
    return SObjectSchema(
        name, label, plural, prefix, createable=False, updateable=False, deletable=False
    )


def _permission_set() -> SObjectSchema:
    """`PermissionSet`: the fields a permission check reads (a profile owns one too)."""
    obj = _setup_object("PermissionSet", "Permission Set", "Permission Sets", "0PS")
    fields = [
        _id(),
        _string("Name", "Name", 80, read_only=True, name_field=True),
        _string("Label", "Label", 80, read_only=True),
        field("IsOwnedByProfile", "Is Owned By Profile", "boolean", read_only=True),
        field("PermissionsViewAllData", "View All Data", "boolean", read_only=True),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _permission_set_assignment() -> SObjectSchema:
    """`PermissionSetAssignment`: which user has which permission set (the profile's too)."""
    obj = _setup_object(
        "PermissionSetAssignment",
        "Permission Set Assignment",
        "Permission Set Assignments",
        "0Pa",
    )
    fields = [
        _id(),
        field(
            "AssigneeId",
            "Assignee ID",
            "reference",
            read_only=True,
            reference_to=("User",),
            relationship_name="Assignee",
        ),
        field(
            "PermissionSetId",
            "Permission Set ID",
            "reference",
            read_only=True,
            reference_to=("PermissionSet",),
            relationship_name="PermissionSet",
        ),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def _object_permissions() -> SObjectSchema:
    """`ObjectPermissions`: a permission set's access to one object (View All Records...)."""
    obj = _setup_object("ObjectPermissions", "Object Permissions", "Object Permissions", "110")
    fields = [
        _id(),
        field(
            "ParentId",
            "Parent ID",
            "reference",
            read_only=True,
            reference_to=("PermissionSet",),
            relationship_name="Parent",
        ),
        _string("SobjectType", "Sobject Type Name", 40, read_only=True),
        field("PermissionsRead", "Read", "boolean", read_only=True),
        field("PermissionsViewAllRecords", "View All Records", "boolean", read_only=True),
        *audit_fields(),
    ]
    for f in fields:
        obj.add_field(f)
    return obj


def standard_objects(*, multi_currency: bool = True) -> list[SObjectSchema]:
    """Fresh descriptions of the org's standard objects.

    Each call builds new `SObjectSchema` instances, so a caller may add custom fields and child
    relationships to them without affecting anyone else.

    Args:
        multi_currency: Whether the org has multi-currency on (adds `CurrencyIsoCode` to
            `CURRENCY_BEARING_OBJECTS` and `DefaultCurrencyIsoCode` to User).

    Returns:
        The objects; `ContentDocument` comes before `ContentNote`, which shares its key prefix.
    """
    objects = [
        _account(),
        _contact(),
        _lead(),
        _opportunity(),
        _opportunity_contact_role(),
        _opportunity_team_member(),
        _user(multi_currency=multi_currency),
        _content_document(),
        _content_version(),
        _content_note(),
        _content_document_link(),
        _note(),
        _opportunity_stage(),
        _permission_set(),
        _permission_set_assignment(),
        _object_permissions(),
    ]
    if multi_currency:
        for obj in objects:
            if obj.name in CURRENCY_BEARING_OBJECTS:
                _insert_before_owner(obj, currency_field())
    return objects


def _insert_before_owner(obj: SObjectSchema, spec: FieldSchema) -> None:
    tail_names = {"ownerid", "createddate"}
    items = [(k, v) for k, v in obj.fields.items() if k != spec.name.lower()]
    at = next((i for i, (k, _) in enumerate(items) if k in tail_names), len(items))
    items.insert(at, (spec.name.lower(), spec))
    obj.fields.clear()
    obj.fields.update(items)
