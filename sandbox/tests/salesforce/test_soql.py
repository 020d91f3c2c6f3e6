"""The SOQL engine over a small hand-built org: a table of queries with their results or errors.

The org (schema and rows) is built here from `schema.py`'s dataclasses so that every expectation
can be checked by reading this file: 3 users/accounts, 4 contacts, 5 opportunities (one deleted),
3 contact roles and 3 Microsoft solutions. "Now" is Wednesday 2024-05-15 12:00 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosell.salesforce.values import soql_in, soql_like, soql_quote
from cosell_sandbox.salesforce.ids import checksum
from cosell_sandbox.salesforce.schema import (
    ChildRelationshipSchema,
    FieldSchema,
    Schema,
    SObjectSchema,
)
from cosell_sandbox.salesforce.soql import QueryResult, SoqlError, execute, parse, quote_string
from cosell_sandbox.salesforce.soql.lexer import EOF, STRING, tokenize
from cosell_sandbox.salesforce.soql.syntax import InList

NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)
API = "66.0"


# -- the org -------------------------------------------------------------------------------


def make_id(prefix: str, n: int) -> str:
    base = f"{prefix}Rt{n:010d}"
    return base + checksum(base)


IDS = {
    **{f"U{n}": make_id("005", n) for n in (1, 2)},
    **{f"A{n}": make_id("001", n) for n in (1, 2, 3)},
    **{f"C{n}": make_id("003", n) for n in (1, 2, 3, 4)},
    **{f"O{n}": make_id("006", n) for n in (1, 2, 3, 4, 5)},
    **{f"R{n}": make_id("00K", n) for n in (1, 2, 3)},
    **{f"S{n}": make_id("a0X", n) for n in (1, 2, 3)},
}
NAME_OF_ID = {value: key for key, value in IDS.items()}


def f(name: str, type_: str, **kwargs: Any) -> FieldSchema:
    return FieldSchema(name=name, label=name, type=type_, **kwargs)


def ref(name: str, to: str, relationship: str) -> FieldSchema:
    return f(name, "reference", reference_to=(to,), relationship_name=relationship)


def common() -> list[FieldSchema]:
    return [
        f("Id", "id"),
        f("IsDeleted", "boolean"),
        f("CreatedDate", "datetime"),
        f("SystemModstamp", "datetime"),
    ]


def sobject(
    name: str,
    prefix: str,
    fields: list[FieldSchema],
    children: Iterable[ChildRelationshipSchema] = (),
) -> SObjectSchema:
    obj = SObjectSchema(
        name=name,
        label=name,
        label_plural=name + "s",
        key_prefix=prefix,
        custom=name.endswith("__c"),
        child_relationships=list(children),
    )
    for spec in [*common(), *fields]:
        obj.add_field(spec)
    return obj


def build_org_schema() -> Schema:
    user = sobject("User", "005", [f("Name", "string"), f("Email", "email")])
    account = sobject(
        "Account",
        "001",
        [
            f("Name", "string"),
            f("Industry", "picklist"),
            f("AnnualRevenue", "currency"),
            f("NumberOfEmployees", "int"),
            ref("OwnerId", "User", "Owner"),
            f("Description", "textarea", filterable=False, sortable=False),
        ],
        [
            ChildRelationshipSchema("Contacts", "Contact", "AccountId"),
            ChildRelationshipSchema("Opportunities", "Opportunity", "AccountId"),
        ],
    )
    contact = sobject(
        "Contact",
        "003",
        [
            f("FirstName", "string"),
            f("LastName", "string"),
            f("Name", "string"),
            f("Email", "email"),
            ref("AccountId", "Account", "Account"),
        ],
    )
    opportunity = sobject(
        "Opportunity",
        "006",
        [
            f("Name", "string"),
            ref("AccountId", "Account", "Account"),
            ref("OwnerId", "User", "Owner"),
            f("Amount", "currency"),
            f("Probability", "percent"),
            f("CloseDate", "date"),
            f("StageName", "picklist"),
            f("IsWon", "boolean"),
            f("IsClosed", "boolean"),
            f("Referral_Identifier__c", "string", external_id=True, unique=True, custom=True),
            f("Sync_with_Partner_Center__c", "boolean", custom=True),
            f("How_can_Microsoft_help__c", "picklist", custom=True),
            f("Solution_Areas__c", "multipicklist", custom=True),
            f("Audit__c", "textarea", filterable=False, sortable=False, custom=True),
            ref("Primary_Contact__c", "Contact", "Primary_Contact__r"),
        ],
        [
            ChildRelationshipSchema(
                "OpportunityContactRoles", "OpportunityContactRole", "OpportunityId"
            ),
            ChildRelationshipSchema(
                "Microsoft_Solutions__r", "Microsoft_Solution__c", "Opportunity__c"
            ),
            ChildRelationshipSchema(None, "Note", "ParentId"),
        ],
    )
    role = sobject(
        "OpportunityContactRole",
        "00K",
        [
            ref("OpportunityId", "Opportunity", "Opportunity"),
            ref("ContactId", "Contact", "Contact"),
            f("Role", "picklist"),
            f("IsPrimary", "boolean"),
        ],
    )
    solution = sobject(
        "Microsoft_Solution__c",
        "a0X",
        [
            f("Name", "string"),
            ref("Opportunity__c", "Opportunity", "Opportunity__r"),
            f("Solution_Id__c", "string", external_id=True),
            f("Solution_Type__c", "picklist"),
        ],
    )
    schema = Schema()
    for obj in (user, account, contact, opportunity, role, solution):
        schema.add(obj)
    return schema


def row(key: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Id": IDS[key],
        "IsDeleted": False,
        "CreatedDate": "2024-01-01T00:00:00.000+0000",
        "SystemModstamp": "2024-01-01T00:00:00.000+0000",
    }
    return base | {
        name: IDS.get(value, value) if isinstance(value, str) else value
        for name, value in values.items()
    }


def opportunity(key: str, **values: Any) -> dict[str, Any]:
    defaults = {
        "Amount": None,
        "Probability": None,
        "IsWon": False,
        "IsClosed": False,
        "Referral_Identifier__c": None,
        "Sync_with_Partner_Center__c": False,
        "How_can_Microsoft_help__c": None,
        "Solution_Areas__c": None,
        "Audit__c": None,
        "Primary_Contact__c": None,
        "AccountId": None,
    }
    return row(key, **(defaults | values))


def build_rows() -> dict[str, list[dict[str, Any]]]:
    return {
        "User": [
            row("U1", Name="Ada Admin", Email="ada@example.com"),
            row("U2", Name="Bob Seller", Email="bob@example.com"),
        ],
        "Account": [
            row(
                "A1",
                Name="Contoso",
                Industry="Technology",
                AnnualRevenue=5000000.0,
                NumberOfEmployees=500,
                OwnerId="U1",
                CreatedDate="2024-01-10T09:00:00.000+0000",
                Description="Long text",
            ),
            row(
                "A2",
                Name="Fabrikam",
                Industry="Manufacturing",
                AnnualRevenue=None,
                NumberOfEmployees=50,
                OwnerId="U2",
                CreatedDate="2024-05-15T08:00:00.000+0000",
                Description=None,
            ),
            row(
                "A3",
                Name="northwind traders",
                Industry=None,
                AnnualRevenue=None,
                NumberOfEmployees=None,
                OwnerId="U1",
                Description=None,
            ),
        ],
        "Contact": [
            row(
                "C1",
                FirstName="Ann",
                LastName="Lee",
                Name="Ann Lee",
                Email="ann@contoso.com",
                AccountId="A1",
            ),
            row(
                "C2",
                FirstName="Raj",
                LastName="Patel",
                Name="Raj Patel",
                Email=None,
                AccountId="A1",
            ),
            row(
                "C3", FirstName="Mia", LastName="Wong", Name="Mia Wong", Email=None, AccountId="A2"
            ),
            row(
                "C4",
                FirstName="Sean",
                LastName="O'Brien",
                Name="Sean O'Brien",
                Email=None,
                AccountId=None,
            ),
        ],
        "Opportunity": [
            opportunity(
                "O1",
                Name="Contoso Cloud Migration",
                AccountId="A1",
                OwnerId="U1",
                Amount=250000.0,
                Probability=50,
                CloseDate="2024-06-30",
                StageName="Value Proposition",
                CreatedDate="2024-05-01T10:00:00.000+0000",
                SystemModstamp="2024-05-14T23:30:00.000+0000",
                Referral_Identifier__c="REF-001",
                Sync_with_Partner_Center__c=True,
                How_can_Microsoft_help__c="Proof of concept or demo",
                Solution_Areas__c="Azure;Security",
                Primary_Contact__c="C1",
                Audit__c="created",
            ),
            opportunity(
                "O2",
                Name="Contoso 50% Upsell",
                AccountId="A1",
                OwnerId="U2",
                Amount=12000.5,
                Probability=10,
                CloseDate="2024-05-15",
                StageName="Prospecting",
                CreatedDate="2024-05-15T00:30:00.000+0000",
                SystemModstamp="2024-05-15T11:00:00.000+0000",
                Referral_Identifier__c="REF-002",
                Solution_Areas__c="Azure",
            ),
            opportunity(
                "O3",
                Name="Fabrikam_Renewal",
                AccountId="A2",
                OwnerId="U1",
                Probability=100,
                CloseDate="2024-04-20",
                StageName="Closed Won",
                IsWon=True,
                IsClosed=True,
                CreatedDate="2023-12-31T23:59:59.000+0000",
                SystemModstamp="2024-04-20T08:00:00.000+0000",
                How_can_Microsoft_help__c="Quotes or licensing",
                Solution_Areas__c="Dynamics 365;Azure;Security",
            ),
            opportunity(
                "O4",
                Name="Orphan Deal",
                OwnerId="U2",
                Amount=0.0,
                Probability=0,
                CloseDate="2024-05-14",
                StageName="Closed Lost",
                IsClosed=True,
                CreatedDate="2024-05-14T18:00:00.000+0000",
                SystemModstamp="2024-05-14T18:00:00.000+0000",
                Referral_Identifier__c="ref-004",
            ),
            opportunity(
                "O5",
                Name="Deleted Deal",
                AccountId="A2",
                OwnerId="U1",
                Amount=999.0,
                CloseDate="2024-05-20",
                StageName="Prospecting",
                IsDeleted=True,
            ),
        ],
        "OpportunityContactRole": [
            row("R1", OpportunityId="O1", ContactId="C1", Role="Decision Maker", IsPrimary=True),
            row("R2", OpportunityId="O1", ContactId="C2", Role="Economic Buyer", IsPrimary=False),
            row("R3", OpportunityId="O3", ContactId="C3", Role="Technical Buyer", IsPrimary=True),
        ],
        "Microsoft_Solution__c": [
            row(
                "S1",
                Name="Azure Migrate",
                Opportunity__c="O1",
                Solution_Id__c="SOL-1",
                Solution_Type__c="Azure",
            ),
            row(
                "S2",
                Name="Defender",
                Opportunity__c="O1",
                Solution_Id__c="SOL-2",
                Solution_Type__c="Security",
            ),
            row(
                "S3",
                Name="Dynamics Sales",
                Opportunity__c="O3",
                Solution_Id__c="SOL-3",
                Solution_Type__c="Dynamics 365",
            ),
        ],
    }


@dataclass
class MemoryRows:
    """A RowSource over lists of rows, counting how it is read."""

    data: dict[str, list[dict[str, Any]]]
    scans: list[str] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {r["Id"]: (name, r) for name, rows in self.data.items() for r in rows}

    def rows(self, object_name: str, *, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        self.scans.append(object_name)
        return [r for r in self.data.get(object_name, []) if include_deleted or not r["IsDeleted"]]

    def row(self, object_name: str, record_id: str) -> Mapping[str, Any] | None:
        self.lookups.append(object_name)
        found = self.by_id.get(record_id)
        return found[1] if found and found[0] == object_name else None


SCHEMA = build_org_schema()


def run(text: str, *, include_deleted: bool = False, rows: MemoryRows | None = None) -> QueryResult:
    return execute(
        parse(text),
        SCHEMA,
        rows or MemoryRows(build_rows()),
        api_version=API,
        include_deleted=include_deleted,
        now=NOW,
    )


def url(type_: str, key: str) -> str:
    return f"/services/data/v{API}/sobjects/{type_}/{IDS[key]}"


def attrs(type_: str, key: str) -> dict[str, str]:
    return {"type": type_, "url": url(type_, key)}


# -- expectations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """The records' Name values, in order (totalSize is their number)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Records:
    """The exact records."""

    records: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Total:
    """totalSize with no records (COUNT())."""

    total: int


