from datetime import UTC, datetime

import pytest

from cosell.clock import ManualClock, OffsetClock, SystemClock


async def test_manual_clock_sleep_advances_without_waiting() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    await clock.sleep(60)
    await clock.sleep(-1)
    assert clock.now() == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert clock.sleeps == [60, 0.0]
    assert clock.monotonic() == 60


def test_manual_clock_refuses_naive_and_backwards() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="backwards"):
        ManualClock().advance(-1)


def test_offset_clock_jumps_ahead() -> None:
    clock = OffsetClock()
    before = clock.now()
    clock.advance(3600)
    assert (clock.now() - before).total_seconds() >= 3600
    assert SystemClock().now().tzinfo is UTC
