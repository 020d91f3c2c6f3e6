"""What a customised Salesforce org's refusal of a write means, and what to tell the admin.

A partner's org refuses writes a clean org accepts (issue 16): validation rules
(FIELD_CUSTOM_VALIDATION_EXCEPTION), required custom fields (REQUIRED_FIELD_MISSING), restricted
picklists and the stages a record type's sales process allows
(INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST), duplicate rules (DUPLICATES_DETECTED), and
field-level security (INVALID_FIELD_FOR_INSERT_UPDATE for a read-only field, INVALID_FIELD for
a hidden one). They are sorted by scope (DESIGN.md, "Failures, by scope"):

- **One deal.** A rule, a required field, a picklist value or a duplicate concerns the record
  written: `deal_refusal` says which field, quotes the org's own message and says what to do;
  the deal is parked and tried again when it changes. Nothing else is affected.
- **Every deal.** A field the integration user cannot see or edit *at all* (describe agrees:
  absent, or not createable/updateable) refuses every record the same way: `org_wide` turns it
  into one `OrgFieldAccessError` for the engine to report once, and no deal is parked for it.
  A refusal of a field describe says is writable (a per-record lock, a record type's layout)
  stays the deal's problem.

Pure: the caller reads the describe (cached by the client) and the allowed picklist values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cosell.salesforce import errors as sf_errors
from cosell.salesforce.schema import ObjectDescription
from cosell.sync.plan.errors import OrgFieldAccessError

RESTRICTED_PICKLIST = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
INVALID_FIELD = "INVALID_FIELD"
RETRIED = "cosell tries again when the record changes"

_NO_SUCH_COLUMN = re.compile(r"No such column '([A-Za-z0-9_]+)'")
_ON_ENTITY = re.compile(
    r"No such column '[A-Za-z0-9_]+' on (?:entity '|sobject of type )([A-Za-z0-9_]+)"
)
_MAX_VALUES = 20  # allowed values listed in a message (Sync Error holds 255 characters)


def refused_fields(error: sf_errors.SalesforceError) -> tuple[str, ...]:
    """The fields a refusal names (`fields`, else the column an INVALID_FIELD message names)."""
    if error.fields:
        return error.fields
    return tuple(_NO_SUCH_COLUMN.findall(error.message))


def refused_object(error: sf_errors.SalesforceError, default: str) -> str:
    """The object an INVALID_FIELD message names (a query's `Account.` path), else `default`."""
    found = _ON_ENTITY.search(error.message)
    return found.group(1) if found else default


def org_wide(
    error: sf_errors.SalesforceError,
    sobject: str,
    description: ObjectDescription | None,
    *,
    creating: bool = False,
) -> OrgFieldAccessError | None:
    """The org-wide problem behind a refusal, or None when it concerns only this record.

    Args:
        error: the refusal.
        sobject: the object written.
        description: its describe as the integration user sees it (None: unknown, so the
            refusal is taken as the record's problem).
        creating: the write was a create (createable is checked instead of updateable).

    Returns:
        An `OrgFieldAccessError` naming the fields and the fix, when field-level security
        hides them or makes them read-only for the integration user; else None.
    """
    hidden = (error.error_code or "").upper() == INVALID_FIELD
    if description is None or not (hidden or isinstance(error, sf_errors.FieldNotWritableError)):
        return None
    names = refused_fields(error)
    invisible = tuple(n for n in names if description.field(n) is None)
    locked = tuple(
        n
        for n in names
        if (found := description.field(n)) is not None
        and not (found.createable if creating else found.updateable)
    )
    if invisible:
        listed = ", ".join(f"{sobject}.{n}" for n in invisible)
        return OrgFieldAccessError(
            f"Salesforce hides {listed} from cosell's integration user (field-level security), "
            "so no deal can be written: give the integration user's profile or permission set "
            "read and edit access to the field, or remove it from the mapping "
            "(`cosell check` lists every such field)",
            sobject=sobject,
            fields=invisible,
            hidden=True,
        )
    if locked:
        listed = ", ".join(f"{sobject}.{n}" for n in locked)
        return OrgFieldAccessError(
            f"{listed} is read-only for cosell's integration user (field-level security), so "
            "no deal can be written: give the integration user edit access to the field, or "
            "map it `direction: to_partner_center` (`cosell check` lists every such field)",
            sobject=sobject,
            fields=locked,
            hidden=False,
        )
    return None


def deal_refusal(
    error: sf_errors.SalesforceError,
    sobject: str,
    *,
    allowed: Sequence[str] | None = None,
    record_type: str | None = None,
) -> str:
    """The parked message for a write the org refused for this record.

    It names the field, quotes the org's own message and says what to do.

    Args:
        error: the refusal (a terminal error of the Salesforce client).
        sobject: the object written.
        allowed: for a restricted picklist, the values the field allows for the record.
        record_type: the record type whose values `allowed` are, if the org has record types.

    Returns:
        A message for the seller and the admin.
    """
    names = refused_fields(error)
    where = ", ".join(f"{sobject}.{n}" for n in names)
    said = error.message.strip()
    if isinstance(error, sf_errors.CustomValidationError):
        on = f" on {where}" if where else ""
        return (
            f'a validation rule of the org refused the {sobject}{on}: "{said}". Change the '
            "deal so the rule passes, or ask the Salesforce admin to exempt cosell's "
            f"integration user from the rule; {RETRIED}"
        )
    if isinstance(error, sf_errors.RequiredFieldMissingError):
        first = names[0] if names else "<Field>"
        return (
            f'the org requires {where or "a field"} on {sobject}: "{said}". Fill it on the '
            f"record, or give it a value in the mapping (`defaults: {{{sobject}.{first}: "
            f"<value>}}`); {RETRIED}"
        )
    if (error.error_code or "").upper() == RESTRICTED_PICKLIST:
        values = list(allowed or ())
        shown = ", ".join(values[:_MAX_VALUES]) + (", ..." if len(values) > _MAX_VALUES else "")
        of = f" of record type {record_type}" if record_type else ""
        listed = f"; {where or 'the field'}{of} allows: {shown}" if values else ""
        return (
            f'{where or sobject} does not accept the value cosell wrote: "{said}"{listed}. '
            "Map the value to an allowed one (the mapping's stage table or value map), or "
            f"change the record type; {RETRIED}"
        )
    if isinstance(error, sf_errors.FieldNotWritableError):
        return (
            f"Salesforce did not let cosell's integration user write {where or 'a field'} on "
            f'this record: "{said}". Ask the Salesforce admin for edit access to it; '
            f"{RETRIED}"
        )
    if isinstance(error, sf_errors.DuplicatesDetectedError):
        rule = f" ({error.duplicate_rule})" if error.duplicate_rule else ""
        return (
            f'a duplicate rule{rule} refused the {sobject}: "{said}", and named no existing '
            "record cosell could link instead. Merge the duplicates in Salesforce or ask the "
            f"admin about the rule; {RETRIED}"
        )
    return str(error)
