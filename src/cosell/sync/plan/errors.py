"""Errors of the sync layer, sorted by what the engine must do.

```
SyncError                       root
├── RetriableSyncError          run the reconcile of the key again later (with backoff)
│   └── ConcurrentEditsError    both sides kept changing while we wrote (412 three times)
├── SideFailureError            a side's problem met while parking a deal: pause the side
├── GlobalSyncError             the connection's problem, not this deal's: pause the side
│   └── OrgFieldAccessError     a mapped field is hidden or read-only for the integration user
└── FailpointError              a test's failpoint fired (ctx.failpoints); never in production
```

`GlobalSyncError` is raised, never parked: the same cause would park every deal of the side
(DESIGN.md, "Failures, by scope"). The engine's circuit breaker pauses `side` and reports
`str(error)` once (it says what to change in the org or the mapping); until it does, the key
fails like any other raised error and no deal is marked Error for it.

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


class GlobalSyncError(SyncError):
    """A problem of the whole connection to one side; parking deals for it would be wrong.

    Attributes:
        side: `salesforce` or `partner_center`: the side to pause.
    """

    def __init__(self, message: str, *, side: str) -> None:
        super().__init__(message)
        self.side = side

    def __reduce__(self) -> tuple[object, ...]:
        # Durable workflow engines pickle a step's exception; keep the side across that.
        return (type(self)._restore, (str(self), dict(self.__dict__)))

    @classmethod
    def _restore(cls, message: str, state: dict[str, object]) -> GlobalSyncError:
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.__dict__.update(state)
        return error


class OrgFieldAccessError(GlobalSyncError):
    """Salesforce refuses a field for every record (field-level security: hidden or read-only).

    The integration user cannot see or edit the field at all, so the mapping does not fit the
    org; the message names the fields and the fix.

    Attributes:
        sobject: the object, e.g. `Opportunity`.
        fields: the fields refused.
        hidden: True when the fields are invisible to the user, False when read-only.
    """

    def __init__(
        self, message: str, *, sobject: str, fields: tuple[str, ...], hidden: bool
    ) -> None:
        super().__init__(message, side="salesforce")
        self.sobject = sobject
        self.fields = fields
        self.hidden = hidden


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
