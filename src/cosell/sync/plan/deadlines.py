"""Partner Center's clocks: the expiry warning, held changes, and when to look at a key again.

Two of Partner Center's rules depend on time, not on a change, so no notification ever says
"look again" when they matter; this module says when, and the reconcile records it as a
wake-up in the store (`Store.set_wakeup`), which the engine's pollers turn into a reconcile
when it is due (`cosell.sync.engine`):

- **Expiry.** An incoming referral that gets no answer within 14 days expires (spec §3.3).
  From 48 hours before its `expirationDateTime` (`EXPIRY_WARNING`) the opportunity shows
  "expires on <date>: accept or decline before then" in its sync status (Pending) and error
  fields, and the audit gets the warning once. The key wakes at the warning time, and again
  at the expiry itself so that the opportunity follows the referral to Closed/Expired.
- **Held changes** (`cosell.sync.plan.merge.Held`): a win less than 72 hours after creation waits
  until Partner Center takes it; the key wakes then and the win is sent with nobody touching
  the deal again. Edits held while a referral is on hold need no wake-up: they wait for the
  acceptance, which is itself a change.

Everything here is pure (times come in as arguments).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cosell.partnercenter.models import Referral, ReferralStatus
from cosell.sync.plan.merge import Plan

EXPIRY_WARNING = timedelta(hours=48)
"""How long before an incoming referral expires the seller is warned (the issue's rule)."""


def expiry_warning(referral: Referral, now: datetime) -> str | None:
    """The warning an on-hold referral shows from 48 hours before it expires, else None.

    Args:
        referral: the referral as read.
        now: the reconcile's time.

    Returns:
        "the referral expires on <date>: accept or decline before then ..." while the
        referral is New and within `EXPIRY_WARNING` of its expiry; None otherwise.
    """
    expires = _expiry(referral)
    if expires is None or not expires - EXPIRY_WARNING <= now < expires:
        return None
    return (
        f"the referral expires on {expires:%Y-%m-%d %H:%M} UTC: accept or decline before then "
        "(move the opportunity to the active stage to accept it, or close it lost to decline)"
    )


def notice(plan: Plan, warning: str | None) -> str | None:
    """What the opportunity shows while nothing is wrong but something waits (None: nothing).

    Args:
        plan: the merge's plan (its held changes).
        warning: the expiry warning, if any.

    Returns:
        The held changes (the edits waiting for acceptance in one sentence, so that it fits
        the opportunity's error field) and the warning, joined; None when there are none.
    """
    waiting = [held.field.replace("_", " ") for held in plan.held if held.until is None]
    parts = []
    if waiting:
        parts.append(
            f"held back until the referral is accepted: {', '.join(waiting)} (Partner Center "
            "takes edits only once it is accepted; move the opportunity to the active stage "
            "to accept it, and they are sent)"
        )
    parts.extend(held.reason for held in plan.held if held.until is not None)
    if warning is not None:
        parts.append(warning)
    return "; ".join(parts) or None


def wake_at(plan: Plan, referral: Referral, now: datetime) -> datetime | None:
    """When the key must be reconciled again although nothing changed, or None.

    Args:
        plan: the merge's plan (a win held until a time).
        referral: the referral as read (its expiry, while on hold).
        now: the reconcile's time.

    Returns:
        The earliest future moment among: the end of a timed hold, the start of the expiry
        warning, the expiry itself.
    """
    times = [t for t in (plan.held_until, *_expiry_moments(referral)) if t is not None and t > now]
    return min(times) if times else None


def first_wake(referral: Referral, now: datetime) -> datetime | None:
    """When a newly linked referral must be looked at again (its expiry warning), or None."""
    times = [t for t in _expiry_moments(referral) if t > now]
    return min(times) if times else None


def _expiry_moments(referral: Referral) -> tuple[datetime, ...]:
    expires = _expiry(referral)
    return () if expires is None else (expires - EXPIRY_WARNING, expires)


def _expiry(referral: Referral) -> datetime | None:
    if referral.status != ReferralStatus.NEW:
        return None
    return referral.expiration_date_time
