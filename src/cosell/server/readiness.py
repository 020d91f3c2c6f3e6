"""`/readyz`: named checks, each cached for its own time-to-live.

A check is an async function that returns a short detail when all is well and raises when it
is not. `Readiness.run()` runs every check whose last result is older than its TTL on the
clock's monotonic time (the rest answer from the cache), concurrently, each bounded by a
timeout, and reports each by name. Checks that talk to a remote (the token endpoints, the
Webhooks API) get a TTL of a minute, so a load balancer probing every second costs those
endpoints one request a minute at most; the database check is cheap and runs every time.

A failed check's detail is the exception's message (our errors say what to do and never
carry a secret), prefixed by its type name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cosell.clock import Clock

REMOTE_TTL_SECONDS: Final = 60.0  # at most one token or registration request a minute
CHECK_TIMEOUT_SECONDS: Final = 10.0  # a probe that waits longer than this has failed anyway
_DETAIL_LENGTH: Final = 600  # a check's detail in the JSON body: a cause and its fix fit

CheckFunction = Callable[[], Awaitable[str]]
"""Returns a short detail when the check passes; raises when it fails."""


@dataclass(frozen=True)
class Check:
    """One readiness check.

    Attributes:
        name: its name in the `/readyz` body.
        run: the check.
        ttl_seconds: how long its result is reused (0: every probe runs it).
    """

    name: str
    run: CheckFunction
    ttl_seconds: float = REMOTE_TTL_SECONDS


@dataclass(frozen=True)
class CheckResult:
    """A check's last result."""

    ok: bool
    detail: str
    checked_at: float


class Readiness:
    """Runs the checks of `/readyz` with their caches.

    Args:
        checks: the checks, in the order they are reported.
        clock: monotonic time for the caches.
        timeout_seconds: how long one check may take.
    """

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        clock: Clock,
        timeout_seconds: float = CHECK_TIMEOUT_SECONDS,
    ) -> None:
        names = [check.name for check in checks]
        if len(set(names)) != len(names):
            raise ValueError(f"readiness check names must be unique: {names}")
        self._checks = tuple(checks)
        self._clock = clock
        self._timeout = timeout_seconds
        self._results: dict[str, CheckResult] = {}
        self._locks = {check.name: asyncio.Lock() for check in checks}

    async def run(self) -> tuple[bool, dict[str, Any]]:
        """Every check's result (cached ones included).

        Returns:
            (all passed, the JSON body: `{"ready": bool, "checks": {name: {ok, detail}}}`).
        """
        results = await asyncio.gather(*(self._result(check) for check in self._checks))
        ready = all(result.ok for result in results)
        body = {
            "ready": ready,
            "checks": {
                check.name: {"ok": result.ok, "detail": result.detail}
                for check, result in zip(self._checks, results, strict=True)
            },
        }
        return ready, body

    async def _result(self, check: Check) -> CheckResult:
        async with self._locks[check.name]:
            now = self._clock.monotonic()
            cached = self._results.get(check.name)
            if cached is not None and now - cached.checked_at < check.ttl_seconds:
                return cached
            try:
                detail = await asyncio.wait_for(check.run(), self._timeout)
                result = CheckResult(True, detail[:_DETAIL_LENGTH], now)
            except TimeoutError:
                result = CheckResult(False, f"no answer within {self._timeout:g} s", now)
            except Exception as exc:  # noqa: BLE001 - any failure is a failed check, reported
                message = f"{type(exc).__name__}: {exc}"
                result = CheckResult(False, message[:_DETAIL_LENGTH], now)
            self._results[check.name] = result
            return result
