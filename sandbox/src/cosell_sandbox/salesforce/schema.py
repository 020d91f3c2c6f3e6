"""The Salesforce sandbox's schema: objects and fields with their describe properties.

One `Schema` describes the emulated org. It is built (by `cosell_sandbox.salesforce.orgschema`)
from two sources: a built-in description of the standard objects, and our own metadata files
in `cosell/salesforce/metadata/` (the CustomObject / CustomField XML an admin deploys), so the
sandbox and a real org set up from that metadata cannot drift.

Everything that validates a write (required fields, lengths, picklists, read-only fields,
external ids) and everything that renders describe reads these dataclasses. Names are looked up
case-insensitively, and the canonical spelling is what goes back on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cosell_sandbox.salesforce.soql.catalog import ChildRelationship, FieldInfo, ObjectInfo


@dataclass(frozen=True)
class PicklistValue:
    """One picklist entry."""

    value: str
    label: str
    default: bool = False
    active: bool = True


@dataclass(frozen=True)
class FieldSchema:
    """One field, with the describe properties the sandbox enforces and reports.

    "Required on create" is not a flag: it is `createable and not nillable and not
    defaulted_on_create` (spec §2.6), see `required_on_create`.
    """

    name: str
    label: str
    type: str  # describe type: id, string, textarea, picklist, multipicklist, reference,
    # currency, percent, double, int, boolean, date, datetime, url, email, phone, base64, address
    soap_type: str = "xsd:string"
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    default_value: Any = None
    picklist_values: tuple[PicklistValue, ...] = ()
    restricted_picklist: bool = False
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    id_lookup: bool = False
    name_field: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    relationship_order: int | None = None  # 0 or 1 on master-detail fields
    cascade_delete: bool = False
    custom: bool = False
    calculated: bool = False
    auto_number: bool = False
    html_formatted: bool = False
    filterable: bool = True
    sortable: bool = True
    groupable: bool = True
    inline_help_text: str | None = None
    compound_field_name: str | None = None  # e.g. BillingCity -> "BillingAddress"

    @property
    def required_on_create(self) -> bool:
        """Whether a create without this field fails with REQUIRED_FIELD_MISSING."""
        return self.createable and not self.nillable and not self.defaulted_on_create

    def picklist_value(self, value: str) -> PicklistValue | None:
        """The active entry whose value equals `value` (exact, as Salesforce compares), or None."""
        for entry in self.picklist_values:
            if entry.active and entry.value == value:
                return entry
        return None


@dataclass(frozen=True)
class ChildRelationshipSchema:
    """A relationship from a parent object to the children that reference it."""

    relationship_name: str | None  # None where the relationship cannot be queried
    child_object: str
    field: str
    cascade_delete: bool = False


@dataclass(frozen=True)
class RecordTypeSchema:
    """A record type of an object (from an org profile), with its picklist value subsets.

    Attributes:
        id: The 18-character RecordType id (prefix 012).
        developer_name: Its API name.
        label: Its name.
        default: Whether it is the integration user's default record type.
        values: Picklist field name -> the values this record type allows (for Opportunity,
            `StageName` is its sales process).
    """

    id: str
    developer_name: str
    label: str
    default: bool
    values: Mapping[str, tuple[str, ...]]


@dataclass
class SObjectSchema:
    """One sObject type."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    queryable: bool = True
    fields: dict[str, FieldSchema] = field(default_factory=dict)  # lower-cased name -> field
    child_relationships: list[ChildRelationshipSchema] = field(default_factory=list)
    record_types: list[RecordTypeSchema] = field(default_factory=list)  # besides Master

    def field(self, name: str) -> FieldSchema | None:
        """The field called `name`, case-insensitively."""
        return self.fields.get(name.lower())

    def record_type(self, record_type_id: str) -> RecordTypeSchema | None:
        """The record type with this (18-character) id, if the object has it."""
        return next((rt for rt in self.record_types if rt.id == record_type_id), None)

    def add_field(self, spec: FieldSchema) -> None:
        """Add or replace a field (kept in insertion order for describe)."""
        self.fields[spec.name.lower()] = spec

    def iter_fields(self) -> Iterator[FieldSchema]:
        """Fields in describe order."""
        return iter(self.fields.values())

    def external_id_fields(self) -> list[FieldSchema]:
        """Fields usable for upsert: the external ids, plus Id."""
        return [f for f in self.fields.values() if f.external_id or f.name == "Id"]

    def soql_info(self) -> ObjectInfo:
        """This object as the SOQL engine sees it."""
        fields = {
            key: FieldInfo(
                name=f.name,
                type=f.type,
                reference_to=f.reference_to,
                relationship_name=f.relationship_name,
                filterable=f.filterable,
                sortable=f.sortable,
            )
            for key, f in self.fields.items()
        }
        children = {
            rel.relationship_name.lower(): ChildRelationship(
                relationship_name=rel.relationship_name,
                child_object=rel.child_object,
                field=rel.field,
            )
            for rel in self.child_relationships
            if rel.relationship_name
        }
        return ObjectInfo(
            name=self.name, fields=fields, child_relationships=children, queryable=self.queryable
        )


class Schema:
    """Every object of the emulated org, looked up case-insensitively.

    Implements `soql.catalog.SoqlCatalog` through `object`.
    """

    def __init__(self, objects: Mapping[str, SObjectSchema] | None = None) -> None:
        self._objects: dict[str, SObjectSchema] = {}
        self._soql: dict[str, ObjectInfo] = {}
        for obj in (objects or {}).values():
            self.add(obj)

    def add(self, obj: SObjectSchema) -> None:
        """Add or replace an object."""
        self._objects[obj.name.lower()] = obj
        self._soql.pop(obj.name.lower(), None)

    def sobject(self, name: str) -> SObjectSchema | None:
        """The object called `name`, case-insensitively, or None."""
        return self._objects.get(name.lower())

    def by_key_prefix(self, prefix: str) -> SObjectSchema | None:
        """The object whose ids start with `prefix` (3 characters, case-sensitive)."""
        for obj in self._objects.values():
            if obj.key_prefix == prefix:
                return obj
        return None

    def objects(self) -> list[SObjectSchema]:
        """Every object, sorted by name (describeGlobal order)."""
        return sorted(self._objects.values(), key=lambda o: o.name)

    def object(self, name: str) -> ObjectInfo | None:
        """`SoqlCatalog`: the object as the SOQL engine sees it (cached until changed)."""
        key = name.lower()
        if key not in self._soql:
            obj = self._objects.get(key)
            if obj is None:
                return None
            self._soql[key] = obj.soql_info()
        return self._soql[key]
