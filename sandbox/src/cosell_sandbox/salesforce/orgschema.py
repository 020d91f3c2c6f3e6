"""The emulated org's schema: the standard objects plus our own metadata, read from its XML.

`build_schema()` starts from `standard_objects` and applies the CustomObject / CustomField files
that an admin deploys to a real org (`cosell/salesforce/metadata/force-app/main/default/objects`),
so the sandbox and an org set up from that metadata cannot drift. The files are read as package
data through `importlib.resources` — the sandbox never imports `cosell.salesforce` code.

How a CustomField becomes a describe field (what a real org reports for the same file):

| XML `type`          | describe                                                              |
|---------------------|-----------------------------------------------------------------------|
| Checkbox            | boolean, not nillable, defaulted on create to `defaultValue`          |
| Text / TextArea     | string (`length`) / textarea (255)                                    |
| LongTextArea / Html | textarea (`length`), not filterable/sortable; Html is htmlFormatted   |
| Url / Email / Phone | url 255 / email 80 / phone 40                                         |
| Picklist            | picklist 255 with its values, `restricted`; a default value defaults  |
| MultiselectPicklist | multipicklist 4099                                                    |
| Number / Currency / Percent | double / currency / percent with `precision`, `scale`         |
| Date / DateTime     | date / datetime                                                       |
| MasterDetail        | reference, not nillable, not updateable unless reparentable, cascade |
|                     | delete                                                                |
| Lookup              | reference, nillable                                                   |

A reference field `X__c` gets the parent relationship `X__r` (SOQL `X__r.Name`), and its parent
object gets the child relationship `<relationshipName>__r` (SOQL subquery
`(SELECT … FROM Microsoft_Solutions__r)`), as Salesforce names them.

Anything else (formulas, roll-ups, global value sets, unknown types) is refused with an error that
names the file, rather than described wrongly. A custom object gets the system fields a real org
gives it (Id, IsDeleted, Name, audit fields; OwnerId only when it is not the detail side of a
master-detail relationship, whose records are owned through the master; on such a detail object
`CurrencyIsoCode` is read-only, because it follows the master's) and a key prefix in the `a0?`
range derived from a hash of its name, so adding an object never renumbers another. A lookup's
`deleteConstraint` is accepted but not described (describe has no key for it).

Parsing refuses DOCTYPE and entity declarations (no entity expansion from package data).
The packaged files are parsed once per process; each `build_schema()` call returns a fresh,
independent `Schema`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import string
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib.resources.abc import Traversable

from cosell_sandbox.salesforce.schema import (
    ChildRelationshipSchema,
    FieldSchema,
    PicklistValue,
    Schema,
    SObjectSchema,
)
from cosell_sandbox.salesforce.standard_objects import (
    audit_fields,
    currency_field,
    field,
    owner_field,
    standard_objects,
)

__all__ = [
    "METADATA_NAMESPACE",
    "CustomFieldDef",
    "CustomMetadata",
    "CustomObjectDef",
    "MetadataError",
    "build_schema",
    "custom_key_prefix",
    "load_custom_metadata",
    "packaged_metadata_root",
]

METADATA_NAMESPACE = "http://soap.sforce.com/2006/04/metadata"
_NS = f"{{{METADATA_NAMESPACE}}}"
_METADATA_PACKAGE = "cosell.salesforce.metadata"  # package data, read as files, never imported
_OBJECTS_PATH = ("force-app", "main", "default", "objects")
_KEY_PREFIX_CHARS = string.digits + string.ascii_uppercase + string.ascii_lowercase
_NAME_FIELD_LENGTH = 80  # a custom object's Text name field is always 80 characters
_AUTONUMBER_LENGTH = 30  # and an AutoNumber name field 30
_TEXTAREA_LENGTH = 255  # a (short) TextArea field holds 255 characters
_EMAIL_LENGTH = 80  # Salesforce's fixed length for Email fields
_PHONE_LENGTH = 40  # and for Phone fields
_PICKLIST_LENGTH = 255  # describe reports 255 for every custom picklist
_MULTIPICKLIST_LENGTH = 4099  # and 4099 for multi-select picklists


class MetadataError(ValueError):
    """A metadata file the sandbox cannot turn into a schema; the message names the file."""


@dataclass(frozen=True)
class CustomFieldDef:
    """One parsed CustomField file.

    Attributes:
        object_name: The object the field belongs to (its folder name).
        field: The describe field it becomes.
        source: The file it came from, for error messages.
        child_relationship_name: For references, the parent's child relationship name
            (`<relationshipName>__r`).
    """

    object_name: str
    field: FieldSchema
    source: str
    child_relationship_name: str | None = None


@dataclass(frozen=True)
class CustomObjectDef:
    """One parsed CustomObject file (a `__c` object).

    Attributes:
        name: The API name, e.g. `Microsoft_Solution__c`.
        label: The singular label.
        label_plural: The plural label.
        name_field: The object's `Name` field.
        controlled_by_parent: Whether the sharing model is ControlledByParent (a detail object).
        source: The file it came from.
    """

    name: str
    label: str
    label_plural: str
    name_field: FieldSchema
    controlled_by_parent: bool
    source: str


@dataclass(frozen=True)
class CustomMetadata:
    """Every custom object and field of a metadata tree, in a stable (sorted) order."""

    objects: tuple[CustomObjectDef, ...]
    fields: tuple[CustomFieldDef, ...]


def packaged_metadata_root() -> Traversable:
    """The root of the metadata project shipped in the `cosell.salesforce.metadata` package."""
    return importlib.resources.files(_METADATA_PACKAGE)


def build_schema(*, multi_currency: bool = True, metadata: CustomMetadata | None = None) -> Schema:
    """The emulated org: the standard objects plus our custom fields and objects.

    Args:
        multi_currency: Whether the org has multi-currency on (`CurrencyIsoCode` fields).
        metadata: Custom metadata to apply instead of the packaged files (tests use
            `load_custom_metadata` on a directory of their own).

    Returns:
        A fresh `Schema`; callers may change it without affecting other callers.

    Raises:
        MetadataError: A metadata file cannot be applied (the message names it).
    """
    custom = metadata if metadata is not None else _packaged_metadata()
    schema = Schema()
    for obj in standard_objects(multi_currency=multi_currency):
        schema.add(obj)
    taken = {obj.key_prefix for obj in schema.objects()}
    for definition in custom.objects:
        prefix = custom_key_prefix(definition.name, taken)
        taken.add(prefix)
        schema.add(_custom_object(definition, prefix, multi_currency=multi_currency))
    for spec in custom.fields:
        _apply_field(schema, spec)
    return schema


def custom_key_prefix(name: str, taken: set[str]) -> str:
    """The key prefix of custom object `name`: `a0` + a character chosen by a hash of the name.

    A real org assigns a prefix when the object is created and never changes it; the hash keeps
    that stability here (the same name gets the same prefix in every sandbox run, whatever other
    objects exist), and probing past `taken` keeps prefixes unique.

    Args:
        name: The object's API name.
        taken: Prefixes already in use.

    Returns:
        A three-character prefix not in `taken`.

    Raises:
        MetadataError: Every `a0?` prefix is taken (more than 62 custom objects).
    """
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    for step in range(len(_KEY_PREFIX_CHARS)):
        prefix = "a0" + _KEY_PREFIX_CHARS[(start + step) % len(_KEY_PREFIX_CHARS)]
        if prefix not in taken:
            return prefix
    raise MetadataError(f"no key prefix left for {name}: the sandbox supports 62 custom objects")


def load_custom_metadata(root: Traversable) -> CustomMetadata:
    """Parse every CustomObject and CustomField file of a source-format project.

    Args:
        root: The project root (the folder holding `force-app/`).

    Returns:
        The parsed objects and fields.

    Raises:
        MetadataError: A file is malformed, declares a DOCTYPE, has the wrong root element or
            namespace, or uses a field type the sandbox does not emulate.
    """
    objects_dir = root
    for part in _OBJECTS_PATH:
        objects_dir = objects_dir / part
    if not objects_dir.is_dir():
        raise MetadataError(f"{_display(objects_dir)}: no objects folder in the metadata project")
    objects: list[CustomObjectDef] = []
    fields: list[CustomFieldDef] = []
    for folder in sorted(objects_dir.iterdir(), key=lambda t: t.name):
        if not folder.is_dir():
            continue
        object_file = folder / f"{folder.name}.object-meta.xml"
        if folder.name.endswith("__c"):
            if not object_file.is_file():
                raise MetadataError(
                    f"{_display(folder)}: custom object {folder.name} has no "
                    f"{folder.name}.object-meta.xml; add one (sf CLI source format)"
                )
            objects.append(_parse_object(object_file, folder.name))
        fields_dir = folder / "fields"
        if fields_dir.is_dir():
            for file in sorted(fields_dir.iterdir(), key=lambda t: t.name):
                if file.name.endswith(".field-meta.xml"):
                    fields.append(_parse_field(file, folder.name))
    return CustomMetadata(objects=tuple(objects), fields=tuple(fields))


@lru_cache(maxsize=1)
def _packaged_metadata() -> CustomMetadata:
    return load_custom_metadata(packaged_metadata_root())


def _display(node: Traversable) -> str:
    return str(node)


def _read_root(file: Traversable, expected: str) -> ET.Element:
    data = file.read_bytes()
    head = data.decode("utf-8", errors="replace").upper()
    if "<!DOCTYPE" in head or "<!ENTITY" in head:
        raise MetadataError(f"{_display(file)}: DOCTYPE and entity declarations are not allowed")
    try:
        element = ET.fromstring(data)  # noqa: S314 - DOCTYPE/entities refused above
    except ET.ParseError as exc:
        raise MetadataError(f"{_display(file)}: not well-formed XML ({exc})") from exc
    if element.tag != _NS + expected:
        raise MetadataError(
            f"{_display(file)}: root element is {element.tag!r}; expected {expected} in "
            f"namespace {METADATA_NAMESPACE}"
        )
    return element


def _text(element: ET.Element, name: str) -> str | None:
    child = element.find(_NS + name)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _flag(element: ET.Element, name: str, *, default: bool = False) -> bool:
    value = _text(element, name)
    return default if value is None else value.lower() == "true"


def _number(element: ET.Element, name: str, file: Traversable) -> int:
    value = _text(element, name)
    if value is None:
        raise MetadataError(f"{_display(file)}: <{name}> is required for this field type")
    try:
        return int(value)
    except ValueError as exc:
        raise MetadataError(f"{_display(file)}: <{name}> must be a whole number") from exc


def _parse_object(file: Traversable, name: str) -> CustomObjectDef:
    root = _read_root(file, "CustomObject")
    label = _text(root, "label") or name
    plural = _text(root, "pluralLabel") or label
    name_el = root.find(_NS + "nameField")
    name_label = (_text(name_el, "label") if name_el is not None else None) or f"{label} Name"
    name_type = (_text(name_el, "type") if name_el is not None else None) or "Text"
    if name_type == "Text":
        name_field = field(
            "Name",
            name_label,
            "string",
            length=_NAME_FIELD_LENGTH,
            name_field=True,
            required=True,
            defaulted_on_create=True,
            id_lookup=True,
        )
    elif name_type == "AutoNumber":
        name_field = field(
            "Name",
            name_label,
            "string",
            length=_AUTONUMBER_LENGTH,
            name_field=True,
            auto_number=True,
            read_only=True,
            required=True,
            defaulted_on_create=True,
            id_lookup=True,
        )
    else:
        raise MetadataError(
            f"{_display(file)}: nameField type {name_type!r} is not Text or AutoNumber"
        )
    return CustomObjectDef(
        name=name,
        label=label,
        label_plural=plural,
        name_field=name_field,
        controlled_by_parent=_text(root, "sharingModel") == "ControlledByParent",
        source=_display(file),
    )


def _parse_field(file: Traversable, object_name: str) -> CustomFieldDef:
    root = _read_root(file, "CustomField")
    name = _text(root, "fullName")
    expected = file.name.removesuffix(".field-meta.xml")
    if name != expected:
        raise MetadataError(f"{_display(file)}: fullName {name!r} does not match the file name")
    if not name.endswith("__c"):
        raise MetadataError(f"{_display(file)}: custom field names end in __c, not {name!r}")
    field_type = _text(root, "type")
    label = _text(root, "label") or name
    common: dict[str, object] = {
        "custom": True,
        "inline_help_text": _text(root, "inlineHelpText"),
        "external_id": _flag(root, "externalId"),
        "unique": _flag(root, "unique"),
        "case_sensitive": _flag(root, "caseSensitive"),
        "required": _flag(root, "required"),
    }
    if _text(root, "formula") is not None:
        raise MetadataError(f"{_display(file)}: formula fields are not emulated by the sandbox")
    if field_type != "Checkbox" and _text(root, "defaultValue") is not None:
        raise MetadataError(
            f"{_display(file)}: default value formulas are emulated only on Checkbox fields"
        )
    if common["external_id"] or common["unique"]:
        common["id_lookup"] = True
    spec: FieldSchema
    if field_type == "Checkbox":
        common.pop("required")
        default = _flag(root, "defaultValue")
        spec = field(name, label, "boolean", default_value=default, **common)
    elif field_type == "Text":
        spec = field(name, label, "string", length=_number(root, "length", file), **common)
    elif field_type == "TextArea":
        spec = field(name, label, "textarea", length=_TEXTAREA_LENGTH, **common)
    elif field_type in ("LongTextArea", "Html"):
        spec = field(
            name,
            label,
            "textarea",
            length=_number(root, "length", file),
            html_formatted=field_type == "Html",
            **common,
        )
    elif field_type == "Url":
        spec = field(name, label, "url", **common)
    elif field_type == "Email":
        spec = field(name, label, "email", length=_EMAIL_LENGTH, **common)
    elif field_type == "Phone":
        spec = field(name, label, "phone", length=_PHONE_LENGTH, **common)
    elif field_type in ("Picklist", "MultiselectPicklist"):
        spec = _picklist(root, file, name, label, field_type, common)
    elif field_type in ("Number", "Currency", "Percent"):
        describe_type = {"Number": "double", "Currency": "currency", "Percent": "percent"}
        spec = field(
            name,
            label,
            describe_type[field_type],
            precision=_number(root, "precision", file),
            scale=_number(root, "scale", file),
            **common,
        )
    elif field_type in ("Date", "DateTime"):
        spec = field(name, label, field_type.lower(), **common)
    elif field_type in ("MasterDetail", "Lookup"):
        spec = _reference(root, file, name, label, field_type, common)
        children = f"{_text(root, 'relationshipName')}__r"
        return CustomFieldDef(object_name, spec, _display(file), child_relationship_name=children)
    else:
        raise MetadataError(
            f"{_display(file)}: field type {field_type!r} is not emulated by the sandbox "
            "(supported: Checkbox, Text, TextArea, LongTextArea, Html, Url, Email, Phone, "
            "Picklist, MultiselectPicklist, Number, Currency, Percent, Date, DateTime, "
            "MasterDetail, Lookup)"
        )
    return CustomFieldDef(object_name=object_name, field=spec, source=_display(file))


def _picklist(
    root: ET.Element,
    file: Traversable,
    name: str,
    label: str,
    field_type: str,
    common: dict[str, object],
) -> FieldSchema:
    value_set = root.find(_NS + "valueSet")
    if value_set is None or value_set.find(_NS + "valueSetName") is not None:
        raise MetadataError(
            f"{_display(file)}: picklists need an inline <valueSet><valueSetDefinition>; "
            "global value sets are not emulated by the sandbox"
        )
    definition = value_set.find(_NS + "valueSetDefinition")
    if definition is None:
        raise MetadataError(f"{_display(file)}: <valueSet> has no <valueSetDefinition>")
    values: list[PicklistValue] = []
    for entry in definition.findall(_NS + "value"):
        api = _text(entry, "fullName")
        if not api:
            raise MetadataError(f"{_display(file)}: a picklist <value> has no <fullName>")
        values.append(
            PicklistValue(
                value=api,
                label=_text(entry, "label") or api,
                default=_flag(entry, "default"),
                active=_flag(entry, "isActive", default=True),
            )
        )
    if not values:
        raise MetadataError(f"{_display(file)}: the picklist has no values")
    defaults = [v.value for v in values if v.default]
    multi = field_type == "MultiselectPicklist"
    return field(
        name,
        label,
        "multipicklist" if multi else "picklist",
        length=_MULTIPICKLIST_LENGTH if multi else _PICKLIST_LENGTH,
        picklist_values=tuple(values),
        restricted_picklist=_flag(value_set, "restricted"),
        defaulted_on_create=bool(defaults),
        default_value=";".join(defaults) if defaults else None,
        **common,
    )


def _reference(
    root: ET.Element,
    file: Traversable,
    name: str,
    label: str,
    field_type: str,
    common: dict[str, object],
) -> FieldSchema:
    target = _text(root, "referenceTo")
    relationship = _text(root, "relationshipName")
    if not target or not relationship:
        raise MetadataError(
            f"{_display(file)}: {field_type} fields need <referenceTo> and <relationshipName>"
        )
    if field_type == "MasterDetail":
        has_order = _text(root, "relationshipOrder") is not None
        common.update(
            required=True,
            updateable=_flag(root, "reparentableMasterDetail"),
            cascade_delete=True,
            relationship_order=_number(root, "relationshipOrder", file) if has_order else 0,
        )
    return field(
        name,
        label,
        "reference",
        reference_to=(target,),
        relationship_name=name.removesuffix("__c") + "__r",
        **common,
    )


def _custom_object(
    definition: CustomObjectDef, prefix: str, *, multi_currency: bool
) -> SObjectSchema:
    obj = SObjectSchema(
        name=definition.name,
        label=definition.label,
        label_plural=definition.label_plural,
        key_prefix=prefix,
        custom=True,
    )
    obj.add_field(field("Id", "Record ID", "id", required=True, read_only=True,
                        defaulted_on_create=True, id_lookup=True))  # fmt: skip
    if not definition.controlled_by_parent:
        obj.add_field(owner_field())
    obj.add_field(field("IsDeleted", "Deleted", "boolean", read_only=True))
    obj.add_field(definition.name_field)
    if multi_currency:
        currency = currency_field()
        if definition.controlled_by_parent:
            # A detail record takes its master's currency and cannot change it.
            currency = replace(currency, createable=False, updateable=False)
        obj.add_field(currency)
    for spec in audit_fields():
        obj.add_field(spec)
    return obj


def _apply_field(schema: Schema, spec: CustomFieldDef) -> None:
    obj = schema.sobject(spec.object_name)
    if obj is None:
        raise MetadataError(
            f"{spec.source}: object {spec.object_name} is not described by the sandbox; "
            "custom fields can go on Account, Contact, Lead, Opportunity and custom objects"
        )
    if obj.field(spec.field.name) is not None:
        raise MetadataError(
            f"{spec.source}: {spec.object_name} already has a field {spec.field.name}"
        )
    obj.add_field(spec.field)
    if spec.field.type != "reference":
        return
    target_name = spec.field.reference_to[0]
    parent = schema.sobject(target_name)
    if parent is None:
        raise MetadataError(
            f"{spec.source}: referenceTo {target_name} is not an object the sandbox describes"
        )
    if spec.field.reference_to[0] != parent.name:
        obj.add_field(replace(spec.field, reference_to=(parent.name,)))
    parent.child_relationships.append(
        ChildRelationshipSchema(
            relationship_name=spec.child_relationship_name,
            child_object=obj.name,
            field=spec.field.name,
            cascade_delete=spec.field.cascade_delete,
        )
    )
