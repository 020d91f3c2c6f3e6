"""Describe rendering: the schema as `/sobjects`, `/sobjects/{T}` and `/sobjects/{T}/describe` show it.

Pure functions from `schema` dataclasses to the JSON bodies of describeGlobal, the sObject basic
information resource and DescribeSObjectResult (spec §2.1 rows 3, 4 and 13; §2.6). The route
handlers call these and add nothing but HTTP.

Invariants:

- Every top-level key and every per-field key that spec §2.6 lists is present, with `None` where
  this org has nothing to say (no formulas, masks, dependent picklists or encryption), so a client
  that indexes a key unconditionally — as generated clients and simple-salesforce users do — works.
- A describeGlobal entry and the object part of a describe carry the same flags, computed once in
  `_object_flags`, so the two resources never disagree.
- Derived properties follow Salesforce's rules rather than being stored: `byteLength` is 3 bytes
  per character for text and 18 for ids; `polymorphicForeignKey` and `namePointing` mean a
  reference to several objects; `aggregatable` follows `filterable`; `extraTypeInfo` tells plain
  from rich text areas. "Required on create" is never a flag: clients compute it from
  createable, nillable and defaultedOnCreate (spec §2.6).
- URLs are relative to the instance and carry the requested API version. Only resources the
  sandbox serves are linked (sobject, describe, rowTemplate); layouts, quick actions and list views
  are not emulated, so their URLs are left out rather than pointing at 404s.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from cosell_sandbox.salesforce.errors import SalesforceSandboxError
from cosell_sandbox.salesforce.schema import (
    ChildRelationshipSchema,
    FieldSchema,
    PicklistValue,
    Schema,
    SObjectSchema,
)

__all__ = [
    "MASTER_RECORD_TYPE_ID",
    "describe_field",
    "describe_global",
    "describe_sobject",
    "object_urls",
    "sobject_basic_info",
]

# The id every org gives the implicit Master record type (no record types defined).
MASTER_RECORD_TYPE_ID = "012000000000000AAA"
_MAX_BATCH_SIZE = 200  # describeGlobal's maxBatchSize: the sObject Collections limit (spec §2.3)
_BYTES_PER_CHAR = 3  # Salesforce reports byteLength as 3 bytes per character of UTF-8 text
_ID_BYTES = 18  # ids and references are 18 ASCII characters
_TEXT_TYPES = frozenset(
    {"string", "textarea", "picklist", "multipicklist", "url", "email", "phone", "combobox"}
)
_MERGEABLE = frozenset({"Account", "Contact", "Lead"})  # the objects the merge() call supports
# Objects that exist but are not offered in global search (links, junctions, setup tables).
_UNSEARCHABLE = frozenset(
    {
        "ContentDocumentLink",
        "Note",
        "OpportunityContactRole",
        "OpportunityStage",
        "OpportunityTeamMember",
    }
)
_VERSION = re.compile(r"v?(\d{2}\.\d)")


def describe_global(schema: Schema, *, api_version: str) -> dict[str, Any]:
    """The describeGlobal body (`GET /services/data/vXX.X/sobjects`).

    Args:
        schema: The org.
        api_version: The version of the request, e.g. "59.0" (a leading "v" is accepted).

    Returns:
        `{"encoding", "maxBatchSize", "sobjects": [...]}` with objects sorted by name.
    """
    version = _version(api_version)
    return {
        "encoding": "UTF-8",
        "maxBatchSize": _MAX_BATCH_SIZE,
        "sobjects": [_global_entry(obj, version) for obj in schema.objects()],
    }


def sobject_basic_info(obj: SObjectSchema, *, api_version: str) -> dict[str, Any]:
    """The sObject basic information body (`GET /services/data/vXX.X/sobjects/{T}/`).

    Args:
        obj: The object.
        api_version: The version of the request.

    Returns:
        `{"objectDescribe": <its describeGlobal entry>, "recentItems": []}`. The sandbox keeps no
        recently viewed list (nobody views records in a UI), so `recentItems` is always empty.
    """
    return {"objectDescribe": _global_entry(obj, _version(api_version)), "recentItems": []}


def describe_sobject(obj: SObjectSchema, *, api_version: str) -> dict[str, Any]:
    """The DescribeSObjectResult (`GET /services/data/vXX.X/sobjects/{T}/describe`).

    Args:
        obj: The object.
        api_version: The version of the request.

    Returns:
        The full describe: the object's flags and urls, `fields` in schema order,
        `childRelationships`, the Master `recordTypeInfos` entry (for layoutable objects) and the
        remaining top-level keys of spec §2.6.
    """
    version = _version(api_version)
    flags = _object_flags(obj)
    body: dict[str, Any] = {
        **flags,
        "actionOverrides": [],
        "childRelationships": [_child_relationship(rel) for rel in obj.child_relationships],
        "compactLayoutable": flags["layoutable"],
        "defaultImplementation": None,
        "extendedBy": None,
        "extendsInterfaces": None,
        "fields": [describe_field(f) for f in obj.iter_fields()],
        "implementedBy": None,
        "implementsInterfaces": None,
        "isInterface": False,
        "listviewable": None,
        "lookupLayoutable": None,
        "namedLayoutInfos": [],
        "networkScopeFieldName": None,
        "recordTypeInfos": _record_type_infos(obj, version) if flags["layoutable"] else [],
        "searchLayoutable": flags["searchable"],
        "sobjectDescribeOption": "FULL",
        "supportedScopes": _scopes(obj),
        "urls": object_urls(obj.name, api_version=version),
    }
    return dict(sorted(body.items()))


def describe_field(spec: FieldSchema) -> dict[str, Any]:
    """One entry of a describe's `fields` array.

    Args:
        spec: The field.

    Returns:
        Every per-field key of spec §2.6 (and the few more a real org sends), in key order.
    """
    polymorphic = len(spec.reference_to) > 1
    body: dict[str, Any] = {
        "aggregatable": spec.filterable,
        "aiPredictionField": False,
        "autoNumber": spec.auto_number,
        "byteLength": _byte_length(spec),
        "calculated": spec.calculated,
        "calculatedFormula": None,
        "cascadeDelete": spec.cascade_delete,
        "caseSensitive": spec.case_sensitive,
        "compoundFieldName": spec.compound_field_name,
        "controllerName": None,
        "createable": spec.createable,
        "custom": spec.custom,
        "defaultValue": spec.default_value,
        "defaultValueFormula": None,
        "defaultedOnCreate": spec.defaulted_on_create,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": spec.digits,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": spec.external_id,
        "extraTypeInfo": _extra_type_info(spec),
        "filterable": spec.filterable,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": spec.groupable,
        "highScaleNumber": False,
        "htmlFormatted": spec.html_formatted,
        "idLookup": spec.id_lookup,
        "inlineHelpText": spec.inline_help_text,
        "label": spec.label,
        "length": spec.length,
        "mask": None,
        "maskType": None,
        "name": spec.name,
        "nameField": spec.name_field,
        "namePointing": polymorphic,
        "nillable": spec.nillable,
        "permissionable": spec.nillable and (spec.createable or spec.updateable),
        "picklistValues": [_picklist_value(v) for v in spec.picklist_values],
        "polymorphicForeignKey": polymorphic,
        "precision": spec.precision,
        "queryByDistance": False,
        "referenceTargetField": None,
        "referenceTo": list(spec.reference_to),
        "relationshipName": spec.relationship_name,
        "relationshipOrder": spec.relationship_order,
        "restrictedDelete": False,
        "restrictedPicklist": spec.restricted_picklist,
        "scale": spec.scale,
        "searchPrefilterable": False,
        "soapType": spec.soap_type,
        "sortable": spec.sortable,
        "type": spec.type,
        "unique": spec.unique,
        "updateable": spec.updateable,
        "writeRequiresMasterRead": False,
    }
    return body


def object_urls(name: str, *, api_version: str) -> dict[str, str]:
    """The `urls` of an object in describe and describeGlobal.

    Args:
        name: The object's API name.
        api_version: The version of the request.

    Returns:
        `sobject`, `describe` and `rowTemplate` (with the literal `{ID}` placeholder).
    """
    base = f"/services/data/v{_version(api_version)}/sobjects/{name}"
    return {"describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}", "sobject": base}


def _version(api_version: str) -> str:
    match = _VERSION.fullmatch(api_version)
    if match is None:
        raise ValueError(f"API version {api_version!r} is not of the form 'NN.N' (e.g. '59.0')")
    return match.group(1)


def _object_flags(obj: SObjectSchema) -> dict[str, Any]:
    """The keys a describeGlobal entry and a describe share."""
    layoutable = obj.createable or obj.updateable
    return {
        "activateable": False,
        "associateEntityType": None,
        "associateParentEntity": None,
        "createable": obj.createable,
        "custom": obj.custom,
        "customSetting": False,
        "deepCloneable": False,
        "deletable": obj.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "hasSubtypes": False,
        "isInterface": False,
        "isSubtype": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": layoutable,
        "mergeable": obj.name in _MERGEABLE,
        "mruEnabled": layoutable,
        "name": obj.name,
        "queryable": obj.queryable,
        "replicateable": obj.queryable,
        "retrieveable": obj.queryable,
        "searchable": layoutable and obj.name not in _UNSEARCHABLE,
        "triggerable": layoutable,
        "undeletable": obj.deletable,
        "updateable": obj.updateable,
    }


def _global_entry(obj: SObjectSchema, version: str) -> dict[str, Any]:
    return {**_object_flags(obj), "urls": object_urls(obj.name, api_version=version)}


def _child_relationship(rel: ChildRelationshipSchema) -> dict[str, Any]:
    return {
        "cascadeDelete": rel.cascade_delete,
        "childSObject": rel.child_object,
        "deprecatedAndHidden": False,
        "field": rel.field,
        "junctionIdListNames": [],
        "junctionReferenceTo": [],
        "relationshipName": rel.relationship_name,
        "restrictedDelete": False,
    }


def _record_type_infos(obj: SObjectSchema, version: str) -> list[dict[str, Any]]:
    """Master, plus the profile's record types (Master is then not available to the user)."""
    infos = [
        {
            "active": True,
            "available": True,
            "defaultRecordTypeMapping": rt.default,
            "developerName": rt.developer_name,
            "master": False,
            "name": rt.label,
            "recordTypeId": rt.id,
            "urls": {
                "layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/{rt.id}"
            },
        }
        for rt in obj.record_types
    ]
    master = _master_record_type(obj, version)
    if infos:
        master = {**master, "available": False, "defaultRecordTypeMapping": False}
    return [*infos, master]


