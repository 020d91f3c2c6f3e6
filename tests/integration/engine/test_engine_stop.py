"""A worker stops cleanly: nothing is submitted to DBOS after it is destroyed, no error logged.

A scheduled poll still running when the service stops (the demo's and the bench workers' exit)
used to record its step through DBOS's executor after `DBOS.destroy` had shut it: a logged
"cannot schedule new futures after shutdown" traceback, though the exit status was 0.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from dbos import DBOS
from engine_kit import HookedClock, dry_run_factory, sandbox_world
from sync_world import World

from cosell.sync.engine import workflows as engine_module
from cosell.sync.engine.backoff import BackoffPolicy
from cosell.sync.engine.config import EngineOptions
from cosell.sync.engine.core import Engine

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, engine_key_dir: Path
) -> AsyncIterator[World]:
    async with sandbox_world(tmp_path_factory.mktemp("engine-stop"), engine_key_dir) as built:
        yield built


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


async def test_a_worker_stopping_during_a_scheduled_poll_logs_no_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = EngineOptions(
        queue_polling_seconds=0.02,
        poll_interval_seconds=3600,  # the test starts the poll; the schedules stay out of the way
        sweep_interval_seconds=86400,
        backoff=BackoffPolicy(rng=random.Random(5)),
    )
    engine = Engine(
        None,
        store=world.store,
        context_factory=dry_run_factory(world),
        clock=HookedClock(),
        options=options,
    )
    in_step = asyncio.Event()
    go_on = asyncio.Event()
    polled: list[str] = []
    original: Callable[[str], Awaitable[Any]] = engine_module.poll_step

    async def held_poll(side: str) -> Any:
        in_step.set()
        await go_on.wait()  # the service is told to stop while the poll is mid-way
        found = await original(side)
        polled.append(side)
        return found

    monkeypatch.setattr(engine_module, "poll_step", held_poll)
    errors = _Errors()
    watched = [logging.getLogger(), logging.getLogger("dbos")]
    for logger in watched:
        logger.addHandler(errors)
    try:
        await engine.start(background=True)
        await DBOS.start_workflow_async(
            engine_module.poll_salesforce_workflow, datetime.now(UTC), None
        )
        await asyncio.wait_for(in_step.wait(), 10)
        stopping = asyncio.create_task(engine.stop(grace_seconds=10))
        await asyncio.sleep(0)  # the stop has begun
        go_on.set()
        await asyncio.wait_for(stopping, 30)
    finally:
        for logger in watched:
            logger.removeHandler(errors)
    assert polled == ["salesforce"]  # the running poll ended its step before DBOS went
    assert errors.lines == []
