"""Failures sorted by scope: whose problem an error is, decided from its type alone (pure).

```
GLOBAL      the connection's problem: credentials or sign-in refused, a permission missing,
            the mapping does not fit the org (INVALID_FIELD), the side throttling (429,
            REQUEST_LIMIT_EXCEEDED, the daily allocation, cosell's own budget). That side's
            sync pauses as a whole (its circuit opens, `engine.breaker`); no deal is parked.
PER_DEAL    that deal's problem: a Partner Center rule it breaks, a record Salesforce refuses,
            a record gone. The deal is parked with the message (`run.park`).
TRANSIENT   nobody's problem yet: a timeout, a 503, a row lock, an expired session, 412s in a
            row. Retried with backoff; a side still failing after the last retry is
            unreachable, which is GLOBAL.
BUG         anything else: logged once with its traceback; that key fails.
```

`scope_of` is the one function that decides; the engine and the park verb both ask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cosell.partnercenter import errors as pc
from cosell.salesforce import errors as sf
from cosell.sync.plan.errors import GlobalSyncError, RetriableSyncError, SideFailureError

GLOBAL: Final = "global"
PER_DEAL: Final = "per_deal"
TRANSIENT: Final = "transient"
BUG: Final = "bug"

PARTNER_CENTER: Final = "partner_center"
SALESFORCE: Final = "salesforce"
SIDES: Final = (PARTNER_CENTER, SALESFORCE)
SIDE_NAMES: Final = {PARTNER_CENTER: "Partner Center", SALESFORCE: "Salesforce"}

THROTTLED: Final = "throttled"  # the cause of a throttling side, for the once-per-state log

# Salesforce codes that say the mapping (or the describe cosell relies on) does not fit the org.
_MAPPING_CODES: Final = frozenset({"INVALID_FIELD", "INVALID_TYPE", "NO_SUCH_COLUMN"})


@dataclass(frozen=True)
class Scope:
    """Whose problem an error is.

    Attributes:
        kind: GLOBAL, PER_DEAL, TRANSIENT or BUG.
        side: the side it concerns (`partner_center` / `salesforce`), None when neither.
        cause: what is wrong, in a sentence (the error's message for a side's problem).
        fix: what to do about it (empty when the system heals it alone).
        throttled: the side asked us to slow down (logged as throttling, probed after
            `retry_after`).
        retry_after: seconds the side asked us to wait, if it said.
    """

    kind: str
    side: str | None = None
    cause: str = ""
    fix: str = ""
    throttled: bool = False
    retry_after: float | None = None

    @property
    def is_global(self) -> bool:
        """The side's sync pauses as a whole."""
        return self.kind == GLOBAL

    def message(self) -> str:
        """`cause`, then `fix`, as one health error."""
        return f"{self.cause}; {self.fix}" if self.fix else self.cause


def scope_of(error: BaseException) -> Scope:
    """The scope of an error raised or met by a reconcile.

    Args:
        error: any exception.

    Returns:
        Its scope (BUG for anything that is not an error of a side or of the sync layer).
    """
    if isinstance(error, SideFailureError):
        return error.scope
    if isinstance(error, GlobalSyncError):  # e.g. a field the org hides from cosell's user
        return Scope(
            GLOBAL,
            side=error.side,
            cause=str(error),
            fix="correct the org or the mapping as said; sync resumes by itself when a probe "
            "passes",
        )
    if isinstance(error, pc.PartnerCenterError):
        return _partner_center(error)
    if isinstance(error, sf.SalesforceError):
        return _salesforce(error)
    if isinstance(error, RetriableSyncError):
        return Scope(TRANSIENT, cause=str(error))
    return Scope(BUG, cause=f"unexpected {type(error).__name__}: {error}")


def unreachable(side: str, last_error: str) -> Scope:
    """The GLOBAL scope of a side that kept failing transiently through every retry."""
    name = SIDE_NAMES.get(side, side)
    return Scope(
        GLOBAL,
        side=side,
        cause=f"{name} is unreachable ({last_error})",
        fix="sync resumes by itself when a probe succeeds; check the service's status page "
        "and the network if it lasts",
    )


