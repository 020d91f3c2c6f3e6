"""`/readyz`'s database check is `Store.health`: a deleted store file makes the service unready."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx

from cosell.clock import ManualClock
from cosell.commands.serve import readiness_checks
from cosell.config import Settings
from cosell.server.readiness import Readiness
from cosell.store import Store


def _delete(folder: Path, name: str) -> None:
    for leftover in folder.glob(name + "*"):  # the file, its -wal and -shm
        leftover.unlink()


async def test_a_deleted_store_file_makes_readyz_fail_with_the_reason(tmp_path: Path) -> None:
    clock = ManualClock()
    store = Store.open(f"sqlite:///{tmp_path / 'cosell.db'}", clock=clock)
    try:
        async with httpx.AsyncClient() as http:
            checks = readiness_checks(
                Settings(), store=store, ctx=cast(Any, None), pc_http=http, clock=clock
            )
            (database,) = [c for c in checks if c.name == "database"]
            readiness = Readiness([database], clock=clock)
            ready, body = await readiness.run()
            assert ready, body
            assert body["checks"]["database"]["detail"] == "sqlite reachable and writable"
            _delete(tmp_path, "cosell.db")
            ready, body = await readiness.run()
            assert not ready
            detail = body["checks"]["database"]["detail"]
            assert detail.startswith("StoreUnavailableError: the SQLite store")
            assert "was deleted while cosell had it open" in detail
    finally:
        store.close()
