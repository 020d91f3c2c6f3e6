"""Checking a mapping against the org's describe and the referral model.

`check_mapping` is pure given the object descriptions: the caller (`cosell mapping check`, or
the engine before it starts) fetches `describe(Opportunity)` and `describe(Account)` and hands
them over as a function. Each problem carries the place in the mapping file it concerns
(`Mapping.place`), so an admin can go straight to the line.

What is checked, per field: the Salesforce object and field exist (with a "did you mean" from
the org's field names); the field is createable (creates write every mapped field) and
updateable where the direction writes to Salesforce; its type fits the transform (a date
transform on a date field, an amount on a currency/double/percent/int field, ...); the picklist
map's Salesforce values and the defaults are active picklist values; the Partner Center path
is a known scalar member of the referral (from the `Referral` model) of a type that fits the
transform, and writable by a partner where the direction writes to Partner Center; picklist
map keys are documented values of a Partner Center enum. Across the mapping: the stage table's
stages are active values of the stage field; every field Salesforce requires on create is
mapped; the fields cosell writes itself exist, are writable, and the referral id is an
external id. For each synced collection (`collections:`): the child object exists, is
createable and deletable, its parent field points to Opportunity, the opportunity has the
named child relationship to it, and the fields cosell reads and writes exist (the ones it
writes createable). With lead sync, the lead section too (`lead_sync=True`). (Duplicate names
are refused when the file is loaded.)

Customised orgs (record types, field-level security, required custom fields): a field hidden
from cosell's user by field-level security is absent from describe, so it reads as a missing
field (the message says to check FLS); a read-only one fails the createable/updateable checks.
A required field the mapping does not fill suggests a `defaults` entry; `defaults` must name
createable fields and active picklist values. The record type cosell creates opportunities with
(`record_type`, else the user's default from describe's `recordTypeInfos`) must exist and be
available to the user, and every stage of the stage table must be in its sales process (its
`StageName` values, which the caller fetches with `SalesforceClient.picklist_values` for
`creates_record_type(...)` and passes as `record_type_values`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from collections.abc import Mapping as AbcMapping
from typing import Final

from cosell.mapping.model import (
    ACCOUNT,
    LEAD,
    OPPORTUNITY,
    ChildObject,
    FieldMapping,
    Loc,
    Mapping,
    Problem,
    SolutionObject,
)
from cosell.mapping.referral_paths import referral_paths
from cosell.mapping.transforms import (
    AmountTransform,
    BooleanTransform,
    CountryTransform,
    CurrencyTransform,
    DateTransform,
    DealTypeTransform,
    PicklistTransform,
    StageTransform,
    TextTransform,
)
from cosell.mapping.types import Direction
from cosell.salesforce.schema import FieldDescription, ObjectDescription, RecordTypeInfo

_TEXT = frozenset({"string", "textarea", "url", "email", "phone", "picklist", "combobox"})
SALESFORCE_TYPES: dict[type, frozenset[str]] = {
    TextTransform: _TEXT,
    AmountTransform: frozenset({"currency", "double", "percent", "int", "long"}),
    CurrencyTransform: frozenset({"picklist", "string", "combobox"}),
    DateTransform: frozenset({"date"}),
    CountryTransform: frozenset({"string", "picklist", "combobox", "textarea"}),
    BooleanTransform: frozenset({"boolean"}),
    PicklistTransform: frozenset({"picklist", "string", "combobox"}),
    DealTypeTransform: frozenset({"picklist", "string", "combobox"}),
    StageTransform: frozenset({"picklist"}),
}
"""The Salesforce field types each transform can read and write."""

PARTNER_CENTER_KINDS: dict[type, frozenset[str]] = {
    TextTransform: frozenset({"string", "enum"}),
    AmountTransform: frozenset({"decimal"}),
    CurrencyTransform: frozenset({"string"}),
    DateTransform: frozenset({"datetime"}),
    CountryTransform: frozenset({"string"}),
    BooleanTransform: frozenset({"boolean"}),
    PicklistTransform: frozenset({"enum", "string"}),
    DealTypeTransform: frozenset({"boolean"}),  # written as the consent (see the transform)
    StageTransform: frozenset({"enum"}),
}
"""The kinds of referral member (see `referral_paths`) each transform can read and write."""

SYNC_STATUS_VALUES: Final = ("Synced", "Pending", "Error", "Paused")
"""What cosell writes in the sync status field (Paused: `cosell pause KEY`, the console)."""

_OWN_TYPES = {
    "sync": frozenset({"boolean"}),
    "referral_id": frozenset({"string"}),
    "referral_link": frozenset({"url", "string"}),
    "partner_center_status": frozenset({"string", "textarea"}),
    "sync_status": frozenset({"picklist", "string"}),
    "sync_error": frozenset({"string", "textarea"}),
    "audit": frozenset({"textarea"}),
}


def _transform_name(mapped: FieldMapping) -> str:
    return mapped.transform.type


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


class _Checker:
    def __init__(
        self,
        mapping: Mapping,
        describe: Callable[[str], ObjectDescription],
        *,
        prefix: Loc = (),
    ) -> None:
        self.mapping = mapping
        self.prefix = prefix  # ("lead",) when checking the lead section as a mapping of its own
        self._describe = describe
        self.record_type_values: AbcMapping[str, AbcMapping[str, tuple[str, ...]]] = {}
        self._objects: dict[str, ObjectDescription | None] = {}
        self.problems: list[Problem] = []

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.mapping.place(*self.prefix, *loc), message))

    def described(self, sobject: str) -> ObjectDescription | None:
        if sobject not in self._objects:
            try:
                self._objects[sobject] = self._describe(sobject)
            except LookupError:
                self._objects[sobject] = None
        return self._objects[sobject]

    def salesforce_field(self, sobject: str, name: str, loc: Loc) -> FieldDescription | None:
        description = self.described(sobject)
        if description is None:
            self.add(loc, f"the org has no object {sobject!r} (or cosell's user cannot see it)")
            return None
        found = description.field(name)
        if found is None:
            self.add(
                loc,
                f"{sobject} has no field {name!r}{_suggest(name, description.field_names)}; "
                "check the API name (custom fields end in __c) and the field-level security of "
                "cosell's user",
            )
        return found

    def run(self) -> list[Problem]:
        for index, mapped in enumerate(self.mapping.fields):
            self.check_salesforce(index, mapped)
            self.check_partner_center(index, mapped)
        self.check_stages()
        self.check_required_on_create()
        self.check_defaults()
        self.check_record_type()
        self.check_own_fields()
        for key, child in self.mapping.collections.objects().items():
            self.check_collection(key, child)
        return self.problems

    def check_collection(self, key: str, child: ChildObject) -> None:
        loc: Loc = ("collections", key)
        description = self.described(child.object)
        if description is None:
            self.add(
                (*loc, "object"),
                f"the org has no object {child.object!r} (or cosell's user cannot see it); "
                "deploy cosell's metadata (src/cosell/salesforce/metadata) or fix the name",
            )
            return
        if not (description.createable and description.deletable):
            self.add(
                (*loc, "object"),
                f"{child.object} must be createable and deletable by cosell's user (items are "
                "added and removed both ways)",
            )
        parent = self.salesforce_field(child.object, child.parent, (*loc, "parent"))
        if parent is not None and OPPORTUNITY not in parent.reference_to:
            self.add(
                (*loc, "parent"),
                f"{child.object}.{parent.name} does not point to Opportunity; name the field "
                "that links a row to its opportunity",
            )
        opportunity = self.described(OPPORTUNITY)
        relationships = {
            r.relationship_name.lower(): r
            for r in (opportunity.child_relationships if opportunity else ())
            if r.relationship_name
        }
        found = relationships.get(child.relationship.lower())
        if opportunity is not None and (found is None or found.child_sobject != child.object):
            hint = _suggest(
                child.relationship, [r.relationship_name or "" for r in relationships.values()]
            )
            self.add(
                (*loc, "relationship"),
                f"Opportunity has no child relationship {child.relationship!r} to "
                f"{child.object}{hint}; it is the name the opportunity's query reads the rows by",
            )
        names = child.names() if isinstance(child, SolutionObject) else child.fields
        for name in names:
            described = self.salesforce_field(child.object, name, (*loc, "fields"))
            if described is not None and not described.createable:
                self.add(
                    (*loc, "fields"),
                    f"{child.object}.{described.name} must be createable by cosell's user",
                )

    def check_salesforce(self, index: int, mapped: FieldMapping) -> None:
        if mapped.is_constant:
            return
        loc: Loc = ("fields", index, "salesforce")
        found = self.salesforce_field(mapped.sobject, mapped.sf_field, loc)
        if found is None:
            return
        where = f"{mapped.sobject}.{found.name}"
        if not found.createable:
            self.add(
                loc,
                f"{where} is not createable by cosell's user, and creates write every mapped "
                "field; grant edit access or map another field",
            )
        if mapped.direction != Direction.TO_PARTNER_CENTER and not found.updateable:
            self.add(
                loc,
                f"{where} is not updateable, but direction {mapped.direction.value} writes to "
                "Salesforce; use direction: to_partner_center, or grant edit access",
            )
        allowed = SALESFORCE_TYPES[type(mapped.transform)]
        if found.type not in allowed:
            self.add(
                ("fields", index, "transform"),
                f"{where} is a {found.type} field; the {_transform_name(mapped)} transform needs "
                f"one of: {', '.join(sorted(allowed))}",
            )
            return
        if found.type != "picklist":
            return
        active = found.active_values
        transform = mapped.transform
        if isinstance(transform, PicklistTransform):
            for key, target in transform.values.items():
                if target is not None and target not in active:
                    self._not_a_value(
                        ("fields", index, "transform", "values", key), where, target, active
                    )
            default = transform.salesforce_default
            if default is not None and default not in active:
                self._not_a_value(
                    ("fields", index, "transform", "salesforce_default"), where, default, active
                )
        default_wire = self._default_wire(mapped)
        if default_wire is not None and default_wire not in active:
            self._not_a_value(("fields", index, "default"), where, default_wire, active)

    def _default_wire(self, mapped: FieldMapping) -> str | None:
        if mapped.default is None or mapped.is_stage:
            return None
        wire = mapped.simple_transform.to_salesforce(mapped.default_value)
        return wire if isinstance(wire, str) else None

    def _not_a_value(self, loc: Loc, where: str, value: str, active: tuple[str, ...]) -> None:
        self.add(
            loc,
            f"{value!r} is not an active picklist value of {where}"
            f"{_suggest(value, active)}; its values are: {', '.join(active)}",
        )

    def check_partner_center(self, index: int, mapped: FieldMapping) -> None:
        loc: Loc = ("fields", index, "partner_center")
        known = referral_paths()
        described = known.get(mapped.partner_center)
        if described is None:
            scalars = [p for p, d in known.items() if d.kind != "list"]
            self.add(
                loc,
                f"{mapped.partner_center!r} is not a member of a referral"
                f"{_suggest(mapped.partner_center, scalars)}",
            )
            return
        if described.kind == "list":
            self.add(loc, f"{mapped.partner_center} is a list; map one of its scalar members")
            return
        if mapped.direction != Direction.TO_SALESFORCE and not described.updatable:
            self.add(
                loc,
                f"Partner Center does not let partners change {mapped.partner_center} after the "
                f"referral is created, but direction {mapped.direction.value} writes to it; use "
                "direction: to_salesforce",
            )
        allowed = PARTNER_CENTER_KINDS[type(mapped.transform)]
        if described.kind not in allowed:
            self.add(
                ("fields", index, "transform"),
                f"{mapped.partner_center} holds a {described.kind}; the "
                f"{_transform_name(mapped)} transform needs one of: {', '.join(sorted(allowed))}",
            )
            return
        transform = mapped.transform
        if isinstance(transform, PicklistTransform) and described.values:
            lowered = {v.lower() for v in described.values}
            for key in transform.values:
                if key.lower() not in lowered:
                    self.add(
                        ("fields", index, "transform", "values", key),
                        f"{key!r} is not a Partner Center value of {mapped.partner_center}"
                        f"{_suggest(key, described.values)}; its values are: "
                        f"{', '.join(described.values)}",
                    )

    def check_stages(self) -> None:
        stage_field = self.mapping.stage_field
        sobject, name = (
            (stage_field.sobject, stage_field.sf_field)
            if stage_field
            else (OPPORTUNITY, "StageName")
        )
        description = self.described(sobject)
        found = description.field(name) if description else None
        if found is None or found.type != "picklist":
            return  # reported with the field itself
        active = found.active_values
        for key, stage in self.mapping.stages.stage_names().items():
            if stage not in active:
                where = f"{sobject}.{found.name}"
                self._not_a_value(_stage_loc(key), where, stage, active)

    def run_lead(self, statuses: AbcMapping[str, str]) -> list[Problem]:
        """The lead section's checks (this checker holds `Mapping.lead_mapping()`)."""
        for index, mapped in enumerate(self.mapping.fields):
            self.check_salesforce(index, mapped)
            self.check_partner_center(index, mapped)
        self.check_lead_statuses(statuses)
        self.check_required_on_create((LEAD,))
        self.check_own_fields(LEAD)
        return self.problems

    def check_lead_statuses(self, statuses: AbcMapping[str, str]) -> None:
        description = self.described(LEAD)
        found = description.field("Status") if description else None
        if found is None or found.type != "picklist":
            self.add(("statuses",), "the org's Lead has no Status picklist cosell can see")
            return
        for key, status in statuses.items():
            if status not in found.active_values:
                self._not_a_value(("statuses", key), "Lead.Status", status, found.active_values)

    def check_required_on_create(self, sobjects: tuple[str, ...] = (OPPORTUNITY, ACCOUNT)) -> None:
        own = {n.lower() for n in self.mapping.opportunity.names().values()}
        for sobject in sobjects:
            description = self.described(sobject)
            if description is None:
                continue
            mapped = {f.sf_field.lower() for f in self.mapping.fields_on(sobject)}
            mapped |= {k.lower() for k in self.mapping.create_defaults(sobject)}
            if sobject in (OPPORTUNITY, LEAD):
                mapped |= own
            for described in description.fields:
                if described.required_on_create and described.name.lower() not in mapped:
                    example = _example_value(described)
                    self.add(
                        ("fields",),
                        f"{sobject}.{described.name} is required when cosell creates a "
                        f"{sobject}, but no field maps it; add a `defaults` entry (written on "
                        f"create only), e.g. `defaults: {{{sobject}.{described.name}: "
                        f"{example}}}`, or map a field to it (with a default if Partner Center "
                        "may not have a value)",
                    )

    def check_defaults(self) -> None:
        for key, value in self.mapping.defaults.items():
            sobject, _, name = key.partition(".")
            found = self.salesforce_field(sobject, name, ("defaults", key))
            if found is None:
                continue
            where = f"{sobject}.{found.name}"
            if not found.createable:
                self.add(
                    ("defaults", key),
                    f"{where} is not createable by cosell's user, so its default cannot be "
                    "written; grant edit access (field-level security) or remove the default",
                )
            elif found.type == "picklist" and value not in found.active_values:
                self._not_a_value(("defaults", key), where, str(value), found.active_values)

    def check_record_type(self) -> None:
        description = self.described(OPPORTUNITY)
        if description is None:
            return
        wanted = self.mapping.record_type
        chosen = creates_record_type(self.mapping, description)
        if wanted is not None and chosen is None:
            usable = [
                i.developer_name
                for i in description.record_type_infos
                if i.available and not i.master
            ]
            self.add(
                ("record_type",),
                f"Opportunity has no record type {wanted!r} available to cosell's user"
                f"{_suggest(wanted, usable)}; "
                + (
                    f"its record types are: {', '.join(usable)}"
                    if usable
                    else "the org has no Opportunity record types: remove record_type"
                )
                + " (or assign the record type to the integration user's profile)",
            )
            return
        if chosen is None:
            return
        values = self.record_type_values.get(chosen.record_type_id, {})
        stage_field = self.mapping.stage_field
        stage_name = stage_field.sf_field if stage_field else "StageName"
        allowed = next((v for k, v in values.items() if k.lower() == stage_name.lower()), None)
        if allowed is None:
            return  # not fetched: nothing to compare with
        source = "record_type" if wanted else "the integration user's default record type"
        others = [
            i
            for i in description.record_type_infos
            if i.available and not i.master and i.record_type_id != chosen.record_type_id
        ]
        for key, stage in self.mapping.stages.stage_names().items():
            if stage in allowed:
                continue
            fits = [
                i.developer_name
                for i in others
                if stage
                in next(
                    (
                        v
                        for k, v in self.record_type_values.get(i.record_type_id, {}).items()
                        if k.lower() == stage_name.lower()
                    ),
                    (),
                )
            ]
            alternative = f" ({', '.join(fits)} allows it)" if fits else ""
            self.add(
                _stage_loc(key),
                f"stage {stage!r} is not in the sales process of record type "
                f"{chosen.developer_name} ({source}, which cosell creates opportunities with), so "
                f"Salesforce refuses it; its stages are: {', '.join(allowed)}. Add the stage to "
                f"the sales process, set `record_type:` to another record type{alternative}, or "
                "change the stage table",
            )

    def check_own_fields(self, sobject: str = OPPORTUNITY) -> None:
        description = self.described(sobject)
        if description is None:
            self.add(("opportunity",), f"the org has no {sobject} object cosell can see")
            return
        for role, name in self.mapping.opportunity.names().items():
            loc: Loc = ("opportunity", role)
            found = self.salesforce_field(sobject, name, loc)
            if found is None:
                continue
            where = f"{sobject}.{found.name}"
            if not (found.createable and found.updateable):
                self.add(loc, f"{where} must be createable and updateable by cosell's user")
            if found.type not in _OWN_TYPES[role]:
                self.add(
                    loc,
                    f"{where} is a {found.type} field; the {role} field must be one of: "
                    f"{', '.join(sorted(_OWN_TYPES[role]))}",
                )
            missing = [v for v in SYNC_STATUS_VALUES if v not in found.active_values]
            if role == "sync_status" and found.type == "picklist" and missing:
                self.add(
                    loc,
                    f"{where} lacks the picklist value(s) {', '.join(missing)}: cosell writes "
                    f"{', '.join(SYNC_STATUS_VALUES)} there (Paused for a deal paused by hand); "
                    "deploy cosell's metadata again (`cosell salesforce metadata`) or add them",
                )
            if role == "referral_id" and not found.external_id:
                self.add(
                    loc,
                    f"{where} must be an External ID (and Unique): creates upsert on it, so a "
                    "retried create never makes a second opportunity",
                )