def _partner_center(error: pc.PartnerCenterError) -> Scope:
    side = PARTNER_CENTER
    if isinstance(error, pc.ThrottledError):
        return Scope(
            GLOBAL,
            side=side,
            cause=f"Partner Center is throttling cosell ({THROTTLED}: 429)",
            fix="sync resumes by itself when Partner Center accepts calls again",
            throttled=True,
            retry_after=error.retry_after,
        )
    if isinstance(error, pc.RetriableError):
        return Scope(TRANSIENT, side=side, cause=str(error), retry_after=error.retry_after)
    if isinstance(error, pc.ConflictError):
        return Scope(TRANSIENT, side=side, cause=str(error))
    if isinstance(error, pc.SignInRefusedError):
        return Scope(GLOBAL, side=side, cause=str(error), fix="run cosell connect partner-center")
    if isinstance(error, pc.AuthConfigurationError | pc.AuthenticationError):
        return Scope(
            GLOBAL,
            side=side,
            cause=f"Partner Center refuses cosell's credentials: {error}",
            fix="check [partner_center] client_id and client_secret (cosell check), or run "
            "cosell connect partner-center",
        )
    if isinstance(error, pc.AccessDeniedError):
        return Scope(
            GLOBAL,
            side=side,
            cause=f"Partner Center denies access: {error}",
            fix="give the signed-in user a Referrals admin or user role in Partner Center",
        )
    if isinstance(error, pc.TerminalError):
        return Scope(PER_DEAL, side=side, cause=str(error))
    return Scope(BUG, side=side, cause=f"unexpected {type(error).__name__}: {error}")


def _salesforce(error: sf.SalesforceError) -> Scope:
    side = SALESFORCE
    code = (error.error_code or "").upper()
    if isinstance(error, sf.ConcurrentLimitError | sf.DailyLimitExceededError):
        return Scope(
            GLOBAL,
            side=side,
            cause=f"Salesforce is throttling cosell ({THROTTLED}: REQUEST_LIMIT_EXCEEDED)",
            fix=error.hint or "sync resumes by itself when Salesforce accepts calls again",
            throttled=True,
            retry_after=getattr(error, "retry_after", None),
        )
    if isinstance(error, sf.ApiBudgetExceededError):
        return Scope(
            GLOBAL,
            side=side,
            cause="cosell's Salesforce API budget is spent",
            fix=error.hint,
            throttled=True,
        )
    if isinstance(error, sf.RetriableError | sf.ConflictError | sf.SessionExpiredError):
        return Scope(
            TRANSIENT, side=side, cause=str(error), retry_after=getattr(error, "retry_after", None)
        )
    if isinstance(error, sf.SignInRefusedError):
        return Scope(GLOBAL, side=side, cause=str(error), fix="run cosell connect salesforce")
    if isinstance(error, sf.AuthenticationError):
        return Scope(
            GLOBAL,
            side=side,
            cause=f"Salesforce refuses cosell's sign-in: {error.message}",
            fix="check [salesforce] consumer_key, consumer_secret and the integration user "
            "(cosell check), or run cosell connect salesforce",
        )
    # A field not writable on one record is that deal's (`run.refused`); a field the
    # integration user can never write is raised as `OrgFieldAccessError` (GlobalSyncError).
    if isinstance(error, sf.AccessDeniedError):
        return Scope(
            GLOBAL,
            side=side,
            cause=f"Salesforce denies cosell a permission: {error.message}",
            fix=error.hint or "assign the cosell permission set to the integration user",
        )
    if code in _MAPPING_CODES or (
        isinstance(error, sf.QueryError) and code in {"INVALID_TYPE", "INVALID_FIELD"}
    ):
        return Scope(
            GLOBAL,
            side=side,
            cause=f"the mapping does not fit the Salesforce org ({code}: {error.message})",
            fix="deploy the missing fields or correct the mapping file; cosell mapping check "
            "lists every problem",
        )
    if isinstance(error, sf.TerminalError):
        return Scope(PER_DEAL, side=side, cause=str(error))
    return Scope(BUG, side=side, cause=f"unexpected {type(error).__name__}: {error}")
