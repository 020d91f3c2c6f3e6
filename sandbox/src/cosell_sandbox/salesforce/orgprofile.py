"""Org profiles: make the Salesforce sandbox a customised org, as partners' real orgs are.

A profile is a YAML file (`cosell sandbox salesforce --org-profile FILE`, `PUT
/control/org-profile` for tests) with any of these sections; `sandbox/examples/customised-org.yaml`
uses each one:

```yaml
validation_rules:            # FIELD_CUSTOM_VALIDATION_EXCEPTION when `error_when` is true
  - object: Opportunity
    name: Amount_Before_Commit
    error_when: {all: [{ischanged: StageName}, {field: StageName, equals: Commit},
                       {blank: Amount}]}
    message: Enter an amount before committing the deal.
    field: Amount            # optional: the field the message is shown on (`fields`)
duplicate_rules:             # Account: Name + BillingPostalCode; Contact / Lead: Email
  - object: Account
    name: Standard_Account_Duplicate_Rule
    action: block            # block -> DUPLICATES_DETECTED; allow -> an alert (see below)
required_fields:             # custom text fields added to the object, required on create
  - {object: Opportunity, field: Region__c, label: Region}
field_security:              # what the integration user's profile lets it see / edit
  hidden: {Opportunity: [Margin__c]}
  read_only: {Opportunity: [Description]}
record_types:                # record types and their sales processes (Opportunity stages)
  - {object: Opportunity, name: Partner_Deal, label: Partner Deal, default: true,
     stages: [Prospecting, Qualification, Closed Won, Closed Lost]}
automation:                  # after-save "Flows": fields set after a write
  - object: Opportunity
    name: Normalise_Next_Step
    when: {ischanged: NextStep}
    set: {NextStep: "Call customer"}      # literal values
    template: {Description: "{Name}"}    # str.format over the saved record's fields
```

**The condition language** (a YAML mapping, evaluated against the record as it would be saved,
with the prior version on update): `{blank: F}`, `{field: F, equals: V}`, `{field: F, in: [..]}`,
`{ischanged: F}` (false on create, as ISCHANGED), `{prior: F, equals: V}` (PRIORVALUE; on create
the current value, as Salesforce documents), `{isnew: true}`, and `{all: [..]}`, `{any: [..]}`,
`{not: C}`. Field names are matched case-insensitively and must exist on the object.

What the sandbox answers, and how sure we are (D: documented, V: verified in a real response
quoted by a public source, I: inferred):

- A validation rule that fires → 400 `FIELD_CUSTOM_VALIDATION_EXCEPTION` with the rule's message
  and `fields` = `[field]` (`[]` for a rule shown at the top of the page) (D: the error code and
  "error location" of validation rules; the `fields` content is I). Rules run after required
  fields and before duplicate rules (D: order of execution), in the profile's order, and the
  first that fires is reported (I: Salesforce reports them all; one is enough for a client).
- A blocking duplicate rule → 400 `DUPLICATES_DETECTED` "Use one of these records?" with a
  `duplicateResult` {allowSave, duplicateRule, duplicateRuleEntityType, errorMessage,
  matchResults[{entityType, errors, matchEngine, matchRecords[{additionalInformation,
  fieldDiffs, matchConfidence, record{attributes, Id}}], rule, size, success}]} beside
  `errorCode`/`message` (V: the shape community answers quote from REST responses). Matching is
  exact and case-insensitive on the rule's fields (I: Salesforce's standard rules are fuzzy);
  a record never matches itself, deleted records never match.
- An alerting (allow) rule → refused like a blocking one but with `allowSave: true`, unless the
  request sends `Sforce-Duplicate-Rule-Header: allowSave=true` (D: REST API Developer Guide,
  "Duplicate Rule Header", API 52.0+, "The default value for all fields is false";
  developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api/headers_duplicaterules.htm; the
  sandbox honours it in every version); then the
  record is saved and the result's `errors` carries the same DUPLICATES_DETECTED item (I:
  SaveResult reports duplicate alerts as errors on a successful save in SOAP/Apex; the REST
  shape is assumed to match). Composite subrequests share the request's header.
- Required custom fields → `REQUIRED_FIELD_MISSING` "Required fields are missing: [F]" (V), and
  `nillable: false` in describe.
- Field-level security is the integration user's: a hidden field is absent from describe,
  SOQL answers `INVALID_FIELD` and writes `INVALID_FIELD` (D: FLS-hidden fields behave as if
  they did not exist for the API user); a read-only field is `createable`/`updateable: false` in
  describe and writes answer `INVALID_FIELD_FOR_INSERT_UPDATE` (V). The sandbox has one
  schema, so the control API's seller sees the same restrictions (I, a simplification).
- Automation runs after the save, in the same transaction, as a second platform update: the
  record is stamped again (`LastModifiedDate`/`SystemModstamp` move to a later millisecond), a
  second change event is recorded under the same transaction, and the next read returns the
  rewritten value (I: an after-save record-triggered Flow updating its own record re-saves it).
  An automation's values skip field-level security and validation rules (a Flow running in
  system mode) but must fit the field's type (text within its length, an active picklist
  value, a number, a boolean, a YYYY-MM-DD date; templates only on text fields), checked when
  the profile is applied. Automation does not trigger automation.

- Record types: the object gets `RecordTypeId` (reference, createable, updateable, defaulted on
  create; `referenceTo` is empty because the sandbox has no RecordType object — I); a create
  without one gets the integration user's default (the one marked `default`, else the first)
  (D: "the user's default record type is used"); an id not of this object's record types
  answers INVALID_CROSS_REFERENCE_KEY "Record Type ID: this ID value isn't valid for the user:
  …" (V: the message quoted in many forum threads). A stage outside the record type's sales
  process answers INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST "Stage: bad value for restricted
  picklist field: V" with `fields` ["StageName"], checked when the stage or the record type
  changes (I: the platform enforces per-record-type values of restricted picklists on API
  writes; older orgs and unrestricted picklists may not). Describe's `recordTypeInfos` lists
  each record type (developerName, name, recordTypeId, defaultRecordTypeMapping, available,
  master, urls.layout) and Master, which is then `available: false` (V: describe shape of a
  real fixture, spec §2.6). Per-record-type picklist values: the UI API resource
  `GET /services/data/vXX.X/ui-api/object-info/{objectApiName}/picklist-values/{recordTypeId}`
  (D: User Interface API Developer Guide, "Get Values for All Picklist Fields of a Record
  Type"), chosen over `describe/layouts/{recordTypeId}` because it answers just the picklist
  values per field; see `describe.picklist_values` for its shape.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from cosell_sandbox.salesforce.ids import to_18
from cosell_sandbox.salesforce.schema import FieldSchema, RecordTypeSchema, Schema, SObjectSchema

DUPLICATE_MATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": ("Name", "BillingPostalCode"),
    "Contact": ("Email",),
    "Lead": ("Email",),
}
DUPLICATE_MESSAGE = "Use one of these records?"
_SECTIONS = frozenset(
    {
        "validation_rules",
        "duplicate_rules",
        "required_fields",
        "field_security",
        "automation",
        "record_types",
    }
)
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RECORD_TYPE_FIELD = FieldSchema(
    name="RecordTypeId",
    label="Record Type ID",
    type="reference",
    soap_type="tns:ID",
    length=18,
    defaulted_on_create=True,
)


class OrgProfileError(ValueError):
    """A profile that cannot be applied; the message names the entry and what to fix."""


@dataclass(frozen=True)
class ValidationRule:
    """A validation rule: `error_when` true refuses the save."""

    object: str
    name: str
    error_when: Mapping[str, Any]
    message: str
    field: str | None = None


@dataclass(frozen=True)
class DuplicateRule:
    """A duplicate rule on Account, Contact or Lead."""

    object: str
    name: str
    block: bool


@dataclass(frozen=True)
class Automation:
    """An after-save automation: `set` / `template` values applied when `when` holds."""

    object: str
    name: str
    when: Mapping[str, Any] | None
    set: Mapping[str, Any]
    template: Mapping[str, str]


@dataclass(frozen=True)
class RecordTypeDef:
    """A record type as the profile declares it (`stages`: its sales process, Opportunity)."""

    object: str
    name: str
    label: str
    default: bool
    stages: tuple[str, ...]


@dataclass
class OrgProfile:
    """A parsed profile."""

    validation_rules: list[ValidationRule] = field(default_factory=list)
    duplicate_rules: list[DuplicateRule] = field(default_factory=list)
    required_fields: list[tuple[str, str, str]] = field(default_factory=list)  # obj, field, label
    hidden: dict[str, list[str]] = field(default_factory=dict)
    read_only: dict[str, list[str]] = field(default_factory=dict)
    automation: list[Automation] = field(default_factory=list)
    source: str = "the org profile"
    record_types: list[RecordTypeDef] = field(default_factory=list)

    def rules_for(self, object_name: str) -> list[ValidationRule]:
        """The validation rules of an object, in profile order."""
        return [r for r in self.validation_rules if r.object == object_name]

    def duplicate_rule(self, object_name: str) -> DuplicateRule | None:
        """The duplicate rule of an object, if any."""
        return next((r for r in self.duplicate_rules if r.object == object_name), None)

    def automation_for(self, object_name: str) -> list[Automation]:
        """The automations of an object, in profile order."""
        return [a for a in self.automation if a.object == object_name]


def load_profile(path: Path) -> OrgProfile:
    """Read a profile file.

    Raises:
        OrgProfileError: the file cannot be read or is not a valid profile.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OrgProfileError(f"cannot read the org profile {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OrgProfileError(f"{path} is not valid YAML: {exc}") from None
    return parse_profile(data, source=str(path))


def parse_profile(data: Any, *, source: str = "the org profile") -> OrgProfile:
    """Build a profile from parsed YAML/JSON (names are checked later, by `apply_profile`).

    Raises:
        OrgProfileError: the structure is wrong; the message says where.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OrgProfileError(f"{source}: the profile must be a mapping of sections")
    unknown = sorted(set(data) - _SECTIONS)
    if unknown:
        raise OrgProfileError(f"{source}: unknown section(s) {unknown}; known: {sorted(_SECTIONS)}")
    profile = OrgProfile(source=source)
    for i, entry in enumerate(_list(data, "validation_rules", source)):
        where = f"{source}: validation_rules[{i}]"
        cond = _mapping(entry, "error_when", where)
        profile.validation_rules.append(
            ValidationRule(
                object=_text(entry, "object", where),
                name=_text(entry, "name", where),
                error_when=cond,
                message=_text(entry, "message", where),
                field=_text(entry, "field", where) if entry.get("field") is not None else None,
            )
        )
    for i, entry in enumerate(_list(data, "duplicate_rules", source)):
        where = f"{source}: duplicate_rules[{i}]"
        action = _text(entry, "action", where)
        if action not in ("block", "allow"):
            raise OrgProfileError(f"{where}: action must be block or allow, not {action!r}")
        profile.duplicate_rules.append(
            DuplicateRule(
                _text(entry, "object", where), _text(entry, "name", where), action == "block"
            )
        )
    for i, entry in enumerate(_list(data, "required_fields", source)):
        where = f"{source}: required_fields[{i}]"
        name = _text(entry, "field", where)
        label = _text(entry, "label", where) if entry.get("label") is not None else name
        profile.required_fields.append((_text(entry, "object", where), name, label))
    security = data.get("field_security") or {}
    if not isinstance(security, dict) or set(security) - {"hidden", "read_only"}:
        raise OrgProfileError(
            f"{source}: field_security has hidden and read_only, each a mapping of object to "
            "field names"
        )
    for key, target in (("hidden", profile.hidden), ("read_only", profile.read_only)):
        section = security.get(key) or {}
        if not isinstance(section, dict) or not all(
            isinstance(v, list) and all(isinstance(n, str) for n in v) for v in section.values()
        ):
            raise OrgProfileError(f"{source}: field_security.{key} maps objects to field lists")
        target.update({str(k): list(v) for k, v in section.items()})
    for i, entry in enumerate(_list(data, "automation", source)):
        where = f"{source}: automation[{i}]"
        when = _mapping(entry, "when", where) if entry.get("when") is not None else None
        values = entry.get("set") or {}
        templates = entry.get("template") or {}
        if not isinstance(values, dict) or not isinstance(templates, dict):
            raise OrgProfileError(f"{where}: set and template map field names to values")
        if not values and not templates:
            raise OrgProfileError(f"{where}: give the fields it sets under set or template")
        profile.automation.append(
            Automation(
                _text(entry, "object", where),
                _text(entry, "name", where),
                when,
                {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()},
                {str(k): str(v) for k, v in templates.items()},
            )
        )
    for i, entry in enumerate(_list(data, "record_types", source)):
        where = f"{source}: record_types[{i}]"
        stages = entry.get("stages") or []
        if not isinstance(stages, list) or not all(isinstance(v, str) for v in stages):
            raise OrgProfileError(f"{where}: stages is the list of stage values it allows")
        name = _text(entry, "name", where)
        profile.record_types.append(
            RecordTypeDef(
                _text(entry, "object", where),
                name,
                _text(entry, "label", where) if entry.get("label") is not None else name,
                entry.get("default") is True,
                tuple(stages),
            )
        )
    return profile


def allows_duplicate_save(header: str | None) -> bool:
    """Whether a `Sforce-Duplicate-Rule-Header` asks to save records an alerting rule matches.

    The header is a list of `name=value` separated by semicolons, as the REST API Developer
    Guide's example (`allowSave=true; includeRecordDetails=true; runAsCurrentUser=true`; commas
    are accepted too); every field defaults to false; names and values are case-insensitive.
    """
    for part in re.split(r"[;,]", header or ""):
        name, _, value = part.partition("=")
        if name.strip().lower() == "allowsave":
            return value.strip().lower() == "true"
    return False


def record_type_id(object_name: str, developer_name: str) -> str:
    """A stable 18-character RecordType id (prefix 012) for a record type of an object."""
    digest = hashlib.sha256(f"{object_name}.{developer_name}".encode()).digest()
    return to_18("0125" + "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:11]))


def _apply_record_types(schema: Schema, profile: OrgProfile) -> list[RecordTypeDef]:
    src = profile.source
    by_object: dict[str, list[RecordTypeDef]] = {}
    for rt in profile.record_types:
        obj = schema.sobject(rt.object)
        if obj is None:
            raise OrgProfileError(
                f"{src}: record type {rt.name}: the org has no object {rt.object!r}"
            )
        by_object.setdefault(obj.name, []).append(replace(rt, object=obj.name))
    applied: list[RecordTypeDef] = []
    for name, defs in by_object.items():
        obj = schema.sobject(name)
        assert obj is not None
        if sum(d.default for d in defs) > 1:
            raise OrgProfileError(f"{src}: {name} has more than one default record type")
        stage = obj.field("StageName")
        allowed = {v.value for v in stage.picklist_values if v.active} if stage else set()
        for index, rt in enumerate(defs):
            if rt.stages and stage is None:
                raise OrgProfileError(f"{src}: record type {rt.name}: {name} has no stages")
            unknown = [v for v in rt.stages if v not in allowed]
            if unknown:
                raise OrgProfileError(
                    f"{src}: record type {rt.name}: {unknown} are not stages of this org; "
                    f"its stages are: {', '.join(sorted(allowed))}"
                )
            default = rt.default or (index == 0 and not any(d.default for d in defs))
            obj.record_types.append(
                RecordTypeSchema(
                    id=record_type_id(name, rt.name),
                    developer_name=rt.name,
                    label=rt.label,
                    default=default,
                    values={"StageName": rt.stages} if rt.stages else {},
                )
            )
            applied.append(replace(rt, default=default))
        obj.add_field(RECORD_TYPE_FIELD)
    return applied


def apply_profile(schema: Schema, profile: OrgProfile) -> OrgProfile:
    """Change `schema` as the profile says (required fields, FLS) and canonicalise its names.

    Returns the profile with canonical object and field names.

    Raises:
        OrgProfileError: an unknown object or field, or a rule on an object that has none.
    """
    src = profile.source

    def obj_of(name: str, where: str) -> SObjectSchema:
        obj = schema.sobject(name)
        if obj is None:
            raise OrgProfileError(f"{src}: {where}: the org has no object {name!r}")
        return obj

    def field_of(obj: SObjectSchema, name: str, where: str) -> FieldSchema:
        spec = obj.field(name)
        if spec is None:
            raise OrgProfileError(f"{src}: {where}: {obj.name} has no field {name!r}")
        return spec

    for obj_name, name, label in profile.required_fields:
        obj = obj_of(obj_name, f"required field {name}")
        if not name.endswith("__c"):
            raise OrgProfileError(f"{src}: required field {name}: custom field names end in __c")
        obj.add_field(
            FieldSchema(
                name=name, label=label, type="string", length=255, nillable=False, custom=True
            )
        )
    required = [(obj_of(o, n).name, n, lbl) for o, n, lbl in profile.required_fields]
    rules: list[ValidationRule] = []
    for rule in profile.validation_rules:
        obj = obj_of(rule.object, f"validation rule {rule.name}")
        _check_condition(rule.error_when, obj, field_of, f"validation rule {rule.name}")
        shown = field_of(obj, rule.field, rule.name).name if rule.field else None
        rules.append(replace(rule, object=obj.name, field=shown))
    dupes: list[DuplicateRule] = []
    for dup in profile.duplicate_rules:
        obj = obj_of(dup.object, f"duplicate rule {dup.name}")
        if obj.name not in DUPLICATE_MATCH_FIELDS:
            raise OrgProfileError(
                f"{src}: duplicate rule {dup.name}: only Account, Contact and Lead have them here"
            )
        dupes.append(replace(dup, object=obj.name))
    autos: list[Automation] = []
    for auto in profile.automation:
        obj = obj_of(auto.object, f"automation {auto.name}")
        if auto.when is not None:
            _check_condition(auto.when, obj, field_of, f"automation {auto.name}")
        values = {field_of(obj, k, auto.name).name: v for k, v in auto.set.items()}
        templates = {field_of(obj, k, auto.name).name: v for k, v in auto.template.items()}
        for text in templates.values():
            _check_template(text, obj, field_of, f"automation {auto.name}")
        for name, value in [*values.items(), *templates.items()]:
            spec = field_of(obj, name, auto.name)
            if not _fits(spec, value):
                raise OrgProfileError(
                    f"{src}: automation {auto.name}: {value!r} is not a value of "
                    f"{obj.name}.{spec.name} ({spec.type}"
                    + (
                        f": one of {[v.value for v in spec.picklist_values]}"
                        if spec.picklist_values
                        else ""
                    )
                    + ")"
                )
        autos.append(replace(auto, object=obj.name, set=values, template=templates))
    hidden: dict[str, list[str]] = {}
    read_only: dict[str, list[str]] = {}
    for section, target in ((profile.read_only, read_only), (profile.hidden, hidden)):
        for obj_name, names in section.items():
            obj = obj_of(obj_name, "field_security")
            for name in names:
                spec = field_of(obj, name, "field_security")
                if spec.name == "Id" or spec.name_field:
                    raise OrgProfileError(
                        f"{src}: field_security: {obj.name}.{spec.name} is always visible"
                    )
                target.setdefault(obj.name, []).append(spec.name)
                if section is profile.hidden:
                    del obj.fields[spec.name.lower()]
                else:
                    obj.add_field(replace(spec, createable=False, updateable=False))
    record_types = _apply_record_types(schema, profile)
    for changed in schema.objects():
        schema.add(changed)  # forget the SOQL views built before the fields changed
    return OrgProfile(rules, dupes, required, hidden, read_only, autos, src, record_types)


_TEXT_TYPES = frozenset({"string", "textarea", "url", "email", "phone", "combobox"})


def _fits(spec: FieldSchema, value: Any) -> bool:
    """Whether an automation's value has the wire type of the field (None clears any field)."""
    if value is None:
        return spec.nillable
    if spec.type in _TEXT_TYPES:
        return isinstance(value, str) and (spec.length == 0 or len(value) <= spec.length)
    if spec.type == "picklist":
        return spec.picklist_value(value) is not None if isinstance(value, str) else False
    if spec.type == "boolean":
        return isinstance(value, bool)
    if spec.type in ("double", "currency", "percent", "int"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if spec.type == "date":
        return isinstance(value, str) and bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))
    return False  # references, datetimes, ...: not supported by automation here