def creates_record_type(mapping: Mapping, opportunity: ObjectDescription) -> RecordTypeInfo | None:
    """The record type cosell creates opportunities with, when the org has record types.

    The mapping's `record_type` (by developer name, available to the user), else the user's
    default one; None when the org has only Master (or the named one is not available).
    """
    if mapping.record_type is not None:
        found = opportunity.record_type(mapping.record_type)
        return found if found is not None and found.available and not found.master else None
    default = opportunity.default_record_type
    return default if default is not None and not default.master else None


def _example_value(field: FieldDescription) -> str:
    """A value to show in a suggested `defaults` entry for a field."""
    if field.type == "picklist" and field.active_values:
        return field.active_values[0]
    if field.type == "boolean":
        return "false"
    if field.type in ("double", "currency", "percent", "int"):
        return "0"
    if field.type == "date":
        return "2026-01-01"
    return "<value>"


def _stage_loc(key: str) -> Loc:
    """The place of a stage table key such as `won_stage` or `other_lost_stages[1]`."""
    name, _, index = key.partition("[")
    return ("stages", name, int(index.rstrip("]"))) if index else ("stages", name)


def check_mapping(
    mapping: Mapping,
    describe: Callable[[str], ObjectDescription],
    *,
    lead_sync: bool = False,
    record_type_values: AbcMapping[str, AbcMapping[str, tuple[str, ...]]] | None = None,
) -> list[Problem]:
    """Every problem of a mapping against the org's schema and the referral model.

    Args:
        mapping: a loaded mapping (its places point into its file).
        describe: the description of an object by name (`Opportunity`, `Account`, and `Lead`
            with lead sync); raises `LookupError` (e.g. `KeyError`) for an object the org
            does not have.
        lead_sync: also check the lead section (`[sync] lead_sync` is on): its fields as
            above on `Lead`, its statuses as active `Lead.Status` values, `Lead`'s required
            fields mapped, cosell's own fields present on `Lead`.
        record_type_values: picklist values per Opportunity record type id (field -> values,
            `SalesforceClient.picklist_values`): at least those of `creates_record_type(...)`,
            to check the stage table against its sales process, and of the others to suggest
            one that fits. None: the sales process is not checked.

    Returns:
        The problems, each with its place; empty when the mapping fits the org.
    """
    checker = _Checker(mapping, describe)
    checker.record_type_values = record_type_values or {}
    problems = checker.run()
    if lead_sync:
        lead = mapping.lead_mapping()
        if lead is None or mapping.lead is None:
            problems.append(
                Problem(
                    mapping.source,
                    "lead sync is on ([sync] lead_sync) but the mapping has no lead section; "
                    "add one (copy it from the default mapping) or turn lead sync off",
                )
            )
        else:
            checker = _Checker(lead, describe, prefix=("lead",))
            problems += checker.run_lead(mapping.lead.statuses.names())
    return problems
