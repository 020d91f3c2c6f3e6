"""Token health: how each connection signs in, and how long its refresh token has left.

Refresh tokens die quietly: Entra ID expires one left unused for 90 days (its default
inactivity window), a password reset or the user leaving revokes it, and Partner Center
refuses App+User calls made with a token minted without MFA (spec §9). Read from the settings
and the token files `cosell connect` writes (`cosell.tokenstore`), with no network call, this
is what `cosell check`, `cosell status`, `/readyz` and `/metrics` show per connection:

- `grant`: the configured auth, and for a refresh token the sign-in that minted it
  (`refresh_token (device_code)`);
- `mfa`: True/False when known (a Partner Center sign-in through `cosell connect`, or the
  password grant, which never has MFA), None when unknown or not applicable;
- `rotated_at`, `used_at`: from the token file;
- `expires_at`, `days_left`: the inactivity deadline. Partner Center: 90 days after the last
  use. Salesforce refresh tokens are valid until revoked unless the app's refresh token policy
  says otherwise, which cosell cannot read, so they have none.

`problem` is set when the connection cannot work (no MFA on Partner Center, an expired token)
and `warning` when it will stop within `WARN_DAYS`; both say what to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog

from cosell.clock import Clock
from cosell.config import Settings
from cosell.tokenstore import FileTokenStore, TokenFileError, TokenRecord

log = structlog.get_logger("cosell.tokenhealth")

Side = Literal["partner_center", "salesforce"]
# Entra ID's default inactivity lifetime of a refresh token.
PARTNER_CENTER_INACTIVITY = timedelta(days=90)
# Two weeks: time to find the admin who can sign in again.
WARN_DAYS = 14
_SECONDS_PER_DAY = 86_400.0
_LABEL = {"partner_center": "Partner Center", "salesforce": "Salesforce"}
_COMMAND = {
    "partner_center": "cosell connect partner-center",
    "salesforce": "cosell connect salesforce",
}


@dataclass(frozen=True)
class TokenHealth:
    """One connection's sign-in, as far as cosell can tell without calling anyone.

    Attributes:
        side: `partner_center` or `salesforce`.
        grant: how cosell signs in (and how the refresh token was obtained, when known).
        mfa: the sign-in used MFA; None when unknown or not applicable.
        user: who signed in, when known.
        rotated_at: when the stored refresh token last changed.
        used_at: when it was last redeemed.
        expires_at: when it expires of inactivity unless used first; None when it does not.
        days_left: days until `expires_at`, negative once past.
        problem: why the connection cannot work now, or None.
        warning: why it will stop soon, or None.
    """

    side: Side
    grant: str
    mfa: bool | None = None
    user: str | None = None
    rotated_at: datetime | None = None
    used_at: datetime | None = None
    expires_at: datetime | None = None
    days_left: float | None = None
    problem: str | None = None
    warning: str | None = None

    @property
    def label(self) -> str:
        """The side's name for people."""
        return _LABEL[self.side]

    def as_json(self) -> dict[str, Any]:
        """The health as JSON values (times in ISO 8601, days rounded to a tenth)."""
        return {
            "grant": self.grant,
            "mfa": self.mfa,
            "user": self.user,
            "rotated_at": _iso(self.rotated_at),
            "used_at": _iso(self.used_at),
            "expires_at": _iso(self.expires_at),
            "days_left": None if self.days_left is None else round(self.days_left, 1),
            "problem": self.problem,
            "warning": self.warning,
        }

    def summary(self) -> str:
        """One line: grant, MFA, rotation, use and days left."""
        parts = [self.grant]
        if self.user:
            parts.append(f"as {self.user}")
        if self.mfa is not None:
            parts.append("MFA" if self.mfa else "no MFA")
        if self.rotated_at is not None:
            parts.append(f"rotated {self.rotated_at.strftime('%Y-%m-%d %H:%M')} UTC")
        if self.used_at is not None:
            parts.append(f"used {self.used_at.strftime('%Y-%m-%d %H:%M')} UTC")
        if self.days_left is not None:
            parts.append(f"{max(0.0, self.days_left):.0f} days before inactivity expiry")
        return ", ".join(parts)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _record(path_store: FileTokenStore | None) -> tuple[TokenRecord, str | None]:
    if path_store is None:
        return TokenRecord(), None
    try:
        return path_store.record(), None
    except TokenFileError as exc:
        return TokenRecord(), str(exc)