def evaluate(
    cond: Mapping[str, Any], row: Mapping[str, Any], old: Mapping[str, Any] | None
) -> bool:
    """Evaluate a (checked, canonical-name) condition on the record as it would be saved."""
    if "all" in cond:
        return all(evaluate(c, row, old) for c in cond["all"])
    if "any" in cond:
        return any(evaluate(c, row, old) for c in cond["any"])
    if "not" in cond:
        return not evaluate(cond["not"], row, old)
    if "isnew" in cond:
        return (old is None) == bool(cond["isnew"])
    if "blank" in cond:
        return _value(row, cond["blank"]) in (None, "")
    if "ischanged" in cond:
        name = cond["ischanged"]
        return old is not None and _value(old, name) != _value(row, name)
    if "prior" in cond:
        source = old if old is not None else row
        return _matches(_value(source, cond["prior"]), cond)
    return _matches(_value(row, cond["field"]), cond)


def _matches(value: Any, cond: Mapping[str, Any]) -> bool:
    if "equals" in cond:
        return bool(value == cond["equals"])
    return value in cond["in"]


def _value(row: Mapping[str, Any], name: str) -> Any:
    if name in row:
        return row[name]
    lower = name.lower()
    return next((v for k, v in row.items() if k.lower() == lower), None)


