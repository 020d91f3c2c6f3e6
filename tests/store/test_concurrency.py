"""Idempotent verbs hold under real concurrency: threads on separate connections, both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cosell.clock import ManualClock
from cosell.store import Store

T = TypeVar("T")
WORKERS = 6  # concurrent callers: more than one pool connection, well under server limits


def _race(work: Callable[[int], T]) -> list[T]:
    # The timeout only matters when a worker fails: the others then stop waiting for it.
    barrier = threading.Barrier(WORKERS, timeout=30)

    def start(n: int) -> T:
        barrier.wait()
        return work(n)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(start, range(WORKERS)))


def test_racing_create_link_makes_one_link(
    database_url: str, clock: ManualClock, tenant: str
) -> None:
    with (
        Store.open(database_url, clock=clock, tenant=tenant) as one,
        Store.open(database_url, clock=clock, tenant=tenant, migrate=False) as two,
    ):
        for n in range(5):  # several rounds: each a fresh race for a new referral
            referral_id = f"referral-{n}"
            record_id = f"00600000000000{n}"
            links = _race(
                lambda i, r=referral_id, o=record_id: (one if i % 2 else two).create_link(
                    sobject="Opportunity", record_id=o, referral_id=r
                )
            )
            assert len({link.id for link in links}) == 1
        assert len(one.links()) == 5


def test_racing_record_event_is_new_exactly_once(
    database_url: str, clock: ManualClock, tenant: str
) -> None:
    with Store.open(database_url, clock=clock, tenant=tenant) as store:
        for n in range(5):
            results = _race(
                lambda _i, n=n: store.record_event(
                    source="partner_center", event_id=f"ev{n}", key="referral:r1", payload=b"{}"
                )
            )
            assert sorted(results) == [False] * (WORKERS - 1) + [True]
        assert len(store.pending_events()) == 5
