"""`InboxWriter`: the webhook endpoint's group commit into the inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosell.clock import ManualClock
from cosell.server.intake import InboxWriter
from cosell.store import Store, StoreUnavailableError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'intake.db'}", clock=ManualClock())
    yield opened
    opened.close()


async def test_concurrent_callbacks_share_one_transaction_and_each_learns_if_it_was_new(
    store: Store,
) -> None:
    writer = InboxWriter(store, source="partner-center")
    events = [(f"ev{n}", f"referral:r{n % 3}") for n in range(20)] + [("ev0", "referral:r0")]
    new = await asyncio.gather(
        *(writer.record(event_id=e, key=k, payload=b"{}") for e, k in events)
    )
    assert new == [True] * 20 + [False]  # the repeat of ev0 in the same batch coalesces
    assert writer.transactions == 1
    pending = store.pending_events(limit=100)
    assert [e.event_id for e in pending] == [f"ev{n}" for n in range(20)]  # in arrival order


async def test_batches_are_capped_and_a_lone_callback_is_written_at_once(store: Store) -> None:
    writer = InboxWriter(store, source="partner-center", max_batch=8)
    await asyncio.gather(
        *(writer.record(event_id=f"ev{n}", key="referral:r", payload=b"{}") for n in range(20))
    )
    assert writer.transactions == 3  # 8 + 8 + 4
    assert await writer.record(event_id="late", key="referral:r", payload=b"{}") is True
    assert writer.transactions == 4
    assert len(store.pending_events(limit=100)) == 21


async def test_a_failed_transaction_fails_every_callback_of_its_batch_and_records_none(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(**_: object) -> list[bool]:
        raise StoreUnavailableError("cannot open the SQLite store: disk I/O error")

    monkeypatch.setattr(store, "record_events", unavailable)
    writer = InboxWriter(store, source="partner-center")
    outcomes = await asyncio.gather(
        *(writer.record(event_id=f"ev{n}", key="referral:r", payload=b"{}") for n in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(o, StoreUnavailableError) for o in outcomes)
    monkeypatch.undo()
    assert store.pending_events() == []
    assert await writer.record(event_id="ev0", key="referral:r", payload=b"{}") is True


def test_a_batch_must_hold_at_least_one_event(store: Store) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        InboxWriter(store, source="partner-center", max_batch=0)