def _check_condition(cond: Any, obj: SObjectSchema, field_of: Any, where: str) -> None:
    """Refuse a condition that is not of the language, or names an unknown field; canonicalise."""
    if not isinstance(cond, dict) or len(cond) == 0:
        raise OrgProfileError(f"{where}: a condition is a mapping such as {{blank: Amount}}")
    for key in ("all", "any"):
        if key in cond:
            if len(cond) != 1 or not isinstance(cond[key], list) or not cond[key]:
                raise OrgProfileError(f"{where}: {key} takes a non-empty list of conditions")
            for sub in cond[key]:
                _check_condition(sub, obj, field_of, where)
            return
    if "not" in cond:
        if len(cond) != 1:
            raise OrgProfileError(f"{where}: not takes one condition")
        _check_condition(cond["not"], obj, field_of, where)
        return
    if "isnew" in cond:
        if len(cond) != 1 or not isinstance(cond["isnew"], bool):
            raise OrgProfileError(f"{where}: write isnew: true or isnew: false")
        return
    for key in ("blank", "ischanged"):
        if key in cond:
            if len(cond) != 1 or not isinstance(cond[key], str):
                raise OrgProfileError(f"{where}: write {{{key}: FieldName}}")
            cond[key] = field_of(obj, cond[key], where).name
            return
    subject = "prior" if "prior" in cond else "field"
    tests = [k for k in ("equals", "in") if k in cond]
    if (
        subject not in cond
        or not isinstance(cond[subject], str)
        or len(tests) != 1
        or len(cond) != 2
        or (tests[0] == "in" and not isinstance(cond["in"], list))
    ):
        raise OrgProfileError(
            f"{where}: unknown condition {cond!r}; use blank, ischanged, isnew, "
            "{field|prior: F, equals: V}, {field|prior: F, in: [..]}, all, any or not"
        )
    cond[subject] = field_of(obj, cond[subject], where).name


def _check_template(text: str, obj: SObjectSchema, field_of: Any, where: str) -> None:
    """Allow only `{FieldName}` placeholders of the object's own fields (no attribute access)."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise OrgProfileError(f"{where}: template {text!r}: {exc}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise OrgProfileError(f"{where}: template {text!r}: write placeholders as {{Field}}")
        if field_of(obj, name, where).name != name:
            raise OrgProfileError(
                f"{where}: template {text!r}: spell {name} as {field_of(obj, name, where).name}"
            )


def _list(data: Mapping[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise OrgProfileError(f"{source}: {key} must be a list of mappings")
    return value


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise OrgProfileError(f"{where}: {key} must be a non-empty string")
    return value


def _mapping(entry: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = entry.get(key)
    if not isinstance(value, dict):
        raise OrgProfileError(f"{where}: {key} must be a condition mapping, e.g. {{blank: Amount}}")
    return value
