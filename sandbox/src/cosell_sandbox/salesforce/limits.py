"""The org's rolling 24-hour API request counter (`DailyApiRequests`, `Sforce-Limit-Info`).

Salesforce counts API requests over a rolling 24 hours, not per calendar day (spec §2.9). The
counter keeps one bucket per minute of the sandbox clock, so memory stays bounded however many
calls arrive, and a call leaves the window 24 hours (to the minute) after it was made. The
`/limits/` resource and the `Sforce-Limit-Info: api-usage=N/MAX` header read the same numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)  # Salesforce's daily allocation is a rolling 24-hour window
_BUCKET = timedelta(minutes=1)  # granularity of the rolling window


class ApiUsage:
    """Counts API requests in the last 24 hours against a daily maximum."""

    def __init__(self, daily_max: int) -> None:
        if daily_max <= 0:
            raise ValueError("the daily API request limit must be positive")
        self.daily_max = daily_max
        self._buckets: OrderedDict[datetime, int] = OrderedDict()
        self._total = 0

    def _prune(self, now: datetime) -> None:
        cutoff = now - WINDOW
        while self._buckets:
            start, count = next(iter(self._buckets.items()))
            if start + _BUCKET > cutoff:
                break
            self._buckets.popitem(last=False)
            self._total -= count

    def used(self, now: datetime) -> int:
        """Requests counted in the 24 hours before `now`."""
        self._prune(now)
        return self._total

    def remaining(self, now: datetime) -> int:
        """Requests left in the window (never negative)."""
        return max(0, self.daily_max - self.used(now))

    def exhausted(self, now: datetime) -> bool:
        """Whether the next request would exceed the daily maximum."""
        return self.used(now) >= self.daily_max

    def record(self, now: datetime) -> int:
        """Count one request at `now`; returns the new usage."""
        self._prune(now)
        bucket = now.replace(second=0, microsecond=0)
        self._buckets[bucket] = self._buckets.get(bucket, 0) + 1
        self._total += 1
        return self._total

    def header(self, now: datetime) -> str:
        """The `Sforce-Limit-Info` header value."""
        return f"api-usage={self.used(now)}/{self.daily_max}"

    def reset(self) -> None:
        """Forget every counted request."""
        self._buckets.clear()
        self._total = 0
