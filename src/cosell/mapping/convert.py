"""Reading canonical values from both sides, and turning canonical changes into writes.

Read side (what the merge compares):

- `partner_center_values(mapping, referral)`: the referral's JSON (camelCase, as the API
  returns it) -> `{field: Value}` for every mapped field; a missing or null member, or a
  missing parent object, reads as None (False for booleans).
- `salesforce_values(mapping, records)`: the wire records -> `{field: Value}`. `records` maps
  a role to a record: `"Opportunity"`, and `"Account"` (the opportunity's account); when the
  `"Account"` key is absent the opportunity's nested `Account` (from a SOQL `Account.Name`
  path) is used. A missing record reads as all None.
- `salesforce_query_fields(mapping)`: what to SELECT so that the above has what it needs.

Write side (what the reconcile sends):

- `partner_center_operations`: canonical changes -> JSON Patch operations (RFC 6902, only
  `replace` and `add`). A member whose parent object is absent (or null) in the referral is
  written as one `add` of the parent holding every such member; a member absent from an existing
  parent is `add`ed; an existing member is `replace`d. The stage writes `status` and
  `substatus`, plus `statusReason` when the referral is closed as lost or declined; closing as
  lost a referral that was never accepted (status New) declines it, as Partner Center allows.
- `salesforce_updates`: canonical changes -> `{role: {Field: wire value}}`; a stage change
  that the current StageName already means is left out.
- `new_referral_body` / `new_salesforce_records`: the create payloads, with the mapping's
  defaults for missing values.

Every function is pure; a value that cannot be converted raises `ValueMappingError` naming the
field.
"""

from __future__ import annotations

from collections.abc import Mapping as AbcMapping
from datetime import date
from typing import Any

from pydantic import ValidationError

from cosell.mapping.model import ACCOUNT, OPPORTUNITY, FieldMapping, Mapping
from cosell.mapping.referral_paths import referral_paths
from cosell.mapping.transforms import ValueMappingError
from cosell.mapping.types import Value
from cosell.partnercenter.models import NewReferral

SalesforceRecords = dict[str, dict[str, Any] | None]
"""Role (`"Opportunity"`, `"Account"`) -> a Salesforce wire record, or None when there is none."""

RECORD_FIELDS = ("Id", "LastModifiedDate", "SystemModstamp")
"""Fields every query selects: identity and the concurrency-control timestamps."""

_WON_OR_LOST = ("Lost", "Declined")


def _pointer(document: AbcMapping[str, Any] | None, path: tuple[str, ...]) -> Any:
    node: Any = document
    for segment in path:
        if isinstance(node, list) and segment.isdigit():  # `team/0/email`: a list's item
            node = node[int(segment)] if int(segment) < len(node) else None
            continue
        if not isinstance(node, AbcMapping):
            return None
        node = node.get(segment)
    return node


def _wire(record: AbcMapping[str, Any] | None, field: str) -> Any:
    if record is None:
        return None
    if field in record:
        return record[field]
    lowered = field.lower()
    return next((v for k, v in record.items() if k.lower() == lowered), None)


def _failed(mapped: FieldMapping, side: str, exc: ValueMappingError) -> ValueMappingError:
    where = mapped.partner_center if side == "Partner Center" else mapped.salesforce or "-"
    return ValueMappingError(f"field {mapped.name!r} ({side} {where}): {exc}")


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    result = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            result.append(name)
    return result


def salesforce_query_fields(mapping: Mapping) -> dict[str, list[str]]:
    """The fields to SELECT per role.

    The Opportunity list has `Id`, `LastModifiedDate`, `SystemModstamp`, `AccountId`, the
    opportunity fields cosell writes itself, the mapped opportunity fields, and
    `Account.<Field>` for the mapped account fields (one query reads both). The Account list is
    for reading an account on its own.

    Args:
        mapping: the mapping.

    Returns:
        `{"Opportunity": [...], "Account": [...]}`.
    """
    opportunity = [*RECORD_FIELDS, "AccountId", *mapping.opportunity.names().values()]
    opportunity += [f.sf_field for f in mapping.fields_on(OPPORTUNITY)]
    account_fields = [f.sf_field for f in mapping.fields_on(ACCOUNT)]
    opportunity += [f"{ACCOUNT}.{name}" for name in account_fields]
    return {
        OPPORTUNITY: _unique(opportunity),
        ACCOUNT: _unique([*RECORD_FIELDS, *account_fields]),
    }