def _health(
    side: Side,
    grant: str,
    record: TokenRecord,
    *,
    now: datetime,
    mfa: bool | None,
    inactivity: timedelta | None,
    problem: str | None,
) -> TokenHealth:
    expires_at = record.expires_at(inactivity) if inactivity is not None else None
    days_left = (
        None if expires_at is None else (expires_at - now).total_seconds() / _SECONDS_PER_DAY
    )
    command = _COMMAND[side]
    warning = None
    if problem is None and days_left is not None:
        if days_left <= 0:
            problem = (
                f"{_LABEL[side]} sign-in expired (unused for {inactivity.days if inactivity else 0} "
                f"days): run {command}"
            )
        elif days_left < WARN_DAYS:
            warning = (
                f"{_LABEL[side]} sign-in expires in {days_left:.0f} days unless cosell uses it: "
                f"keep cosell running, or run {command}"
            )
    return TokenHealth(
        side=side,
        grant=grant,
        mfa=mfa,
        user=record.user,
        rotated_at=record.rotated_at,
        used_at=record.used_at,
        expires_at=expires_at,
        days_left=days_left,
        problem=problem,
        warning=warning,
    )


def partner_center_health(settings: Settings, *, clock: Clock) -> TokenHealth:
    """The Partner Center connection's token health."""
    pc = settings.partner_center
    now = clock.now()
    if pc.auth == "client_credentials":
        return TokenHealth(side="partner_center", grant="client_credentials (app-only)")
    if pc.auth == "password":
        return TokenHealth(
            side="partner_center",
            grant="password",
            mfa=False,
            problem=(
                "Partner Center sign-in has no MFA (the password grant), and Partner Center "
                "refuses such tokens (900421): run cosell connect partner-center and set "
                "[partner_center] auth = 'refresh_token'"
            ),
        )
    store = (
        FileTokenStore(pc.token_file, clock=clock)
        if pc.refresh_token_file is not None or pc.token_file.exists()
        else None
    )
    record, unreadable = _record(store)
    grant = f"refresh_token ({record.grant})" if record.grant else "refresh_token"
    problem = unreadable
    if problem is None and record.mfa is False:
        problem = (
            "Partner Center sign-in was made without MFA, which Partner Center requires for "
            "App+User calls (900421): run cosell connect partner-center"
        )
    return _health(
        "partner_center",
        grant,
        record,
        now=now,
        mfa=record.mfa,
        inactivity=PARTNER_CENTER_INACTIVITY,
        problem=problem,
    )


def salesforce_health(settings: Settings, *, clock: Clock) -> TokenHealth:
    """The Salesforce connection's token health."""
    sf = settings.salesforce
    if sf.auth != "refresh_token":
        return TokenHealth(side="salesforce", grant=sf.auth)
    record, unreadable = _record(sf.token_store(clock))
    grant = f"refresh_token ({record.grant})" if record.grant else "refresh_token"
    return _health(
        "salesforce",
        grant,
        record,
        now=clock.now(),
        mfa=None,
        inactivity=None,
        problem=unreadable,
    )


def token_health(settings: Settings, *, clock: Clock) -> tuple[TokenHealth, TokenHealth]:
    """Both connections' token health (Partner Center first)."""
    return partner_center_health(settings, clock=clock), salesforce_health(settings, clock=clock)


class TokenHealthWatch:
    """Token health for a running service: one warning per side, logged once, when time runs out.

    `cosell serve` calls `check()` at start, every `PERIOD_SECONDS`, and on each `/readyz`.

    Args:
        settings: the service's settings.
        clock: what "now" is.
    """

    PERIOD_SECONDS = 3600.0  # the inactivity window is counted in days: hourly is plenty

    def __init__(self, settings: Settings, *, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._warned: set[str] = set()

    def check(self) -> tuple[TokenHealth, TokenHealth]:
        """Both connections' health; logs `token.expires_soon` once per side and process."""
        healths = token_health(self._settings, clock=self._clock)
        for health in healths:
            if health.warning and health.side not in self._warned:
                self._warned.add(health.side)  # an admin needs one nudge, not one a minute
                log.warning("token.expires_soon", side=health.side, message=health.warning)
        return healths


__all__ = [
    "PARTNER_CENTER_INACTIVITY",
    "WARN_DAYS",
    "TokenHealth",
    "TokenHealthWatch",
    "partner_center_health",
    "salesforce_health",
    "token_health",
]
