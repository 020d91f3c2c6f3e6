"""The run layer's two entry points as one object: what the engine runs (`engine.Reconciler`)."""

from __future__ import annotations

from collections.abc import Sequence

from cosell.store.types import Key
from cosell.sync.io.context import SyncContext
from cosell.sync.plan.outcome import Outcome
from cosell.sync.run import batch, reconcile


class Pipeline:
    """Reconcile one key (`run.reconcile`) or up to 200 (`run.batch`): the same stages."""

    async def reconcile_key(self, ctx: SyncContext, key: Key, /) -> Outcome:
        """See `run.reconcile.reconcile_key`."""
        return await reconcile.reconcile_key(ctx, key)

    async def reconcile_batch(self, ctx: SyncContext, keys: Sequence[Key], /) -> list[Outcome]:
        """See `run.batch.reconcile_batch`."""
        return await batch.reconcile_batch(ctx, keys)


PIPELINE = Pipeline()
