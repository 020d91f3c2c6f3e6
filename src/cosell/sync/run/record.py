"""Record: the last stage of a reconcile, one store transaction for one key or a whole batch.

A crash before it leaves both sides written and the store as it was: the next reconcile reads
both sides, finds them equal and records then (the writes are idempotent by the merge). A
crash inside it stores nothing of it. So there is never half a record.
"""

from __future__ import annotations

from collections.abc import Iterable

from cosell.store.types import Record
from cosell.sync.io.context import SyncContext


def record(ctx: SyncContext, records: Iterable[Record | None]) -> None:
    """Store what the reconciles did, in one transaction (nothing in a dry run).

    Args:
        ctx: the context (its store; failpoints `before-record` and `after-record`).
        records: one per reconcile that has something to record (None: nothing).

    Raises:
        FailpointError: a test's failpoint fired.
    """
    wanted = [r for r in records if r is not None]
    if ctx.dry_run or not wanted:
        return
    ctx.failpoint("before-record")
    ctx.store.record(wanted)
    ctx.failpoint("after-record")
