"""What the overview shows about the two connections: API usage against budgets, tokens.

`cosell serve` supplies both: API calls are counted where requests leave (the clients'
transports, into the metrics), the org's rolling 24-hour usage is what Salesforce reports in
`Sforce-Limit-Info` (`SalesforceClient.usage`), with `[salesforce] api_budget` as cosell's own
cap; token health is `cosell.tokenhealth` (read from the token files, no network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cosell.tokenhealth import TokenHealth


@dataclass(frozen=True)
class ApiUsage:
    """One side's API usage.

    Attributes:
        side: `partner_center` or `salesforce`.
        label: the side's name for people.
        calls: requests this process sent since it started (None: not counted).
        throttled: of those, how many were answered 429.
        used: the side's own count of requests in its window (Salesforce: the org's rolling
            24 hours, all clients), None when the side does not report one.
        limit: the side's allocation for that window.
        budget: cosell's own cap on `used`, when configured.
        observed_at: when `used` was reported.
    """

    side: str
    label: str
    calls: int | None
    throttled: int = 0
    used: int | None = None
    limit: int | None = None
    budget: int | None = None
    observed_at: datetime | None = None

    @property
    def cap(self) -> int | None:
        """What usage is measured against: cosell's budget, else the side's limit."""
        return self.budget or self.limit


UsageSource = Callable[[], Sequence[ApiUsage]]
"""Both sides' usage, read when the overview is shown (cheap, no network)."""

TokenSource = Callable[[], Sequence[TokenHealth]]
"""Both connections' token health (`cosell.tokenhealth.token_health`)."""