def picklist_values(obj: SObjectSchema, record_type_id: str, *, api_version: str) -> dict[str, Any]:
    """The UI API's picklist values of every picklist field of `obj` for one record type.

    `GET /services/data/vXX.X/ui-api/object-info/{objectApiName}/picklist-values/{recordTypeId}`
    (User Interface API Developer Guide, "Get Values for All Picklist Fields of a Record
    Type"): `{"eTag", "picklistFieldValues": {field: {"controllerValues", "defaultValue",
    "eTag", "url", "values": [{"attributes", "label", "validFor", "value"}]}}}`. The Master
    record type id answers every active value. Raises NOT_FOUND for another object's or an
    unknown record type (as the UI API answers an id it cannot use).
    """
    record_type = obj.record_type(record_type_id)
    if record_type is None and record_type_id != MASTER_RECORD_TYPE_ID:
        raise SalesforceSandboxError(
            404, "NOT_FOUND", f"The requested resource does not exist: record type {record_type_id}"
        )
    base = f"/services/data/v{_version(api_version)}/ui-api/object-info/{obj.name}"
    fields: dict[str, Any] = {}
    for spec in obj.iter_fields():
        if spec.type not in ("picklist", "multipicklist"):
            continue
        allowed = record_type.values.get(spec.name) if record_type else None
        values: list[dict[str, Any]] = [
            {"attributes": None, "label": v.label, "validFor": [], "value": v.value}
            for v in spec.picklist_values
            if v.active and (allowed is None or v.value in allowed)
        ]
        default = next((v.value for v in spec.picklist_values if v.default and v.active), None)
        body = {
            "controllerValues": {},
            "defaultValue": None if default is None else {"attributes": None, "value": default},
            "url": f"{base}/picklist-values/{record_type_id}/{spec.name}",
            "values": values,
        }
        body["eTag"] = _etag(body)
        fields[spec.name] = body
    result: dict[str, Any] = {"picklistFieldValues": fields}
    result["eTag"] = _etag(result)
    return result


