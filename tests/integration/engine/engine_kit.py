"""Helpers of the engine tests: a scripted reconciler and a way to run one engine per module.

DBOS is one per process, so a test module starts one `Engine` (module-scoped fixture, on the
module's event loop, which DBOS adopts as the loop its async workflows run on) and its tests
share it; the scripted reconciler is reset before each test. Waiting for a background
workflow is waiting on an `asyncio.Queue` the reconciler feeds, never a sleep.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sync_world import (
    World,
    build_world,
)

from cosell.clock import ManualClock
from cosell.store.types import Key
from cosell.sync.io.context import SyncContext
from cosell.sync.plan.outcome import Outcome

Hook = Callable[[str], Awaitable[Outcome | None]]


@dataclass
class ScriptedReconciler:
    """Records every reconcile (start, end, concurrency per key) and runs per-key hooks.

    A hook may block (await an event), raise (a retriable error) or return an outcome; None
    from a hook means "unchanged".
    """

    hooks: dict[str, Hook] = field(default_factory=dict)
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    active: Counter[str] = field(default_factory=Counter)
    max_active: Counter[str] = field(default_factory=Counter)
    running: int = 0
    max_running: int = 0
    events: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)

    def reset(self) -> None:
        self.hooks.clear()
        self.calls.clear()
        self.active.clear()
        self.max_active.clear()
        self.running = self.max_running = 0
        self.events = asyncio.Queue()

    async def _one(self, key: str) -> Outcome:
        self.active[key] += 1
        self.max_active[key] = max(self.max_active[key], self.active[key])
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.events.put_nowait(("start", key))
        try:
            hook = self.hooks.get(key)
            outcome = await hook(key) if hook is not None else None
        finally:
            self.active[key] -= 1
            self.running -= 1
            self.events.put_nowait(("end", key))
        return outcome or Outcome(key=key, link_id=None, result="unchanged", api_calls=2)

    async def reconcile_key(self, ctx: Any, key: Key) -> Outcome:
        self.calls.append(("key", (key,)))
        return await self._one(key)

    async def reconcile_batch(self, ctx: Any, keys: Sequence[Key]) -> list[Outcome]:
        self.calls.append(("batch", tuple(keys)))
        return [await self._one(key) for key in keys]

    async def next_event(self, within: float = 10.0) -> tuple[str, str]:
        return await asyncio.wait_for(self.events.get(), within)

    async def wait_for(self, kind: str, key: str, within: float = 10.0) -> None:
        while True:
            event = await self.next_event(within)
            if event == (kind, key):
                return


class HookedClock(ManualClock):
    """A ManualClock that also calls `on_sleep` (if set) with each sleep's length."""

    on_sleep: Callable[[float], None] | None = None

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


def fixed_context(ctx: Any) -> Callable[[bool], Any]:
    """A context factory that yields `ctx` whatever the dry run (for a scripted reconciler)."""

    @asynccontextmanager
    async def factory(dry_run: bool) -> AsyncIterator[Any]:
        yield ctx

    return factory


# Both sandboxes in process with a store: the same world the sync tests use.
sandbox_world = build_world


def dry_run_factory(world: World) -> Callable[[bool], Any]:
    """The context factory of an engine over `world`: its context, dry run as asked."""

    @asynccontextmanager
    async def factory(dry_run: bool) -> AsyncIterator[SyncContext]:
        yield replace(world.ctx, dry_run=dry_run)

    return factory
