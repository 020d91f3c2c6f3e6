"""Per-key leases: expiry on the injected clock, owners competing across stores and threads."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from cosell.clock import ManualClock
from cosell.store import Store


def test_claim_renew_release(store: Store, clock: ManualClock) -> None:
    assert store.claim("referral:r1", owner="w1", ttl_seconds=30) is True
    assert store.lease_owner("referral:r1") == "w1"
    assert store.claim("referral:r1", owner="w2", ttl_seconds=30) is False
    assert store.claim("referral:r1", owner="w1", ttl_seconds=30) is True  # renewal
    assert store.claim("referral:r2", owner="w2", ttl_seconds=30) is True  # another key
    store.release("referral:r1", owner="w2")  # not w2's: no-op
    assert store.lease_owner("referral:r1") == "w1"
    store.release("referral:r1", owner="w1")
    assert store.lease_owner("referral:r1") is None
    assert store.claim("referral:r1", owner="w2", ttl_seconds=30) is True


def test_a_lease_expires_on_the_clock(store: Store, clock: ManualClock) -> None:
    assert store.claim("k", owner="w1", ttl_seconds=30)
    clock.advance(29.9)
    assert store.claim("k", owner="w2", ttl_seconds=30) is False
    clock.advance(0.1)
    assert store.lease_owner("k") is None
    assert store.claim("k", owner="w2", ttl_seconds=30) is True
    assert store.lease_owner("k") == "w2"
    # The old owner's late release does not free the new owner's lease.
    store.release("k", owner="w1")
    assert store.lease_owner("k") == "w2"
    assert store.claim("k", owner="w1", ttl_seconds=30) is False


def test_renewal_extends_the_lease(store: Store, clock: ManualClock) -> None:
    assert store.claim("k", owner="w1", ttl_seconds=30)
    clock.advance(20)
    assert store.claim("k", owner="w1", ttl_seconds=30)
    clock.advance(20)  # 40 s after the first claim, 20 s after the renewal
    assert store.claim("k", owner="w2", ttl_seconds=30) is False


def test_a_lease_needs_a_positive_ttl(store: Store) -> None:
    with pytest.raises(ValueError, match="positive"):
        store.claim("k", owner="w1", ttl_seconds=0)


def test_two_stores_compete_for_keys(database_url: str, clock: ManualClock, tenant: str) -> None:
    # Two workers (two Store instances, two connection pools) over one database.
    with (
        Store.open(database_url, clock=clock, tenant=tenant) as one,
        Store.open(database_url, clock=clock, tenant=tenant, migrate=False) as two,
    ):
        keys = [f"referral:r{n}" for n in range(20)]
        winners = {}
        for n, key in enumerate(keys):
            first, second = (one, two) if n % 2 else (two, one)
            got_first = first.claim(key, owner=f"w{id(first)}", ttl_seconds=30)
            got_second = second.claim(key, owner=f"w{id(second)}", ttl_seconds=30)
            assert (got_first, got_second) == (True, False)
            winners[key] = first
        for key in keys:
            assert one.lease_owner(key) == two.lease_owner(key) == f"w{id(winners[key])}"
        clock.advance(30)
        assert all(two.claim(key, owner="late", ttl_seconds=30) for key in keys)


def test_threads_racing_for_one_key_leave_exactly_one_owner(
    database_url: str, clock: ManualClock, tenant: str
) -> None:
    """Real concurrency: threads on separate connections claim the same keys at once."""
    workers = 8  # more racers than the pool keeps, fewer than PostgreSQL's default connections
    rounds = 25  # keys raced for; each round is one simultaneous start of every worker
    # The timeout only matters when a worker fails: the others then stop waiting for it.
    barrier = threading.Barrier(workers, timeout=30)
    with Store.open(database_url, clock=clock, tenant=tenant) as store:

        def work(owner: str) -> list[str]:
            won = []
            for n in range(rounds):
                barrier.wait()
                if store.claim(f"key-{n}", owner=owner, ttl_seconds=60):
                    won.append(f"key-{n}")
            return won

        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(work, [f"w{i}" for i in range(workers)]))
    wins = Counter(key for won in results for key in won)
    assert wins == Counter({f"key-{n}": 1 for n in range(rounds)})
