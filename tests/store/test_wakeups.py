"""Wake-ups: keys to reconcile again at a time, due on the injected clock, cleared once handled."""

from __future__ import annotations

from datetime import timedelta

from cosell.clock import ManualClock
from cosell.store import Store


def test_a_wake_up_is_due_at_its_time_on_the_clock(store: Store, clock: ManualClock) -> None:
    due_at = clock.now() + timedelta(hours=72)
    store.set_wakeup("referral:r1", due_at)
    store.set_wakeup("referral:r2", due_at + timedelta(hours=1))

    assert store.wakeup("referral:r1") == due_at
    assert store.due_wakeups() == []
    clock.advance(72 * 3600 - 1)
    assert store.due_wakeups() == []
    clock.advance(1)
    assert store.due_wakeups() == [("referral:r1", due_at)]
    clock.advance(3600)
    assert [key for key, _ in store.due_wakeups()] == ["referral:r1", "referral:r2"]


def test_setting_again_replaces_the_time(store: Store, clock: ManualClock) -> None:
    store.set_wakeup("referral:r1", clock.now() + timedelta(hours=1))
    store.set_wakeup("referral:r1", clock.now() + timedelta(hours=2))

    assert store.wakeup("referral:r1") == clock.now() + timedelta(hours=2)


def test_clearing_keeps_a_wake_up_set_again_meanwhile(store: Store, clock: ManualClock) -> None:
    store.set_wakeup("referral:r1", clock.now())
    store.set_wakeup("referral:r2", clock.now())
    due = store.due_wakeups()
    later = clock.now() + timedelta(hours=48)
    store.set_wakeup("referral:r2", later)  # a reconcile ran meanwhile and asked again

    store.clear_wakeups(due)

    assert store.wakeup("referral:r1") is None
    assert store.wakeup("referral:r2") == later
    store.clear_wakeups([])  # nothing to clear: nothing happens
    assert store.due_wakeups() == []
