"""Time, injected.

Everything in cosell that waits, expires or schedules (token lifetimes, retry backoff, leases,
the sandboxes' 14-day referral expiry) reads time from a `Clock` handed to it, never from the
system directly. Production code gets `SystemClock`; tests get `ManualClock`, whose `sleep`
returns at once after moving time forward, so a test of a 60-second `Retry-After` takes no
real time. The sandboxes run on an `OffsetClock`: real time plus an offset that their control
API can advance ("three days later ...").

All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of the current time and a way to wait."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, for measuring intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on the machine's monotonic clock."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait for real."""
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when told to; `sleep` advances it instead of waiting.

    Every sleep is recorded in `sleeps`, so a test can assert the backoff schedule.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._mono = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The current (manual) time."""
        return self._now

    def monotonic(self) -> float:
        """Seconds advanced since this clock was made."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, advance time, and yield to the event loop once."""
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class OffsetClock:
    """Real time plus an offset that only grows; the sandboxes' clock.

    `advance` lets a test or the control API jump ahead (to expire a token or a referral)
    while the clock keeps ticking in real time for a human watching the demo.
    """

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> datetime:
        """Real time plus the offset."""
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        """Real monotonic seconds plus the offset."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump ahead by `seconds`."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        """Wait for real (the offset does not shorten waits)."""
        await asyncio.sleep(max(0.0, seconds))
