"""The one retry policy: capped exponential backoff with full jitter, never under `Retry-After`."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from cosell.partnercenter.errors import RetriableError as PartnerCenterRetriableError
from cosell.salesforce.errors import RetriableError as SalesforceRetriableError
from cosell.sync.plan.errors import RetriableSyncError

RETRIABLE_ERRORS: Final = (
    PartnerCenterRetriableError,
    SalesforceRetriableError,
    RetriableSyncError,
)


@dataclass(frozen=True)
class BackoffPolicy:
    """How a key's reconcile is retried after a retriable error.

    Attributes:
        max_attempts: attempts in all, the first included (6: about a minute of waiting with
            the defaults before the key is parked; its own retry schedule, `plan.retry`, takes over).
        base_delay: the first backoff's upper bound, seconds.
        max_delay: the cap of one backoff, seconds (and of a `Retry-After` we wait in place;
            longer ones park the key, the sweep picks it up later).
        busy_delay: seconds between tries when another workflow holds the key's lease.
        busy_attempts: tries before giving up on a held lease (the lease TTL bounds a holder
            that died).
        rng: the jitter's source; seed it for a reproducible schedule.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 30.0
    busy_delay: float = 2.0
    busy_attempts: int = 90  # 90 x 2 s = 3 minutes: longer than a batch lease (120 s)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        Full jitter: uniform(0, min(max_delay, base_delay * 2**(attempt-1))), but never less
        than the server's `Retry-After` (capped at `max_delay`).
        """
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        wait = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait
