"""A write the Salesforce org refused: one deal's problem (a message to park) or everyone's.

`salesforce_refusal` reads what `plan.org_refusals` needs to tell the two apart and to say
what to do: the object's describe (cached by the client, so usually no call) and, for a
restricted picklist, the values the record's record type allows (the UI API, one call, only
on this error path). An org-wide cause (field-level security) is raised as
`OrgFieldAccessError`; everything else comes back as the message to park the deal with.
"""

from __future__ import annotations

import structlog

from cosell.salesforce import errors as sf_errors
from cosell.sync.io.context import ApiCalls, SyncContext
from cosell.sync.io.org_access import raise_if_org_wide
from cosell.sync.plan.org_refusals import RESTRICTED_PICKLIST, deal_refusal
from cosell.sync.run.park import raise_if_global

log = structlog.get_logger(__name__)


async def salesforce_refusal(
    ctx: SyncContext,
    error: sf_errors.SalesforceError,
    sobject: str,
    calls: ApiCalls,
    *,
    record_id: str | None = None,
    record_type_id: str | None = None,
    creating: bool = False,
) -> str:
    """The message to park a deal with for a write Salesforce refused.

    Args:
        ctx: the context.
        error: the refusal.
        sobject: the object written.
        calls: counts API calls.
        record_id: the record written (to read its record type for a picklist refusal).
        record_type_id: the record type written, when known (a create).
        creating: the write was a create.

    Returns:
        The field, the org's message and what to do.

    Raises:
        OrgFieldAccessError: field-level security refuses the field for every record.
        SideFailureError: the refusal is the connection's (`plan.scope`: a field the org does
            not have, a permission, the credentials), not this deal's.
    """
    raise_if_global(error)
    description = await raise_if_org_wide(ctx, error, sobject, creating=creating)
    if (error.error_code or "").upper() != RESTRICTED_PICKLIST or not error.fields:
        return deal_refusal(error, sobject)
    field = error.fields[0]
    allowed: tuple[str, ...] = ()
    record_type: str | None = None
    if description is not None:
        described = description.field(field)
        allowed = described.active_values if described is not None else ()
        typed = [i for i in description.record_type_infos if not i.master]
        if typed:
            try:
                if record_type_id is None and record_id is not None:
                    calls.salesforce += 1
                    row = await ctx.salesforce.get(sobject, record_id, ["RecordTypeId"])
                    record_type_id = row.get("RecordTypeId")
                info = description.record_type(record_type_id) if record_type_id else None
                if info is not None:
                    calls.salesforce += 1
                    values = await ctx.salesforce.picklist_values(sobject, info.record_type_id)
                    allowed = values.get(field, allowed)
                    record_type = info.developer_name
            except sf_errors.SalesforceError as exc:  # the message is still useful without them
                log.warning("sync.refusal.values_unread", sobject=sobject, error=str(exc))
    return deal_refusal(error, sobject, allowed=allowed, record_type=record_type)