def partner_center_values(mapping: Mapping, referral: AbcMapping[str, Any]) -> dict[str, Value]:
    """The canonical value of every mapped field, read from a referral.

    Args:
        mapping: the mapping.
        referral: the referral's JSON, camelCase (as the API returns it, or
            `Referral.model_dump(by_alias=True, mode="json")`).

    Returns:
        Field name -> canonical value, for every field of the mapping.

    Raises:
        ValueMappingError: a value cannot be read (the message names the field).
    """
    values: dict[str, Value] = {}
    for mapped in mapping.fields:
        try:
            if mapped.is_stage:
                values[mapped.name] = mapping.stages.from_partner_center(
                    referral.get("status"), referral.get("substatus")
                )
            else:
                # A deal type is derived from the whole referral (consent and help requested).
                raw = referral if mapped.is_deal_type else _pointer(referral, mapped.path)
                values[mapped.name] = mapped.simple_transform.from_partner_center(raw)
        except ValueMappingError as exc:
            raise _failed(mapped, "Partner Center", exc) from None
    return values


def _records(records: AbcMapping[str, AbcMapping[str, Any] | None], role: str) -> Any:
    if role in records:
        return records[role]
    if role == ACCOUNT:
        nested = _wire(records.get(OPPORTUNITY), ACCOUNT)
        return nested if isinstance(nested, AbcMapping) else None
    return None


def salesforce_values(
    mapping: Mapping, records: AbcMapping[str, AbcMapping[str, Any] | None]
) -> dict[str, Value]:
    """The canonical value of every mapped field, read from Salesforce records.

    Args:
        mapping: the mapping.
        records: role -> wire record (see `SalesforceRecords`).

    Returns:
        Field name -> canonical value, for every field of the mapping.

    Raises:
        ValueMappingError: a value cannot be read (the message names the field).
    """
    values: dict[str, Value] = {}
    for mapped in mapping.fields:
        if mapped.is_constant:
            values[mapped.name] = mapped.default_value
            continue
        raw = _wire(_records(records, mapped.sobject), mapped.sf_field)
        try:
            if mapped.is_stage:
                values[mapped.name] = mapping.stages.from_salesforce(raw)
            else:
                values[mapped.name] = mapped.simple_transform.from_salesforce(raw)
        except ValueMappingError as exc:
            raise _failed(mapped, "Salesforce", exc) from None
    return values


def _ordered(mapping: Mapping, changes: AbcMapping[str, Value]) -> list[FieldMapping]:
    for name in changes:
        mapping.field(name)  # raises KeyError naming the unknown field
    return [f for f in mapping.fields if f.name in changes]


def partner_center_operations(
    mapping: Mapping,
    changes: AbcMapping[str, Value],
    referral: AbcMapping[str, Any],
    *,
    values: AbcMapping[str, Value] | None = None,
) -> list[dict[str, Any]]:
    """JSON Patch operations that write canonical changes to a referral.

    Args:
        mapping: the mapping.
        changes: field name -> new canonical value (fields that flow to Partner Center).
        referral: the referral's JSON as read in this reconcile (for parents that are absent,
            and for the current status: losing a New referral declines it).
        values: the Salesforce side's canonical values, to find the loss reason in the stage
            table's `reason_field` when it did not change.

    Returns:
        The operations, in mapping order; empty when `changes` is.

    Raises:
        ValueMappingError: a field maps to a member Partner Center does not let partners write,
            or a value cannot be converted.
        KeyError: `changes` names a field the mapping lacks.
    """
    known = referral_paths()
    writes: dict[tuple[str, ...], Any] = {}
    for mapped in _ordered(mapping, changes):
        value = changes[mapped.name]
        if mapped.is_stage:
            writes |= _stage_writes(mapping, value, referral, changes, values or {})
            continue
        described = known.get(mapped.partner_center)
        if described is not None and not described.updatable:
            raise ValueMappingError(
                f"field {mapped.name!r}: Partner Center does not let partners change "
                f"{mapped.partner_center}; map it to_salesforce only"
            )
        try:
            writes.setdefault(mapped.path, mapped.simple_transform.to_partner_center(value))
        except ValueMappingError as exc:
            raise _failed(mapped, "Partner Center", exc) from None
    return _patch(referral, writes)


