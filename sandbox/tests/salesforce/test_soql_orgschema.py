"""The SOQL engine against the sandbox's real schema (`orgschema.build_schema()`).

Object, field and relationship names here are the org's own, as cosell's metadata and the
built-in standard objects define them; the queries are the ones the connector sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from cosell_sandbox.salesforce.ids import to_18
from cosell_sandbox.salesforce.orgschema import build_schema
from cosell_sandbox.salesforce.soql import SoqlError, check, execute, parse

SCHEMA = build_schema()
NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)


def make_id(object_name: str, n: int) -> str:
    obj = SCHEMA.sobject(object_name)
    assert obj is not None
    return str(to_18(f"{obj.key_prefix}Xy{n:010d}"))


ACCOUNT = make_id("Account", 1)
USER = make_id("User", 1)
CONTACT = make_id("Contact", 1)
OPP_SYNCED = make_id("Opportunity", 1)
OPP_NEW = make_id("Opportunity", 2)
SOLUTION = make_id("Microsoft_Solution__c", 1)
ROLE = make_id("OpportunityContactRole", 1)
LINK = make_id("ContentDocumentLink", 1)


def live(**values: Any) -> dict[str, Any]:
    return {"IsDeleted": False, **values}


DATA: dict[str, list[dict[str, Any]]] = {
    "User": [live(Id=USER, Name="Integration User")],
    "Account": [live(Id=ACCOUNT, Name="Contoso", OwnerId=USER, BillingAddress=None)],
    "Contact": [live(Id=CONTACT, LastName="Lee", Email="ann@contoso.com", AccountId=ACCOUNT)],
    "Opportunity": [
        live(
            Id=OPP_SYNCED,
            Name="Cloud Migration",
            AccountId=ACCOUNT,
            OwnerId=USER,
            Sync_with_Partner_Center__c=True,
            Referral_Identifier__c="2f1c0e4e-ref",
            SystemModstamp="2024-05-14T10:00:00.000+0000",
        ),
        live(
            Id=OPP_NEW,
            Name="New Share",
            AccountId=ACCOUNT,
            OwnerId=USER,
            Sync_with_Partner_Center__c=True,
            Referral_Identifier__c=None,
            SystemModstamp="2024-05-15T10:00:00.000+0000",
        ),
    ],
    "Microsoft_Solution__c": [
        live(Id=SOLUTION, Name="Azure Migrate", Solution_Id__c="SOL-1", Opportunity__c=OPP_NEW)
    ],
    "OpportunityContactRole": [
        live(
            Id=ROLE, OpportunityId=OPP_NEW, ContactId=CONTACT, Role="Decision Maker", IsPrimary=True
        )
    ],
    "ContentDocumentLink": [live(Id=LINK, LinkedEntityId=OPP_NEW)],
}


class Rows:
    def rows(self, object_name: str, *, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        return [r for r in DATA.get(object_name, []) if include_deleted or not r["IsDeleted"]]

    def row(self, object_name: str, record_id: str) -> Mapping[str, Any] | None:
        return next((r for r in DATA.get(object_name, []) if r["Id"] == record_id), None)


def run(text: str) -> list[dict[str, Any]]:
    result = execute(
        parse(text), SCHEMA, Rows(), api_version="62.0", include_deleted=False, now=NOW
    )
    assert result.total_size == len(result.records)
    return result.records


def test_the_connectors_outbound_poll() -> None:
    records = run(
        "SELECT Id, Name, Account.Name, Owner.Name, How_can_Microsoft_help__c, "
        "(SELECT Name, Solution_Id__c FROM Microsoft_Solutions__r), "
        "(SELECT Contact.Email, Role FROM OpportunityContactRoles WHERE IsPrimary = true) "
        "FROM Opportunity WHERE Sync_with_Partner_Center__c = true AND Referral_Identifier__c = null "
        "AND SystemModstamp > 2024-05-01T00:00:00+00:00 ORDER BY SystemModstamp ASC, Id ASC LIMIT 200"
    )
    assert records == [
        {
            "attributes": {
                "type": "Opportunity",
                "url": f"/services/data/v62.0/sobjects/Opportunity/{OPP_NEW}",
            },
            "Id": OPP_NEW,
            "Name": "New Share",
            "Account": {
                "attributes": {
                    "type": "Account",
                    "url": f"/services/data/v62.0/sobjects/Account/{ACCOUNT}",
                },
                "Name": "Contoso",
            },
            "Owner": {
                "attributes": {"type": "User", "url": f"/services/data/v62.0/sobjects/User/{USER}"},
                "Name": "Integration User",
            },
            "How_can_Microsoft_help__c": None,
            "Microsoft_Solutions__r": {
                "totalSize": 1,
                "done": True,
                "records": [
                    {
                        "attributes": {
                            "type": "Microsoft_Solution__c",
                            "url": f"/services/data/v62.0/sobjects/Microsoft_Solution__c/{SOLUTION}",
                        },
                        "Name": "Azure Migrate",
                        "Solution_Id__c": "SOL-1",
                    }
                ],
            },
            "OpportunityContactRoles": {
                "totalSize": 1,
                "done": True,
                "records": [
                    {
                        "attributes": {
                            "type": "OpportunityContactRole",
                            "url": f"/services/data/v62.0/sobjects/OpportunityContactRole/{ROLE}",
                        },
                        "Contact": {
                            "attributes": {
                                "type": "Contact",
                                "url": f"/services/data/v62.0/sobjects/Contact/{CONTACT}",
                            },
                            "Email": "ann@contoso.com",
                        },
                        "Role": "Decision Maker",
                    }
                ],
            },
        }
    ]


def test_lookup_by_external_id_and_custom_parent_relationship() -> None:
    assert [
        r["Id"]
        for r in run(
            "SELECT Id FROM Opportunity WHERE Referral_Identifier__c IN ('2F1C0E4E-REF', 'other')"
        )
    ] == [OPP_SYNCED]
    solutions = run(
        "SELECT Solution_Id__c, Opportunity__r.Name FROM Microsoft_Solution__c WHERE Opportunity__r.Sync_with_Partner_Center__c = true"
    )
    assert [(s["Solution_Id__c"], s["Opportunity__r"]["Name"]) for s in solutions] == [
        ("SOL-1", "New Share")
    ]


def test_polymorphic_parent_resolves_to_the_rows_object() -> None:
    [link] = run(
        f"SELECT LinkedEntity.Name FROM ContentDocumentLink WHERE LinkedEntityId = '{OPP_NEW[:15]}'"
    )
    assert link["LinkedEntity"]["attributes"]["type"] == "Opportunity"
    assert link["LinkedEntity"]["Name"] == "New Share"


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        pytest.param(
            "SELECT Referral_Identfier__c FROM Opportunity",
            "INVALID_FIELD",
            "No such column 'Referral_Identfier__c' on entity 'Opportunity'",
            id="typo-in-custom-field",
        ),
        pytest.param(
            "SELECT Id FROM Opportunity ORDER BY Audit__c",
            "INVALID_FIELD",
            "field 'Audit__c' can not be sorted",
            id="long-text-not-sortable",
        ),
        pytest.param(
            "SELECT Id FROM Account WHERE BillingAddress = 'x'",
            "INVALID_FIELD",
            "field 'BillingAddress' can not be filtered",
            id="compound-address-not-filterable",
        ),
        pytest.param(
            "SELECT Id FROM Microsoft_Solution__c WHERE Opportunity__c.Name = 'x'",
            "INVALID_FIELD",
            "Didn't understand relationship 'Opportunity__c'",
            id="custom-lookup-needs-r",
        ),
        pytest.param(
            "SELECT Id FROM Microsoft_Solution",
            "INVALID_TYPE",
            "sObject type 'Microsoft_Solution' is not supported",
            id="custom-object-needs-c",
        ),
    ],
)
def test_real_schema_errors(text: str, code: str, fragment: str) -> None:
    with pytest.raises(SoqlError) as caught:
        run(text)
    assert caught.value.error_code == code
    assert fragment in caught.value.message


def test_every_object_relationship_and_field_of_the_schema_resolves() -> None:
    for obj in SCHEMA.objects():
        if not obj.queryable:
            continue
        info = SCHEMA.object(obj.name)
        assert info is not None
        fields = ", ".join(f.name for f in obj.iter_fields())
        check(parse(f"SELECT {fields} FROM {obj.name}"), SCHEMA)
        for spec in obj.iter_fields():
            if spec.relationship_name:
                check(parse(f"SELECT {spec.relationship_name}.Id FROM {obj.name}"), SCHEMA)
        for relationship in info.child_relationships.values():
            check(
                parse(
                    f"SELECT Id, (SELECT Id FROM {relationship.relationship_name}) FROM {obj.name}"
                ),
                SCHEMA,
            )
        assert execute(
            parse(f"SELECT COUNT() FROM {obj.name}"),
            SCHEMA,
            Rows(),
            api_version="62.0",
            include_deleted=True,
            now=NOW,
        ).total_size == len(DATA.get(obj.name, []))
