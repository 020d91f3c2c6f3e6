"""A gate that stops calling a side whose sign-in was refused, with one probe a minute.

When a side refuses cosell's credentials (an expired or revoked refresh token, a token without
MFA), every reconcile would otherwise ask the token endpoint again: a retry storm against a
side that will keep saying no until an admin signs in again. Each side's auth layer keeps one
`RefusalGate`:

- `refuse(error)` closes it with the error to repeat (its message says what to run);
- `check()` raises that error at once, without any call, while the gate is closed, except that
  once every `pause_seconds` (on the injected clock) one caller is let through as a probe, and
  a caller is let through at once when the credentials changed since the refusal
  (`fingerprint`, e.g. the stored refresh token: `cosell connect` wrote a new one);
- `clear()` opens it again after a success, and tells the `on_reopen` listeners which refusal
  ended (the engine makes the retry of the deals parked with that message due at once).

So a refused side costs at most one failing call per `pause_seconds`, and catches up as soon as
new credentials work. The gate knows nothing of HTTP or tokens; the fingerprint is compared,
never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from cosell.clock import Clock

log = logging.getLogger(__name__)

_LISTENERS: list[Callable[[Exception], None]] = []


def on_reopen(listener: Callable[[Exception], None]) -> Callable[[], None]:
    """Call `listener(refusal)` whenever a gate of this process opens after a refusal.

    Called on the thread whose call succeeded, after the gate opened; a listener's failure is
    logged, never raised into that call.

    Returns:
        A function that removes the listener.
    """
    _LISTENERS.append(listener)

    def remove() -> None:
        if listener in _LISTENERS:
            _LISTENERS.remove(listener)

    return remove


# One failing call a minute: a prompt recovery, and nothing a side would call a storm.
DEFAULT_PAUSE_SECONDS = 60.0


class RefusalGate:
    """Repeats a refusal without calling, probing once per `pause_seconds`.

    Args:
        clock: the probe schedule reads its monotonic time.
        pause_seconds: how long a refusal is repeated before one probe is let through.
        fingerprint: what identifies the current credentials; a change lets a probe through.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        pause_seconds: float = DEFAULT_PAUSE_SECONDS,
        fingerprint: Callable[[], object] | None = None,
    ) -> None:
        self._clock = clock
        self._pause = pause_seconds
        self._fingerprint = fingerprint or (lambda: None)
        self._lock = threading.Lock()
        self._error: Exception | None = None
        self._since = 0.0
        self._credentials: object = None

    @property
    def refused(self) -> Exception | None:
        """The refusal being repeated, or None while the gate is open."""
        return self._error

    def check(self) -> None:
        """Pass when the gate is open, or as the probe; raise the repeated refusal otherwise."""
        with self._lock:
            error = self._error
            if error is None:
                return
            if self._fingerprint_changed() or self._clock.monotonic() - self._since >= self._pause:
                self._since = self._clock.monotonic()  # the others wait for this probe
                return
        raise error

    def refuse(self, error: Exception) -> None:
        """Close the gate: repeat `error` until a probe succeeds."""
        with self._lock:
            self._error = error
            self._since = self._clock.monotonic()
            self._credentials = self._safe_fingerprint()

    def clear(self) -> None:
        """Open the gate (the side accepted the credentials); tell the listeners if it was shut."""
        with self._lock:
            ended, self._error = self._error, None
        if ended is None:
            return
        for listener in list(_LISTENERS):
            try:
                listener(ended)
            except Exception:
                log.exception("a listener of a reopened sign-in failed")

    def _fingerprint_changed(self) -> bool:
        return self._safe_fingerprint() != self._credentials

    def _safe_fingerprint(self) -> object:
        try:
            return self._fingerprint()
        except Exception:  # noqa: BLE001 - an unreadable token file is "unchanged"
            return self._credentials