def _etag(body: Any) -> str:
    return hashlib.md5(json.dumps(body, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def _master_record_type(obj: SObjectSchema, version: str) -> dict[str, Any]:
    return {
        "active": True,
        "available": True,
        "defaultRecordTypeMapping": True,
        "developerName": "Master",
        "master": True,
        "name": "Master",
        "recordTypeId": MASTER_RECORD_TYPE_ID,
        "urls": {
            "layout": (
                f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/"
                f"{MASTER_RECORD_TYPE_ID}"
            )
        },
    }


def _scopes(obj: SObjectSchema) -> list[dict[str, str]]:
    scopes = [{"label": f"All {obj.label_plural.lower()}", "name": "everything"}]
    if obj.field("OwnerId") is not None:
        scopes.append({"label": f"My {obj.label_plural.lower()}", "name": "mine"})
    return scopes


def _picklist_value(value: PicklistValue) -> dict[str, Any]:
    return {
        "active": value.active,
        "defaultValue": value.default,
        "label": value.label,
        "validFor": None,
        "value": value.value,
    }


def _byte_length(spec: FieldSchema) -> int:
    if spec.type in ("id", "reference"):
        return _ID_BYTES
    if spec.type in _TEXT_TYPES:
        return spec.length * _BYTES_PER_CHAR
    return 0


def _extra_type_info(spec: FieldSchema) -> str | None:
    if spec.type == "textarea":
        return "richtextarea" if spec.html_formatted else "plaintextarea"
    return None
