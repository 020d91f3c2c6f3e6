"""Errors of the sync layer, sorted by what the engine must do.

```
SyncError                       root
├── RetriableSyncError          run the reconcile of the key again later (with backoff)
│   └── ConcurrentEditsError    both sides kept changing while we wrote (412 three times)
├── SideFailureError            a side's problem met while parking a deal: pause the side
└── FailpointError              a test's failpoint fired (ctx.failpoints); never in production
```

The reconcile parks *terminal* problems (a refused change, bad data, a record that no longer
exists) on the link and in Salesforce instead of raising: they wait for the next change or
sweep. What it raises is retriable: these errors, or the clients' own `RetriableError`s
(throttling, outages), which the engine retries with backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cosell.sync.plan.scope import Scope


class SyncError(Exception):
    """Root of the sync layer's errors."""


class RetriableSyncError(SyncError):
    """The reconcile of this key should run again later."""


class ConcurrentEditsError(RetriableSyncError):
    """Every attempt to write lost a race with a concurrent edit (412 on each)."""


class FailpointError(SyncError):
    """A failpoint named in `SyncContext.failpoints` fired (tests simulate a crash with it)."""


class SideFailureError(SyncError):
    """A failure that is the connection's, not the deal's (`plan.scope`): pause the side.

    Raised by `run.park` instead of parking a deal for a refused credential, a missing
    permission or a mapping that does not fit the org; the engine opens that side's circuit.

    Attributes:
        scope: the GLOBAL scope (side, cause, fix).
    """

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope.message())
        self.scope = scope