def _stage_writes(
    mapping: Mapping,
    value: Value,
    referral: AbcMapping[str, Any],
    changes: AbcMapping[str, Value],
    values: AbcMapping[str, Value],
) -> dict[tuple[str, ...], Any]:
    stages = mapping.stages
    status, substatus = stages.to_partner_center(value)
    current = str(referral.get("status") or "")
    if status == "Closed" and substatus == "Lost" and current.lower() == "new":
        substatus = "Declined"  # a referral never accepted is declined, not lost (spec §3.3)
    writes: dict[tuple[str, ...], Any] = {("status",): status, ("substatus",): substatus}
    if status == "Closed" and substatus in _WON_OR_LOST:
        reason: Value = None
        if stages.reason_field is not None:
            reason = changes.get(stages.reason_field, values.get(stages.reason_field))
        default = stages.declined_reason if substatus == "Declined" else stages.lost_reason
        writes[("statusReason",)] = reason if isinstance(reason, str) and reason else default
    return writes


def _patch(
    referral: AbcMapping[str, Any], writes: AbcMapping[tuple[str, ...], Any]
) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    created: dict[tuple[str, ...], dict[str, Any]] = {}
    for path, value in writes.items():
        node: Any = referral
        missing = None
        for depth, segment in enumerate(path[:-1]):
            child = node.get(segment) if isinstance(node, AbcMapping) else None
            if not isinstance(child, AbcMapping):
                missing = depth
                break
            node = child
        if missing is None:
            op = "replace" if isinstance(node, AbcMapping) and path[-1] in node else "add"
            ops.append({"op": op, "path": "/" + "/".join(path), "value": value})
            continue
        parent = path[: missing + 1]
        if parent not in created:
            created[parent] = {}
            ops.append({"op": "add", "path": "/" + "/".join(parent), "value": created[parent]})
        target = created[parent]
        for segment in path[missing + 1 : -1]:
            target = target.setdefault(segment, {})
        target[path[-1]] = value
    return ops


def salesforce_updates(
    mapping: Mapping,
    changes: AbcMapping[str, Value],
    records: AbcMapping[str, AbcMapping[str, Any] | None],
) -> dict[str, dict[str, Any]]:
    """The Salesforce field values that write canonical changes, per role.

    Args:
        mapping: the mapping.
        changes: field name -> new canonical value (fields that flow to Salesforce).
        records: the records as read in this reconcile (the stage keeps the current StageName
            when it already means the new value).

    Returns:
        Role -> {Field: wire value}; roles with nothing to write are left out.

    Raises:
        ValueMappingError: a value cannot be converted (the message names the field).
        KeyError: `changes` names a field the mapping lacks.
    """
    updates: dict[str, dict[str, Any]] = {}
    for mapped in _ordered(mapping, changes):
        if mapped.is_constant:
            continue  # nothing in Salesforce holds it
        value = changes[mapped.name]
        try:
            if mapped.is_stage:
                current = _wire(_records(records, mapped.sobject), mapped.sf_field)
                wire = mapping.stages.to_salesforce(value, current)
                if wire == current:
                    continue
            else:
                wire = mapped.simple_transform.to_salesforce(value)
        except ValueMappingError as exc:
            raise _failed(mapped, "Salesforce", exc) from None
        updates.setdefault(mapped.sobject, {})[mapped.sf_field] = wire
    return updates


def _with_default(
    mapped: FieldMapping, values: AbcMapping[str, Value], today: date | None = None
) -> Value:
    value = values.get(mapped.name)
    if value is not None:
        return value
    return mapped.default_value if today is None else mapped.default_on(today)


