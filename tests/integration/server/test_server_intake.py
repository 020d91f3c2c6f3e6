"""`InboxWriter`: the webhook endpoint's group commit into the inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosell.clock import ManualClock
from cosell.server import intake
from cosell.server.intake import InboxWriter
from cosell.store import KeyFormatError, Store, StoreUnavailableError


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


async def test_an_event_the_store_cannot_hold_is_refused_alone_before_the_group_commit(
    store: Store,
) -> None:
    writer = InboxWriter(store, source="partner-center")
    bad = writer.record(event_id="bad", key="referral:r\ud800", payload=b"{}")
    good = [writer.record(event_id=f"ev{n}", key="referral:r", payload=b"{}") for n in range(50)]
    outcomes = await asyncio.gather(bad, *good, return_exceptions=True)
    assert isinstance(outcomes[0], KeyFormatError)
    assert outcomes[1:] == [True] * 50
    assert writer.transactions == 1
    assert len(store.pending_events(limit=100)) == 50


async def test_a_row_the_driver_refuses_inside_a_batch_fails_only_its_own_request(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were a bad key to slip past the checks, SQLite's driver raises a bare UnicodeEncodeError
    # for the whole transaction (the attack run: 273 of 300 valid callbacks answered 500).
    monkeypatch.setattr(intake, "_check_event", lambda event_id, key: None)
    writer = InboxWriter(store, source="partner-center")
    calls = [writer.record(event_id=f"ev{n}", key="referral:r", payload=b"{}") for n in range(30)]
    calls.insert(7, writer.record(event_id="bad", key="referral:\ud800", payload=b"{}"))
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes[7], intake.UnrecordableEventError)
    assert isinstance(outcomes[7].__cause__, UnicodeEncodeError)
    assert [o for i, o in enumerate(outcomes) if i != 7] == [True] * 30
    assert sorted(e.event_id for e in store.pending_events(limit=100)) == sorted(
        f"ev{n}" for n in range(30)
    )


async def test_a_failure_that_is_not_the_events_fault_is_not_blamed_on_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> list[bool]:
        raise RuntimeError("a bug in the store")

    monkeypatch.setattr(store, "record_events", broken)
    writer = InboxWriter(store, source="partner-center")
    outcomes = await asyncio.gather(
        *(writer.record(event_id=f"ev{n}", key="referral:r", payload=b"{}") for n in range(3)),
        return_exceptions=True,
    )
    assert all(type(o) is RuntimeError for o in outcomes)
