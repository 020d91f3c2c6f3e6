"""Describe rendering: describeGlobal, sObject basic info and DescribeSObjectResult (spec §2.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cosell_sandbox.salesforce.describe import (
    MASTER_RECORD_TYPE_ID,
    describe_field,
    describe_global,
    describe_sobject,
    object_urls,
    sobject_basic_info,
)
from cosell_sandbox.salesforce.orgschema import build_schema
from cosell_sandbox.salesforce.schema import Schema, SObjectSchema

# Spec §2.6, copied verbatim.
TOP_LEVEL_KEYS = """actionOverrides, activateable, childRelationships, compactLayoutable, createable,
custom, customSetting, deepCloneable, deletable, deprecatedAndHidden, feedEnabled, fields,
hasSubtypes, isSubtype, keyPrefix, label, labelPlural, layoutable, mergeable, mruEnabled, name,
namedLayoutInfos, queryable, recordTypeInfos, replicateable, retrieveable, searchable,
triggerable, undeletable, updateable, urls"""
FIELD_KEYS = """aggregatable, aiPredictionField, autoNumber, byteLength, calculated,
calculatedFormula, cascadeDelete, caseSensitive, compoundFieldName, controllerName, createable,
custom, defaultValue, defaultValueFormula, defaultedOnCreate, dependentPicklist,
deprecatedAndHidden, digits, encrypted, externalId, extraTypeInfo, filterable, groupable,
htmlFormatted, idLookup, inlineHelpText, label, length, mask, maskType, name, nameField,
namePointing, nillable, permissionable, picklistValues, polymorphicForeignKey, precision,
referenceTargetField, referenceTo, relationshipName, relationshipOrder, restrictedDelete,
restrictedPicklist, scale, soapType, sortable, type, unique, updateable, writeRequiresMasterRead"""
GLOBAL_ENTRY_KEYS = """name, label, labelPlural, keyPrefix, custom, createable, updateable,
deletable, queryable, retrieveable, searchable, layoutable, urls"""


def keys(text: str) -> set[str]:
    return {k.strip() for k in text.replace("\n", " ").split(",")}


VERSION = "59.0"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return build_schema()


def sobject(schema: Schema, name: str) -> SObjectSchema:
    obj = schema.sobject(name)
    assert obj is not None, name
    return obj


def describe(schema: Schema, name: str) -> dict[str, Any]:
    return describe_sobject(sobject(schema, name), api_version=VERSION)


def field(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in body["fields"] if f["name"] == name)


def test_every_object_and_field_carries_every_key_of_the_spec(schema: Schema) -> None:
    for obj in schema.objects():
        body = describe_sobject(obj, api_version=VERSION)
        assert keys(TOP_LEVEL_KEYS) <= set(body), obj.name
        assert body["fields"], obj.name
        for entry in body["fields"]:
            assert keys(FIELD_KEYS) <= set(entry), f"{obj.name}.{entry['name']}"
        json.dumps(body)  # the route returns it as JSON as it is


def test_object_part(schema: Schema) -> None:
    body = describe(schema, "Opportunity")
    assert body["name"] == "Opportunity"
    assert body["keyPrefix"] == "006"
    assert (body["label"], body["labelPlural"]) == ("Opportunity", "Opportunities")
    assert (body["createable"], body["updateable"], body["deletable"]) == (True, True, True)
    assert body["custom"] is False
    assert body["queryable"] is True
    assert body["urls"] == {
        "sobject": "/services/data/v59.0/sobjects/Opportunity",
        "describe": "/services/data/v59.0/sobjects/Opportunity/describe",
        "rowTemplate": "/services/data/v59.0/sobjects/Opportunity/{ID}",
    }
    assert [f["name"] for f in body["fields"]] == [
        f.name for f in sobject(schema, "Opportunity").iter_fields()
    ]
    assert body["fields"][0]["name"] == "Id"
    stage = describe(schema, "OpportunityStage")
    assert (stage["createable"], stage["layoutable"], stage["recordTypeInfos"]) == (
        False,
        False,
        [],
    )


def test_master_record_type(schema: Schema) -> None:
    (record_type,) = describe(schema, "Account")["recordTypeInfos"]
    assert record_type["master"] is True
    assert record_type["recordTypeId"] == MASTER_RECORD_TYPE_ID
    assert record_type["name"] == "Master"
    assert record_type["defaultRecordTypeMapping"] is True
    assert record_type["available"] is True
    assert record_type["urls"]["layout"].startswith("/services/data/v59.0/sobjects/Account/")


def test_required_on_create_is_derived_from_the_flags(schema: Schema) -> None:
    body = describe(schema, "Opportunity")
    required = {
        f["name"]
        for f in body["fields"]
        if f["createable"] and not f["nillable"] and not f["defaultedOnCreate"]
    }
    assert required == {"Name", "StageName", "CloseDate"}
    owner = field(body, "OwnerId")
    assert (owner["nillable"], owner["defaultedOnCreate"]) == (False, True)
    assert field(body, "IsClosed")["createable"] is False
    assert field(body, "IsClosed")["updateable"] is False


def test_picklist_values(schema: Schema) -> None:
    stage = field(describe(schema, "Opportunity"), "StageName")
    assert stage["type"] == "picklist"
    assert stage["restrictedPicklist"] is True
    assert stage["picklistValues"][0] == {
        "active": True,
        "defaultValue": False,
        "label": "Prospecting",
        "validFor": None,
        "value": "Prospecting",
    }
    assert [v["value"] for v in stage["picklistValues"]][-2:] == ["Closed Won", "Closed Lost"]
    status = field(describe(schema, "Lead"), "Status")
    defaults = [v["value"] for v in status["picklistValues"] if v["defaultValue"]]
    assert defaults == ["Open - Not Contacted"]
    share = field(describe(schema, "ContentDocumentLink"), "ShareType")
    assert {v["value"]: v["label"] for v in share["picklistValues"]}["V"] == "Viewer Permission"


def test_field_types_and_lengths(schema: Schema) -> None:
    body = describe(schema, "Opportunity")
    name = field(body, "Name")
    assert (name["type"], name["length"], name["byteLength"], name["soapType"]) == (
        "string",
        120,
        360,
        "xsd:string",
    )
    assert name["nameField"] is True
    amount = field(body, "Amount")
    assert (amount["type"], amount["precision"], amount["scale"], amount["soapType"]) == (
        "currency",
        18,
        2,
        "xsd:double",
    )
    assert amount["groupable"] is False
    record_id = field(body, "Id")
    assert (record_id["type"], record_id["length"], record_id["byteLength"]) == ("id", 18, 18)
    assert record_id["soapType"] == "tns:ID"
    assert record_id["idLookup"] is True
    description = field(body, "Description")
    assert (description["extraTypeInfo"], description["filterable"]) == ("plaintextarea", False)
    assert description["aggregatable"] is False
    close = field(body, "CloseDate")
    assert (close["type"], close["soapType"]) == ("date", "xsd:date")
    modstamp = field(body, "SystemModstamp")
    assert (modstamp["type"], modstamp["soapType"]) == ("datetime", "xsd:dateTime")


def test_references(schema: Schema) -> None:
    account = field(describe(schema, "Opportunity"), "AccountId")
    assert account["referenceTo"] == ["Account"]
    assert account["relationshipName"] == "Account"
    assert account["polymorphicForeignKey"] is False
    parent = field(describe(schema, "Note"), "ParentId")
    assert parent["polymorphicForeignKey"] is True
    assert parent["namePointing"] is True
    assert set(parent["referenceTo"]) >= {"Account", "Opportunity"}
    billing = field(describe(schema, "Account"), "BillingCity")
    assert billing["compoundFieldName"] == "BillingAddress"


def test_custom_fields_and_help(schema: Schema) -> None:
    body = describe(schema, "Opportunity")
    ref = field(body, "Referral_Identifier__c")
    assert (ref["custom"], ref["externalId"], ref["unique"], ref["caseSensitive"]) == (
        True,
        True,
        True,
        False,
    )
    assert ref["inlineHelpText"]
    assert ref["idLookup"] is True
    sync = field(body, "Sync_with_Partner_Center__c")
    assert (sync["type"], sync["defaultValue"], sync["soapType"]) == (
        "boolean",
        False,
        "xsd:boolean",
    )
    assert field(body, "Name")["custom"] is False


def test_child_relationships(schema: Schema) -> None:
    rels = {r["relationshipName"]: r for r in describe(schema, "Opportunity")["childRelationships"]}
    assert rels["Microsoft_Solutions__r"] == {
        "cascadeDelete": True,
        "childSObject": "Microsoft_Solution__c",
        "deprecatedAndHidden": False,
        "field": "Opportunity__c",
        "junctionIdListNames": [],
        "junctionReferenceTo": [],
        "relationshipName": "Microsoft_Solutions__r",
        "restrictedDelete": False,
    }
    assert rels["OpportunityContactRoles"]["childSObject"] == "OpportunityContactRole"
    assert rels["OpportunityTeamMembers"]["field"] == "OpportunityId"
    assert "Notes" in rels
    account = {r["relationshipName"] for r in describe(schema, "Account")["childRelationships"]}
    assert {"Opportunities", "Contacts"} <= account
    document = {
        r["relationshipName"] for r in describe(schema, "ContentDocument")["childRelationships"]
    }
    assert "ContentDocumentLinks" in document
    master = field(describe(schema, "Microsoft_Solution__c"), "Opportunity__c")
    assert (master["relationshipName"], master["relationshipOrder"]) == ("Opportunity__r", 0)
    assert master["cascadeDelete"] is True


def test_describe_global(schema: Schema) -> None:
    body = describe_global(schema, api_version="v59.0")
    assert body["encoding"] == "UTF-8"
    assert body["maxBatchSize"] == 200
    names = [entry["name"] for entry in body["sobjects"]]
    assert names == sorted(names)
    assert {"Account", "Opportunity", "Lead", "Microsoft_Solution__c", "User"} <= set(names)
    for entry in body["sobjects"]:
        assert keys(GLOBAL_ENTRY_KEYS) <= set(entry), entry["name"]
        assert "fields" not in entry
        assert (
            entry["urls"]["describe"] == f"/services/data/v59.0/sobjects/{entry['name']}/describe"
        )
    solution = next(e for e in body["sobjects"] if e["name"] == "Microsoft_Solution__c")
    assert solution["custom"] is True
    assert solution["keyPrefix"] == sobject(schema, "Microsoft_Solution__c").key_prefix
    json.dumps(body)


def test_global_entry_agrees_with_the_describe(schema: Schema) -> None:
    entries = {e["name"]: e for e in describe_global(schema, api_version=VERSION)["sobjects"]}
    for obj in schema.objects():
        full = describe_sobject(obj, api_version=VERSION)
        for key, value in entries[obj.name].items():
            assert full[key] == value, f"{obj.name}.{key}"


def test_sobject_basic_info(schema: Schema) -> None:
    body = sobject_basic_info(sobject(schema, "Lead"), api_version=VERSION)
    assert body["recentItems"] == []
    assert body["objectDescribe"]["name"] == "Lead"
    assert body["objectDescribe"]["keyPrefix"] == "00Q"
    assert body["objectDescribe"]["mergeable"] is True


def test_urls_carry_the_requested_version() -> None:
    assert object_urls("Note", api_version="66.0")["rowTemplate"] == (
        "/services/data/v66.0/sobjects/Note/{ID}"
    )
    assert (
        object_urls("Note", api_version="v31.0")["sobject"] == "/services/data/v31.0/sobjects/Note"
    )


@pytest.mark.parametrize("bad", ["59", "latest", "v59.0.1", ""])
def test_a_malformed_version_is_refused(schema: Schema, bad: str) -> None:
    with pytest.raises(ValueError, match=r"NN\.N"):
        describe_sobject(sobject(schema, "Account"), api_version=bad)


def test_describe_field_of_a_picklist_with_a_default(schema: Schema) -> None:
    solution_type = sobject(schema, "Microsoft_Solution__c").field("Solution_Type__c")
    assert solution_type is not None
    body = describe_field(solution_type)
    assert body["defaultedOnCreate"] is True
    assert [v["value"] for v in body["picklistValues"] if v["defaultValue"]] == ["Name"]
    assert body["byteLength"] == 765