def new_referral_body(
    mapping: Mapping,
    values: AbcMapping[str, Value],
    *,
    external_reference_id: str,
    share_with_microsoft: bool,
) -> dict[str, Any]:
    """The POST body of a referral created from an opportunity.

    Every mapped field whose Partner Center member may be set on create is included (the
    customer's name and address too, though they flow to Salesforce afterwards), with the
    field's default when the value is None. The stage is not sent: Partner Center stores a
    partner's own referral as Active/Accepted. What the mapping does not hold is the caller's
    to add: the solutions (`details.requirements.solutions`, from Microsoft_Solution__c rows)
    and the customer contact (`customerProfile.team`), which co-sell requires.

    Args:
        mapping: the mapping.
        values: the opportunity's canonical values (`salesforce_values`).
        external_reference_id: the opportunity's id (how an interrupted create is recovered).
        share_with_microsoft: share with Microsoft sellers (type Shared, consent given).

    Returns:
        The body, checked against what Partner Center requires on create.

    Raises:
        ValueMappingError: a required part is missing or invalid (the message says which).
    """
    known = referral_paths()
    body: dict[str, Any] = {
        "type": "Shared" if share_with_microsoft else "Independent",
        "qualification": "SalesQualified",
        "externalReferenceId": external_reference_id,
        "consent": {},
        "customerProfile": {},
        "details": {},
    }
    for mapped in mapping.fields:
        described = known.get(mapped.partner_center)
        if mapped.is_stage or described is None or not described.creatable:
            continue
        value = _with_default(mapped, values)
        if value is None:
            continue
        try:
            wire = mapped.simple_transform.to_partner_center(value)
        except ValueMappingError as exc:
            raise _failed(mapped, "Partner Center", exc) from None
        node = body
        for segment in mapped.path[:-1]:
            node = node.setdefault(segment, {})
        node[mapped.path[-1]] = wire
    if share_with_microsoft:
        body["consent"]["consentToShareReferralWithMicrosoftSellers"] = True
    try:
        return NewReferral.model_validate(body).to_json()
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'/'.join(str(p) for p in e['loc']) or 'referral'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueMappingError(
            f"the opportunity cannot become a referral: {reasons}. Fill in the opportunity "
            "(or its account), or give the field a default in the mapping"
        ) from None


def new_salesforce_records(
    mapping: Mapping,
    values: AbcMapping[str, Value],
    *,
    referral_id: str,
    referral_link: str,
    today: date | None = None,
) -> SalesforceRecords:
    """The fields of an opportunity (and its account) created from a referral.

    Every mapped field is written whatever its direction (the record is new), with the field's
    default when the value is None; None values are left out. The mapping's `defaults` fill
    the fields no mapped field maps. The opportunity also gets the referral id and link and the
    sync checkbox ticked.

    Args:
        mapping: the mapping.
        values: the referral's canonical values (`partner_center_values`).
        referral_id: the referral's id (the upsert key).
        referral_link: the referral's page in Partner Center.
        today: the creation day, for relative date defaults (`default_days_from_today`).

    Returns:
        `{"Opportunity": {...}, "Account": {...} or None}`.

    Raises:
        ValueMappingError: a value cannot be converted (the message names the field).
    """
    records: dict[str, dict[str, Any]] = {OPPORTUNITY: {}, ACCOUNT: {}}
    for mapped in mapping.fields:
        value = _with_default(mapped, values, today)
        if value is None or mapped.is_constant:
            continue
        try:
            if mapped.is_stage:
                wire = mapping.stages.to_salesforce(value, None)
            else:
                wire = mapped.simple_transform.to_salesforce(value)
        except ValueMappingError as exc:
            raise _failed(mapped, "Salesforce", exc) from None
        if wire is not None:
            records[mapped.sobject][mapped.sf_field] = wire
    for sobject in (OPPORTUNITY, ACCOUNT):
        if records[sobject] or sobject == OPPORTUNITY:  # no account without a mapped value
            records[sobject] = mapping.create_defaults(sobject) | records[sobject]
    own = mapping.opportunity
    records[OPPORTUNITY] |= {
        own.referral_id: referral_id,
        own.referral_link: referral_link,
        own.sync: True,
    }
    return {OPPORTUNITY: records[OPPORTUNITY], ACCOUNT: records[ACCOUNT] or None}