@dataclass(frozen=True)
class Fails:
    """A SoqlError with this code whose message contains `fragment`."""

    code: str
    fragment: str


def names(*values: str) -> Names:
    return Names(values)


def case(case_id: str, text: str, expect: object, *, deleted: bool = False) -> Any:
    return pytest.param(
        text.format(**IDS, **{k + "_15": v[:15] for k, v in IDS.items()}),
        expect,
        deleted,
        id=case_id,
    )


OPP = "SELECT Name FROM Opportunity WHERE "
UNSUPPORTED = "is not supported by the sandbox's SOQL subset"

CASES = [
    # SELECT and the record shape
    case(
        "select-fields-ordered",
        "SELECT Id, Name FROM Account ORDER BY Name",
        names("Contoso", "Fabrikam", "northwind traders"),
    ),
    case(
        "names-are-case-insensitive-and-canonical-on-the-wire",
        "select name, numberofemployees from ACCOUNT where NAME = 'contoso'",
        Records(
            ({"attributes": attrs("Account", "A1"), "Name": "Contoso", "NumberOfEmployees": 500},)
        ),
    ),
    case(
        "record-attributes-and-select-order",
        "SELECT StageName, Id, Amount FROM Opportunity WHERE Id = '{O1}'",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O1"),
                    "StageName": "Value Proposition",
                    "Id": IDS["O1"],
                    "Amount": 250000.0,
                },
            )
        ),
    ),
    case(
        "parent-path-nested-or-null",
        "SELECT Name, Account.Name FROM Opportunity WHERE Name = 'Orphan Deal' OR Name = 'Contoso Cloud Migration' ORDER BY Name",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O1"),
                    "Name": "Contoso Cloud Migration",
                    "Account": {"attributes": attrs("Account", "A1"), "Name": "Contoso"},
                },
                {"attributes": attrs("Opportunity", "O4"), "Name": "Orphan Deal", "Account": None},
            )
        ),
    ),
    case(
        "parent-paths-share-one-nested-record",
        "SELECT Account.Name, Account.Industry, Name FROM Opportunity WHERE Id = '{O1}'",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O1"),
                    "Account": {
                        "attributes": attrs("Account", "A1"),
                        "Name": "Contoso",
                        "Industry": "Technology",
                    },
                    "Name": "Contoso Cloud Migration",
                },
            )
        ),
    ),
    case(
        "multi-level-parent-path",
        "SELECT Role, Opportunity.Account.Name FROM OpportunityContactRole WHERE Id = '{R1}'",
        Records(
            (
                {
                    "attributes": attrs("OpportunityContactRole", "R1"),
                    "Role": "Decision Maker",
                    "Opportunity": {
                        "attributes": attrs("Opportunity", "O1"),
                        "Account": {"attributes": attrs("Account", "A1"), "Name": "Contoso"},
                    },
                },
            )
        ),
    ),
    case(
        "owner-relationship",
        "SELECT Owner.Name FROM Opportunity WHERE Name = 'Fabrikam_Renewal'",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O3"),
                    "Owner": {"attributes": attrs("User", "U1"), "Name": "Ada Admin"},
                },
            )
        ),
    ),
    case(
        "custom-relationship-r",
        "SELECT Name, Opportunity__r.Name FROM Microsoft_Solution__c ORDER BY Name LIMIT 1",
        Records(
            (
                {
                    "attributes": attrs("Microsoft_Solution__c", "S1"),
                    "Name": "Azure Migrate",
                    "Opportunity__r": {
                        "attributes": attrs("Opportunity", "O1"),
                        "Name": "Contoso Cloud Migration",
                    },
                },
            )
        ),
    ),
    case(
        "custom-lookup-r-on-opportunity",
        "SELECT Primary_Contact__r.Email FROM Opportunity WHERE Id = '{O1}'",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O1"),
                    "Primary_Contact__r": {
                        "attributes": attrs("Contact", "C1"),
                        "Email": "ann@contoso.com",
                    },
                },
            )
        ),
    ),
    case(
        "object-name-prefix-on-own-field",
        "SELECT Opportunity.Name FROM Opportunity WHERE Id = '{O2}'",
        names("Contoso 50% Upsell"),
    ),
    case("count", "SELECT COUNT() FROM Opportunity", Total(4)),
    case("count-with-where", "SELECT COUNT() FROM Opportunity WHERE IsClosed = true", Total(2)),
    case("count-query-all", "SELECT COUNT() FROM Opportunity", Total(5), deleted=True),
    case("count-with-limit", "SELECT COUNT() FROM Opportunity LIMIT 3", Total(3)),
    case(
        "count-field-counts-non-null",
        "SELECT COUNT(Amount) FROM Opportunity",
        Records(({"attributes": {"type": "AggregateResult"}, "expr0": 3},)),
    ),
    case(
        "count-field-alias",
        "SELECT COUNT(Id) total FROM Account",
        Records(({"attributes": {"type": "AggregateResult"}, "total": 3},)),
    ),
    case(
        "child-subquery-with-where-null-when-empty",
        "SELECT Name, (SELECT Role FROM OpportunityContactRoles WHERE IsPrimary = true) FROM Opportunity WHERE Name LIKE 'Contoso%' ORDER BY Name",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O2"),
                    "Name": "Contoso 50% Upsell",
                    "OpportunityContactRoles": None,
                },
                {
                    "attributes": attrs("Opportunity", "O1"),
                    "Name": "Contoso Cloud Migration",
                    "OpportunityContactRoles": {
                        "totalSize": 1,
                        "done": True,
                        "records": [
                            {
                                "attributes": attrs("OpportunityContactRole", "R1"),
                                "Role": "Decision Maker",
                            }
                        ],
                    },
                },
            )
        ),
    ),
    case(
        "child-subquery-order-limit-custom-relationship",
        "SELECT (SELECT Name FROM microsoft_solutions__r ORDER BY Name DESC LIMIT 1) FROM Opportunity WHERE Id = '{O1}'",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O1"),
                    "Microsoft_Solutions__r": {
                        "totalSize": 1,
                        "done": True,
                        "records": [
                            {"attributes": attrs("Microsoft_Solution__c", "S2"), "Name": "Defender"}
                        ],
                    },
                },
            )
        ),
    ),
    case(
        "child-subquery-with-parent-path",
        "SELECT (SELECT Contact.Name FROM OpportunityContactRoles ORDER BY Role) FROM Opportunity WHERE Id = '{O1}'",
        Records(
            (
                {
                    "attributes": attrs("Opportunity", "O1"),
                    "OpportunityContactRoles": {
                        "totalSize": 2,
                        "done": True,
                        "records": [
                            {
                                "attributes": attrs("OpportunityContactRole", "R1"),
                                "Contact": {
                                    "attributes": attrs("Contact", "C1"),
                                    "Name": "Ann Lee",
                                },
                            },
                            {
                                "attributes": attrs("OpportunityContactRole", "R2"),
                                "Contact": {
                                    "attributes": attrs("Contact", "C2"),
                                    "Name": "Raj Patel",
                                },
                            },
                        ],
                    },
                },
            )
        ),
    ),
    case(
        "semi-join",
        OPP
        + "Id IN (SELECT OpportunityId FROM OpportunityContactRole WHERE IsPrimary = true) ORDER BY Name",
        names("Contoso Cloud Migration", "Fabrikam_Renewal"),
    ),
    case(
        "anti-join-ignores-deleted-children",
        "SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity WHERE StageName = 'Prospecting') ORDER BY Name",
        names("Fabrikam", "northwind traders"),
    ),
    # WHERE operators
    case(
        "equals-is-case-insensitive",
        OPP + "Referral_Identifier__c = 'REF-004'",
        names("Orphan Deal"),
    ),
    case(
        "not-equals-includes-null",
        OPP + "Referral_Identifier__c != 'REF-001' ORDER BY Name",
        names("Contoso 50% Upsell", "Fabrikam_Renewal", "Orphan Deal"),
    ),
    case(
        "angle-not-equals",
        OPP + "StageName <> 'Prospecting' AND IsClosed = false",
        names("Contoso Cloud Migration"),
    ),
    case(
        "number-greater",
        OPP + "Amount > 12000 ORDER BY Amount",
        names("Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case(
        "decimal-greater-or-equal",
        OPP + "Amount >= 12000.5 ORDER BY Amount DESC",
        names("Contoso Cloud Migration", "Contoso 50% Upsell"),
    ),
    case("number-less-skips-null", OPP + "Amount < 1", names("Orphan Deal")),
    case(
        "signed-number",
        OPP + "Amount > -1 ORDER BY Amount",
        names("Orphan Deal", "Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case(
        "int-less-or-equal",
        "SELECT Name FROM Account WHERE NumberOfEmployees <= 50",
        names("Fabrikam"),
    ),
    case("boolean-true", OPP + "IsWon = TRUE", names("Fabrikam_Renewal")),
    case("boolean-false", OPP + "IsWon = false AND IsClosed = true", names("Orphan Deal")),
    case("equals-null", OPP + "AccountId = null", names("Orphan Deal")),
    case("not-equals-null", "SELECT COUNT() FROM Opportunity WHERE Amount != null", Total(3)),
    case(
        "in-strings",
        OPP + "StageName IN ('prospecting', 'Closed Won') ORDER BY Name",
        names("Contoso 50% Upsell", "Fabrikam_Renewal"),
    ),
    case(
        "not-in-includes-null",
        OPP + "Referral_Identifier__c NOT IN ('REF-001', 'ref-002') ORDER BY Name",
        names("Fabrikam_Renewal", "Orphan Deal"),
    ),
    case(
        "in-with-null",
        OPP + "Referral_Identifier__c IN ('REF-001', null) ORDER BY Name",
        names("Contoso Cloud Migration", "Fabrikam_Renewal"),
    ),
    case(
        "like-percent",
        OPP + "Name LIKE 'contoso%' ORDER BY Name",
        names("Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case("like-underscore", OPP + "Name LIKE '%n_Deal'", names("Orphan Deal")),
    case("like-escaped-percent", OPP + r"Name LIKE '%50\%%'", names("Contoso 50% Upsell")),
    case("like-escaped-underscore", OPP + r"Name LIKE '%\_%'", names("Fabrikam_Renewal")),
    case(
        "includes",
        OPP + "Solution_Areas__c INCLUDES ('security') ORDER BY Name",
        names("Contoso Cloud Migration", "Fabrikam_Renewal"),
    ),
    case(
        "includes-all-of-a-group",
        OPP + "Solution_Areas__c INCLUDES ('Azure;Security', 'Nothing') ORDER BY Name",
        names("Contoso Cloud Migration", "Fabrikam_Renewal"),
    ),
    case(
        "excludes-keeps-null",
        OPP + "Solution_Areas__c EXCLUDES ('Security') ORDER BY Name",
        names("Contoso 50% Upsell", "Orphan Deal"),
    ),
    case(
        "multipicklist-equals-is-a-set",
        OPP + "Solution_Areas__c = 'security;AZURE'",
        names("Contoso Cloud Migration"),
    ),
    case(
        "and-or-parentheses",
        OPP + "(StageName = 'Prospecting' OR IsWon = true) AND NOT Amount = null",
        names("Contoso 50% Upsell"),
    ),
    case(
        "not-parenthesised",
        OPP + "NOT (IsClosed = true) ORDER BY Name",
        names("Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case(
        "nested-or-in-and",
        OPP
        + "Amount > 0 AND (Name LIKE '%Upsell' OR (StageName = 'Value Proposition' AND IsClosed = false)) ORDER BY Name",
        names("Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case("parent-path-in-where", OPP + "Account.Name = 'fabrikam'", names("Fabrikam_Renewal")),
    case(
        "two-level-parent-in-where",
        OPP + "Account.Owner.Name = 'Bob Seller'",
        names("Fabrikam_Renewal"),
    ),
    case(
        "reference-equals-15-char-id",
        OPP + "AccountId = '{A1_15}' ORDER BY Name",
        names("Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case("id-15-char-literal", OPP + "Id = '{O1_15}'", names("Contoso Cloud Migration")),
    case(
        "id-in-list",
        OPP + "Id IN ('{O4}', '{O2_15}', '{O5}') ORDER BY Name",
        names("Contoso 50% Upsell", "Orphan Deal"),
    ),
    case(
        "id-in-list-query-all-sees-deleted",
        OPP + "Id IN ('{O4}', '{O5}') ORDER BY Name",
        names("Deleted Deal", "Orphan Deal"),
        deleted=True,
    ),
    case("null-never-orders", OPP + "Amount < null", names()),
    case(
        "date-literals-in-a-list",
        OPP + "CloseDate IN (TODAY, YESTERDAY) ORDER BY Name",
        names("Contoso 50% Upsell", "Orphan Deal"),
    ),
    case(
        "anti-join-keeps-null-references",
        OPP + "AccountId NOT IN (SELECT Id FROM Account WHERE Name = 'Contoso') ORDER BY Name",
        names("Fabrikam_Renewal", "Orphan Deal"),
    ),
    case(
        "semi-join-on-a-reference",
        OPP + "AccountId IN (SELECT Id FROM Account WHERE Industry = 'Manufacturing')",
        names("Fabrikam_Renewal"),
    ),
    case(
        "string-escapes",
        r"SELECT Name FROM Contact WHERE LastName = 'O\'Brien'",
        names("Sean O'Brien"),
    ),
    case(
        "unicode-escape",
        r"SELECT Name FROM Contact WHERE LastName = 'O\u0027brien'",
        names("Sean O'Brien"),
    ),
    case(
        "keywords-any-case",
        "select Name from Opportunity where isWon = True Order By name Asc limit 5",
        names("Fabrikam_Renewal"),
    ),
    case("query-all-deleted-rows", OPP + "IsDeleted = true", names("Deleted Deal"), deleted=True),
    case("query-hides-deleted-rows", OPP + "IsDeleted = true", names()),
    # dates and datetimes
    case("date-equals", OPP + "CloseDate = 2024-06-30", names("Contoso Cloud Migration")),
    case(
        "date-range",
        OPP + "CloseDate >= 2024-05-14 AND CloseDate < 2024-06-01 ORDER BY CloseDate",
        names("Orphan Deal", "Contoso 50% Upsell"),
    ),
    case(
        "datetime-z",
        OPP + "CreatedDate > 2024-05-14T00:00:00Z ORDER BY CreatedDate",
        names("Orphan Deal", "Contoso 50% Upsell"),
    ),
    case(
        "datetime-plus-offset",
        OPP + "SystemModstamp > 2024-05-15T01:00:00+02:00 ORDER BY SystemModstamp DESC",
        names("Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case(
        "datetime-minus-offset-millis",
        OPP + "CreatedDate = 2024-05-14T13:00:00.000-05:00",
        names("Orphan Deal"),
    ),
    case("today-on-date", OPP + "CloseDate = TODAY", names("Contoso 50% Upsell")),
    case("yesterday-on-date", OPP + "CloseDate = YESTERDAY", names("Orphan Deal")),
    case(
        "today-on-datetime-is-the-utc-day", OPP + "CreatedDate = TODAY", names("Contoso 50% Upsell")
    ),
    case(
        "last-n-days-includes-today",
        OPP + "CreatedDate = LAST_N_DAYS:1 ORDER BY Name",
        names("Contoso 50% Upsell", "Orphan Deal"),
    ),
    case(
        "this-month",
        OPP + "CloseDate = THIS_MONTH ORDER BY Name",
        names("Contoso 50% Upsell", "Orphan Deal"),
    ),
    case(
        "next-n-days-starts-tomorrow",
        OPP + "CloseDate = NEXT_N_DAYS:60",
        names("Contoso Cloud Migration"),
    ),
    case("n-days-ago", OPP + "CloseDate = N_DAYS_AGO:25", names("Fabrikam_Renewal")),
    case("before-this-month", OPP + "CloseDate < THIS_MONTH", names("Fabrikam_Renewal")),
    case(
        "after-yesterday-on-datetime", OPP + "CreatedDate > YESTERDAY", names("Contoso 50% Upsell")
    ),
    case(
        "this-year",
        OPP + "CreatedDate = THIS_YEAR ORDER BY Name",
        names("Contoso 50% Upsell", "Contoso Cloud Migration", "Orphan Deal"),
    ),
    case("last-year", OPP + "CreatedDate = LAST_YEAR", names("Fabrikam_Renewal")),
    case(
        "this-week-starts-sunday",
        OPP + "CloseDate = THIS_WEEK ORDER BY Name",
        names("Contoso 50% Upsell", "Orphan Deal"),
    ),
    case(
        "this-quarter", "SELECT COUNT() FROM Opportunity WHERE CloseDate = THIS_QUARTER", Total(4)
    ),
    case(
        "last-90-days-and-not",
        OPP + "NOT CloseDate = LAST_90_DAYS",
        names("Contoso Cloud Migration"),
    ),
    # ORDER BY, LIMIT, OFFSET
    case(
        "order-desc-nulls-last-by-default",
        OPP + "Name != null ORDER BY Amount DESC",
        names("Contoso Cloud Migration", "Contoso 50% Upsell", "Orphan Deal", "Fabrikam_Renewal"),
    ),
    case(
        "order-asc-nulls-first-by-default",
        "SELECT Name FROM Opportunity ORDER BY Amount",
        names("Fabrikam_Renewal", "Orphan Deal", "Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case(
        "order-asc-nulls-last",
        "SELECT Name FROM Opportunity ORDER BY Amount ASC NULLS LAST",
        names("Orphan Deal", "Contoso 50% Upsell", "Contoso Cloud Migration", "Fabrikam_Renewal"),
    ),
    case(
        "order-desc-nulls-first",
        "SELECT Name FROM Opportunity ORDER BY Referral_Identifier__c DESC NULLS FIRST",
        names("Fabrikam_Renewal", "Orphan Deal", "Contoso 50% Upsell", "Contoso Cloud Migration"),
    ),
    case(
        "order-several-keys",
        "SELECT Name FROM Opportunity ORDER BY IsClosed, CloseDate DESC",
        names("Contoso Cloud Migration", "Contoso 50% Upsell", "Orphan Deal", "Fabrikam_Renewal"),
    ),
    case(
        "order-by-parent-path",
        "SELECT Name FROM Opportunity ORDER BY Account.Name DESC NULLS LAST, Name",
        names("Fabrikam_Renewal", "Contoso 50% Upsell", "Contoso Cloud Migration", "Orphan Deal"),
    ),
    case(
        "order-by-datetime-then-id",
        "SELECT Name FROM Opportunity ORDER BY SystemModstamp ASC, Id ASC",
        names("Fabrikam_Renewal", "Orphan Deal", "Contoso Cloud Migration", "Contoso 50% Upsell"),
    ),
    case("limit", "SELECT Name FROM Account ORDER BY Name LIMIT 2", names("Contoso", "Fabrikam")),
    case(
        "limit-offset", "SELECT Name FROM Account ORDER BY Name LIMIT 1 OFFSET 1", names("Fabrikam")
    ),
    case("offset-past-the-end", "SELECT Name FROM Account ORDER BY Name OFFSET 2000", names()),
    # errors: MALFORMED_QUERY
    case(
        "syntax-eof",
        "SELECT Id FROM Opportunity WHERE",
        Fails("MALFORMED_QUERY", "ERROR at Row:1:Column:33\nunexpected token: '<EOF>'"),
    ),
    case(
        "syntax-missing-from",
        "SELECT Id Opportunity",
        Fails("MALFORMED_QUERY", "unexpected token: 'Opportunity'"),
    ),
    case(
        "syntax-mixed-and-or",
        OPP + "IsWon = true AND IsClosed = true OR Amount = 0",
        Fails("MALFORMED_QUERY", "unexpected token: 'OR'"),
    ),
    case(
        "syntax-unknown-escape",
        OPP + r"Name = 'a\x'",
        Fails("MALFORMED_QUERY", r"Illegal character sequence '\x'"),
    ),
    case(
        "syntax-unterminated-string",
        OPP + "Name = 'abc",
        Fails("MALFORMED_QUERY", "unterminated string literal"),
    ),
    case(
        "syntax-double-quotes",
        OPP + 'Name = "abc"',
        Fails("MALFORMED_QUERY", "unexpected token: '\"'"),
    ),
    case(
        "syntax-bind-variable",
        OPP + "Name = :name",
        Fails("MALFORMED_QUERY", "unexpected token: ':'"),
    ),
    case(
        "syntax-impossible-date",
        OPP + "CloseDate = 2024-02-30",
        Fails("MALFORMED_QUERY", "invalid date or datetime literal: '2024-02-30'"),
    ),
    case(
        "syntax-datetime-without-zone",
        OPP + "CreatedDate > 2024-02-01T00:00:00",
        Fails("MALFORMED_QUERY", "invalid date or datetime literal"),
    ),
    case(
        "syntax-decimal-limit",
        "SELECT Id FROM Account LIMIT 1.5",
        Fails("MALFORMED_QUERY", "unexpected token: '1.5'"),
    ),
    case(
        "syntax-row-and-column-on-later-line",
        "SELECT Id\nFROM Account\nWHERE Name = = 'x'",
        Fails(
            "MALFORMED_QUERY",
            "\nWHERE Name = = 'x'\n             ^\nERROR at Row:3:Column:14\nunexpected token: '='",
        ),
    ),
    case(
        "syntax-select-without-fields",
        "SELECT FROM Account",
        Fails("MALFORMED_QUERY", "Column:8\nunexpected token: 'FROM'"),
    ),
    case(
        "syntax-reserved-word-as-field",
        "SELECT Id FROM Account ORDER BY LIMIT 5",
        Fails("MALFORMED_QUERY", "unexpected token: 'LIMIT'"),
    ),
    case(
        "syntax-trailing-token",
        "SELECT Id FROM Account WHERE Name = 'x' extra",
        Fails("MALFORMED_QUERY", "unexpected token: 'extra'"),
    ),
    case(
        "syntax-empty-in-list",
        OPP + "Name IN ()",
        Fails("MALFORMED_QUERY", "unexpected token: ')'"),
    ),
    case(
        "syntax-not-like",
        OPP + "Name NOT LIKE 'a%'",
        Fails("MALFORMED_QUERY", "unexpected token: 'NOT'"),
    ),
    case(
        "duplicate-field",
        "SELECT Name, Id, name FROM Account",
        Fails("MALFORMED_QUERY", "duplicate field selected: name"),
    ),
    case(
        "count-with-fields",
        "SELECT Id, COUNT() FROM Account",
        Fails("MALFORMED_QUERY", "COUNT() must be the only item"),
    ),
    case(
        "unsupported-group-by",
        "SELECT Name FROM Account GROUP BY Name",
        Fails("MALFORMED_QUERY", "GROUP BY " + UNSUPPORTED),
    ),
    case(
        "unsupported-having",
        "SELECT Name FROM Account WHERE Name != null HAVING",
        Fails("MALFORMED_QUERY", "HAVING " + UNSUPPORTED),
    ),
    case(
        "unsupported-aggregate",
        "SELECT SUM(Amount) FROM Opportunity",
        Fails("MALFORMED_QUERY", "the function SUM() " + UNSUPPORTED),
    ),
    case(
        "unsupported-typeof",
        "SELECT TYPEOF Owner WHEN User THEN Name END FROM Opportunity",
        Fails("MALFORMED_QUERY", "TYPEOF " + UNSUPPORTED),
    ),
    case(
        "unsupported-for-update",
        "SELECT Id FROM Account LIMIT 1 FOR UPDATE",
        Fails("MALFORMED_QUERY", "FOR VIEW / FOR REFERENCE / FOR UPDATE " + UNSUPPORTED),
    ),
    case(
        "unsupported-with",
        "SELECT Id FROM Account WITH SECURITY_ENFORCED",
        Fails("MALFORMED_QUERY", "WITH " + UNSUPPORTED),
    ),
    case(
        "unsupported-using-scope",
        "SELECT Id FROM Account USING SCOPE Mine",
        Fails("MALFORMED_QUERY", "USING SCOPE " + UNSUPPORTED),
    ),
    case(
        "unsupported-format",
        "SELECT FORMAT(Amount) FROM Opportunity",
        Fails("MALFORMED_QUERY", "the function FORMAT() " + UNSUPPORTED),
    ),
    case(
        "unsupported-convert-currency",
        "SELECT convertCurrency(Amount) FROM Opportunity",
        Fails("MALFORMED_QUERY", "the function convertCurrency() " + UNSUPPORTED),
    ),
    case(
        "unsupported-alias",
        "SELECT a.Name FROM Account a",
        Fails("MALFORMED_QUERY", "an alias for the object ('a') " + UNSUPPORTED),
    ),
    case(
        "unsupported-fiscal-literal",
        OPP + "CloseDate = THIS_FISCAL_YEAR",
        Fails("MALFORMED_QUERY", "the fiscal date literal THIS_FISCAL_YEAR " + UNSUPPORTED),
    ),
    case(
        "unsupported-offset-in-child",
        "SELECT (SELECT Id FROM OpportunityContactRoles OFFSET 1) FROM Opportunity",
        Fails("MALFORMED_QUERY", "OFFSET in a child subquery " + UNSUPPORTED),
    ),
    case(
        "unsupported-nested-semi-join",
        OPP
        + "Id IN (SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId IN (SELECT Id FROM Contact))",
        Fails("MALFORMED_QUERY", "a semi-join inside a semi-join " + UNSUPPORTED),
    ),
    case(
        "unsupported-order-by-in-semi-join",
        OPP + "Id IN (SELECT OpportunityId FROM OpportunityContactRole ORDER BY Role)",
        Fails("MALFORMED_QUERY", "ORDER BY in a semi-join subquery " + UNSUPPORTED),
    ),
    case(
        "unsupported-limit-in-semi-join",
        OPP + "Id IN (SELECT OpportunityId FROM OpportunityContactRole LIMIT 5)",
        Fails("MALFORMED_QUERY", "LIMIT in a semi-join subquery " + UNSUPPORTED),
    ),
    case(
        "semi-join-selects-one-field",
        OPP + "Id IN (SELECT OpportunityId, ContactId FROM OpportunityContactRole)",
        Fails(
            "MALFORMED_QUERY", "a semi-join subquery must select exactly one id or reference field"
        ),
    ),
    case(
        "unsupported-grandchild-subquery",
        "SELECT (SELECT Id, (SELECT Id FROM Notes) FROM OpportunityContactRoles) FROM Opportunity",
        Fails("MALFORMED_QUERY", "a subquery inside a subquery " + UNSUPPORTED),
    ),
    case(
        "unsupported-count-in-child",
        "SELECT (SELECT COUNT() FROM OpportunityContactRoles) FROM Opportunity",
        Fails("MALFORMED_QUERY", "COUNT in a child subquery " + UNSUPPORTED),
    ),
    case(
        "count-field-with-plain-field",
        "SELECT Name, COUNT(Id) FROM Account",
        Fails("MALFORMED_QUERY", "Field must be grouped or aggregated: Name"),
    ),
    case(
        "unsupported-function-in-where",
        OPP + "DAY_ONLY(CreatedDate) = TODAY",
        Fails("MALFORMED_QUERY", "the function DAY_ONLY() in WHERE " + UNSUPPORTED),
    ),
    case(
        "unsupported-function-in-order-by",
        "SELECT Name FROM Opportunity ORDER BY CALENDAR_YEAR(CloseDate)",
        Fails("MALFORMED_QUERY", "the function CALENDAR_YEAR() in ORDER BY " + UNSUPPORTED),
    ),
    case(
        "syntax-number-in-select",
        "SELECT 5 FROM Account",
        Fails("MALFORMED_QUERY", "Column:8\nunexpected token: '5'"),
    ),
    case(
        "syntax-parenthesis-without-select",
        "SELECT (Id) FROM Account",
        Fails("MALFORMED_QUERY", "Column:9\nunexpected token: 'Id'"),
    ),
    case(
        "syntax-like-needs-a-string",
        OPP + "Name LIKE 5",
        Fails("MALFORMED_QUERY", "unexpected token: '5'"),
    ),
    case(
        "syntax-includes-needs-strings",
        OPP + "Solution_Areas__c INCLUDES (5)",
        Fails("MALFORMED_QUERY", "unexpected token: '5'"),
    ),
    case(
        "syntax-short-unicode-escape",
        OPP + r"Name = '\u12'",
        Fails("MALFORMED_QUERY", r"Illegal character sequence '\u12''"),
    ),
    case(
        "duplicate-child-subquery",
        "SELECT (SELECT Id FROM OpportunityContactRoles), (SELECT Role FROM opportunitycontactroles) FROM Opportunity",
        Fails("MALFORMED_QUERY", "duplicate field selected: OpportunityContactRoles"),
    ),
    case(
        "semi-join-selecting-a-text-field",
        OPP + "Id IN (SELECT Name FROM Opportunity)",
        Fails(
            "INVALID_FIELD",
            "semi join sub-selects can only select an id or reference field, not 'Name'",
        ),
    ),
    case(
        "offset-above-2000",
        "SELECT Id FROM Account OFFSET 2001",
        Fails("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
    ),
    # errors: INVALID_FIELD / INVALID_TYPE / INVALID_QUERY_FILTER_OPERATOR
    case(
        "unknown-column",
        "SELECT Foo FROM Opportunity",
        Fails(
            "INVALID_FIELD",
            "\nSELECT Foo FROM Opportunity\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Opportunity'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
        ),
    ),
    case(
        "unknown-column-in-where",
        "SELECT Id FROM Opportunity WHERE Bar__c = 1",
        Fails("INVALID_FIELD", "Column:34\nNo such column 'Bar__c' on entity 'Opportunity'"),
    ),
    case(
        "unknown-column-on-parent",
        "SELECT Account.Foo FROM Opportunity",
        Fails("INVALID_FIELD", "No such column 'Foo' on entity 'Account'"),
    ),
    case(
        "unknown-relationship",
        "SELECT Foo__r.Name FROM Opportunity",
        Fails("INVALID_FIELD", "Didn't understand relationship 'Foo__r' in field path."),
    ),
    case(
        "relationship-is-not-a-column",
        "SELECT Account FROM Opportunity",
        Fails("INVALID_FIELD", "No such column 'Account' on entity 'Opportunity'"),
    ),
    case(
        "unknown-object",
        "SELECT Id FROM Foo",
        Fails(
            "INVALID_TYPE",
            "Column:16\nsObject type 'Foo' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
        ),
    ),
    case(
        "unknown-child-relationship",
        "SELECT (SELECT Id FROM Foos) FROM Opportunity",
        Fails("INVALID_TYPE", "Didn't understand relationship 'Foos' in FROM part of query call."),
    ),
    case(
        "semi-join-unknown-object",
        OPP + "Id IN (SELECT OpportunityId FROM Nope)",
        Fails("INVALID_TYPE", "sObject type 'Nope' is not supported."),
    ),
    case(
        "string-against-date",
        OPP + "CloseDate = '2024-05-01'",
        Fails(
            "INVALID_FIELD",
            "value of filter criterion for field 'CloseDate' must be of type date and should not be enclosed in quotes",
        ),
    ),
    case(
        "date-literal-against-boolean",
        OPP + "IsWon = TODAY",
        Fails(
            "INVALID_FIELD", "value of filter criterion for field 'IsWon' must be of type boolean"
        ),
    ),
    case(
        "number-against-string",
        OPP + "Name = 5",
        Fails(
            "INVALID_FIELD",
            "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes",
        ),
    ),
    case(
        "date-against-datetime",
        OPP + "CreatedDate > 2024-05-01",
        Fails("INVALID_FIELD", "must be of type dateTime"),
    ),
    case(
        "datetime-against-date",
        OPP + "CloseDate > 2024-05-01T00:00:00Z",
        Fails("INVALID_FIELD", "must be of type date"),
    ),
    case(
        "string-against-number",
        OPP + "Amount = '5'",
        Fails("INVALID_FIELD", "must be of type double and should not be enclosed in quotes"),
    ),
    case(
        "not-filterable",
        OPP + "Audit__c = 'x'",
        Fails("INVALID_FIELD", "field 'Audit__c' can not be filtered in a query call"),
    ),
    case(
        "not-sortable",
        "SELECT Name FROM Account ORDER BY Description",
        Fails("INVALID_FIELD", "field 'Description' can not be sorted in a query call"),
    ),
    case(
        "semi-join-on-a-text-field",
        OPP + "Name IN (SELECT Id FROM Account)",
        Fails("INVALID_FIELD", "semi join sub-selects are only allowed on id or reference fields"),
    ),
    case(
        "malformed-id-literal",
        OPP + "Id = 'abc'",
        Fails("INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
    ),
    case(
        "like-on-a-number",
        OPP + "Amount LIKE '5%'",
        Fails("INVALID_QUERY_FILTER_OPERATOR", "invalid operator on currency field"),
    ),
    case(
        "includes-on-a-picklist",
        OPP + "StageName INCLUDES ('Prospecting')",
        Fails(
            "INVALID_QUERY_FILTER_OPERATOR",
            "includes or excludes operator only valid on multipicklist field",
        ),
    ),
    case(
        "range-on-a-multipicklist",
        OPP + "Solution_Areas__c > 'A'",
        Fails("INVALID_QUERY_FILTER_OPERATOR", "invalid operator on multipicklist field"),
    ),
]


@pytest.mark.parametrize(("text", "expect", "deleted"), CASES)
def test_query_table(text: str, expect: object, deleted: bool) -> None:
    if isinstance(expect, Fails):
        with pytest.raises(SoqlError) as caught:
            run(text, include_deleted=deleted)
        assert caught.value.error_code == expect.code
        assert expect.fragment in caught.value.message
        return
    result = run(text, include_deleted=deleted)
    if isinstance(expect, Names):
        assert [record["Name"] for record in result.records] == list(expect.names)
        assert result.total_size == len(expect.names)
    elif isinstance(expect, Records):
        assert result.records == list(expect.records)
        assert result.total_size == len(expect.records)
    else:
        assert isinstance(expect, Total)
        assert (result.total_size, result.records) == (expect.total, [])


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 60


# -- how rows are read ---------------------------------------------------------------------


def test_id_filters_read_rows_by_id_not_by_scan() -> None:
    rows = MemoryRows(build_rows())
    result = run(
        f"SELECT Name FROM Opportunity WHERE Id IN ('{IDS['O1']}', '{IDS['O2']}') AND Amount > 0",
        rows=rows,
    )
    assert result.total_size == 2
    assert rows.scans == []
    assert rows.lookups == ["Opportunity", "Opportunity"]


def test_semi_join_on_id_reads_the_matching_rows_by_id() -> None:
    rows = MemoryRows(build_rows())
    result = run(
        "SELECT Name FROM Opportunity WHERE Id IN (SELECT OpportunityId FROM OpportunityContactRole)",
        rows=rows,
    )
    assert sorted(r["Name"] for r in result.records) == [
        "Contoso Cloud Migration",
        "Fabrikam_Renewal",
    ]
    assert rows.scans == ["OpportunityContactRole"]
    assert rows.lookups == ["Opportunity", "Opportunity"]


def test_child_subqueries_scan_the_child_object_once() -> None:
    rows = MemoryRows(build_rows())
    run(
        "SELECT Name, (SELECT Id FROM OpportunityContactRoles), (SELECT Id FROM Microsoft_Solutions__r) FROM Opportunity",
        rows=rows,
    )
    assert sorted(rows.scans) == ["Microsoft_Solution__c", "Opportunity", "OpportunityContactRole"]


def test_parent_rows_are_read_once_per_query() -> None:
    rows = MemoryRows(build_rows())
    run(
        "SELECT Account.Name, Account.Owner.Name FROM Opportunity WHERE Account.Name != null ORDER BY Account.Name",
        rows=rows,
    )
    assert sorted(rows.lookups) == ["Account", "Account", "User", "User"]


def test_large_tables_stay_fast() -> None:
    count = 50_000  # the store's benchmark size per object
    data = build_rows()
    data["Opportunity"] = [
        opportunity(
            "O1",
            Id=make_id("006", 100 + n),
            Name=f"Deal {n:05d}",
            AccountId=IDS["A1"] if n % 2 else None,
            Amount=float(n % 997),
            CloseDate=f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}",
            SystemModstamp=f"2024-05-{1 + n % 28:02d}T{n % 24:02d}:00:00.000+0000",
            StageName="Prospecting",
        )
        for n in range(count)
    ]
    started = datetime.now(UTC)
    result = run(
        "SELECT Id, Name, Account.Name FROM Opportunity WHERE SystemModstamp > 2024-05-10T00:00:00Z "
        "AND Amount >= 10 ORDER BY SystemModstamp ASC, Id ASC",
        rows=MemoryRows(data),
    )
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert result.total_size > count // 2
    assert elapsed < 10  # a generous bound on shared CI cores; typical runs take about a second


def test_parse_is_pure_and_structural() -> None:
    first = parse("SELECT Id FROM Account WHERE Name = 'x'")
    second = parse("SELECT   Id\nFROM Account\nWHERE Name = 'x'")
    assert first == second


# -- properties ----------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.text())
def test_string_literals_round_trip_through_the_tokenizer(value: str) -> None:
    tokens = tokenize(quote_string(value))
    assert [token.kind for token in tokens] == [STRING, EOF]
    assert tokens[0].value == value


@settings(max_examples=60)
@given(st.text(), st.sampled_from(["Name", "LastName"]))
def test_quoted_values_match_themselves(value: str, column: str) -> None:
    data = build_rows()
    data["Contact"][0] |= {column: value}
    result = run(
        f"SELECT Id FROM Contact WHERE {column} = {quote_string(value)}", rows=MemoryRows(data)
    )
    matched = {r["Id"] for r in result.records}
    assert IDS["C1"] in matched


accounts = st.lists(
    st.tuples(st.sampled_from(["alpha", "Beta", "gamma", "Delta", "beta"]), st.integers(0, 5)),
    min_size=0,
    max_size=25,
)


def account_rows(items: list[tuple[str, int]]) -> MemoryRows:
    data = build_rows()
    data["Account"] = [
        row("A1", Id=make_id("001", 100 + n), Name=name, NumberOfEmployees=size, OwnerId="U1")
        for n, (name, size) in enumerate(items)
    ]
    return MemoryRows(data)


@settings(max_examples=60)
@given(accounts, st.none() | st.integers(0, 30), st.none() | st.integers(0, 30))
def test_limit_and_offset_slice_the_ordered_result(
    items: list[tuple[str, int]], limit: int | None, offset: int | None
) -> None:
    rows = account_rows(items)
    base = "SELECT Id FROM Account ORDER BY NumberOfEmployees DESC, Name, Id"
    full = [r["Id"] for r in run(base, rows=rows).records]
    expected_order = [
        r["Id"]
        for r in sorted(
            sorted(rows.data["Account"], key=lambda r: (r["Name"].casefold(), r["Id"])),
            key=lambda r: r["NumberOfEmployees"],
            reverse=True,
        )
    ]
    assert full == expected_order
    text = (
        base
        + (f" LIMIT {limit}" if limit is not None else "")
        + (f" OFFSET {offset}" if offset is not None else "")
    )
    page = run(text, rows=rows)
    start = offset or 0
    assert [r["Id"] for r in page.records] == full[start : None if limit is None else start + limit]
    assert page.total_size == len(page.records)


conditions = st.sampled_from(
    [
        "NumberOfEmployees > 2",
        "NumberOfEmployees <= 1",
        "NumberOfEmployees = 3",
        "NumberOfEmployees IN (0, 4)",
        "Name = 'BETA'",
        "Name LIKE '%a'",
        "Name IN ('alpha', 'delta')",
        "Name != 'gamma' AND NumberOfEmployees >= 2",
        "Name = 'alpha' OR NumberOfEmployees < 3",
        "CreatedDate = TODAY",
        "Name NOT IN ('beta')",
    ]
)


@settings(max_examples=60)
@given(accounts, conditions)
def test_not_is_the_complement_for_non_null_fields(
    items: list[tuple[str, int]], condition: str
) -> None:
    rows = account_rows(items)
    everything = {r["Id"] for r in run("SELECT Id FROM Account", rows=rows).records}
    chosen = {r["Id"] for r in run(f"SELECT Id FROM Account WHERE {condition}", rows=rows).records}
    rest = {
        r["Id"] for r in run(f"SELECT Id FROM Account WHERE NOT ({condition})", rows=rows).records
    }
    assert chosen | rest == everything
    assert not chosen & rest


@settings(max_examples=60)
@given(st.lists(st.text(), min_size=1, max_size=3))
def test_the_clients_literals_read_back_as_written(items: list[str]) -> None:
    for value in items:
        [token, _eof] = tokenize(soql_quote(value))
        assert token.value == value
    query = parse(f"SELECT Id FROM Contact WHERE LastName IN {soql_in(items)}")
    assert isinstance(query.where, InList)
    assert [literal.value for literal in query.where.values] == items


@settings(max_examples=60)
@given(st.text(min_size=1))
def test_the_clients_like_patterns_match_only_the_value(value: str) -> None:
    data = build_rows()
    data["Contact"] = data["Contact"][:3]
    data["Contact"][0] |= {"LastName": value}
    data["Contact"][1] |= {"LastName": value + "x"}
    data["Contact"][2] |= {"LastName": "x" + value}
    result = run(
        f"SELECT Id FROM Contact WHERE LastName LIKE {soql_like(value)}", rows=MemoryRows(data)
    )
    assert [r["Id"] for r in result.records] == [IDS["C1"]]


VOCABULARY = [
    *("SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "INCLUDES", "ORDER", "BY"),
    *("LIMIT", "OFFSET", "NULLS", "FIRST", "DESC", "COUNT", "null", "true", "TODAY", "LAST_N_DAYS"),
    *("Id", "Name", "Amount", "CloseDate", "CreatedDate", "Solution_Areas__c", "IsWon", "Account"),
    *("Opportunity", "OpportunityContactRoles", "AccountId", "Owner", "GROUP", "Foo"),
    *("=", "!=", "<", ">=", "(", ")", ",", ".", ":", "'x'", "'006'", "5", "-1.5", "2024-05-01"),
    *("2024-05-01T00:00:00Z", "'a;b'", "\\", "'"),
]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=14), st.booleans())
def test_any_token_soup_is_answered_or_refused_with_a_soql_error(
    words: list[str], prefixed: bool
) -> None:
    text = ("SELECT Name FROM Opportunity " if prefixed else "") + " ".join(words)
    refusal: SoqlError | None = None
    try:
        run(text)
    except SoqlError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.error_code in {
            "MALFORMED_QUERY",
            "INVALID_FIELD",
            "INVALID_TYPE",
            "INVALID_QUERY_FILTER_OPERATOR",
        }
        assert "ERROR at Row:1:Column:" in refusal.message


def test_deep_nesting_is_refused_not_crashed() -> None:
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id FROM Account WHERE " + "(" * 5000 + "Name = 'x'" + ")" * 5000)
    assert "nested too deeply" in caught.value.message
