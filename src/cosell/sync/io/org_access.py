"""Field-level security that refuses a field for every record: raised once, never parked.

`raise_if_org_wide` reads the object's describe as the integration user sees it (cached by
the client: usually no call) and raises `OrgFieldAccessError` when the refused fields are
hidden from the user or read-only to it (`plan.org_refusals.org_wide`). The reads call it for
a query the org refuses with INVALID_FIELD (a hidden field fails every read), the writes for a
refused write (`run.refused`).
"""

from __future__ import annotations

import structlog

from cosell.salesforce import errors as sf_errors
from cosell.salesforce.schema import ObjectDescription
from cosell.sync.io.context import SyncContext
from cosell.sync.plan.org_refusals import org_wide

log = structlog.get_logger(__name__)


async def describe(ctx: SyncContext, sobject: str) -> ObjectDescription | None:
    """The object's describe, or None when it cannot be read (the refusal stays the deal's)."""
    try:
        return await ctx.salesforce.describe(sobject)
    except sf_errors.SalesforceError as exc:
        log.warning("sync.refusal.describe_unread", sobject=sobject, error=str(exc))
        return None


async def raise_if_org_wide(
    ctx: SyncContext,
    error: sf_errors.SalesforceError,
    sobject: str,
    *,
    creating: bool = False,
    description: ObjectDescription | None = None,
) -> ObjectDescription | None:
    """Raise `OrgFieldAccessError` when field-level security refuses the field for every record.

    Args:
        ctx: the context.
        error: the refusal.
        sobject: the object read or written.
        creating: the write was a create.
        description: the describe when already read.

    Returns:
        The describe (None when unreadable), for the caller's message.

    Raises:
        OrgFieldAccessError: the fields are hidden from, or read-only to, the integration user.
    """
    if description is None:
        description = await describe(ctx, sobject)
    wide = org_wide(error, sobject, description, creating=creating)
    if wide is not None:
        log.error("sync.org_field_access", sobject=sobject, fields=wide.fields, error=str(wide))
        raise wide from error
    return description
