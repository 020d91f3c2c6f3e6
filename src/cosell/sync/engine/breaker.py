"""A circuit breaker per side: a side's problem pauses that side's sync, a probe resumes it.

```
closed ──trip(GLOBAL scope)──▶ open ──probe succeeds──▶ closed
                                │ ▲
                                └─┘ probe fails: next probe one interval later
```

`trip` is called by the engine with a GLOBAL `plan.scope.Scope` (credentials refused, a
permission missing, the mapping does not fit the org, the side throttling, the side unreachable
after the last retry). While a side is open the engine calls nothing on it: keys that need it
are *held* in the store (`Store.hold_keys`) instead of parked, its poller keeps its cursor, the
sweep waits. The engine's poll ticks call `Engine.heal`, which probes an open side when
`due` (at most once per `probe_seconds` on the injected clock, and never before the side's
`Retry-After`) and, when the probe passes, closes the circuit and notifies the held keys.

Each state change is logged once at warning, without a traceback (`sync.circuit_opened`,
`sync.circuit_closed`); a probe that fails again is logged at info. The state is kept in the
store (`Store.set_circuit`) so that `cosell status`, `/readyz` and another process see it;
`load` reads it back at start, so a restarted service keeps a side open until a probe passes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from cosell.store import Circuit
from cosell.sync.plan.scope import SIDE_NAMES, SIDES, Scope

if TYPE_CHECKING:
    from cosell.clock import Clock
    from cosell.store import Store

log = structlog.get_logger("cosell.sync.breaker")

CLOSED = "closed"
OPEN = "open"


class Breaker:
    """Both sides' circuits, in memory and in the store.

    Args:
        store: where the circuits are kept for other processes.
        clock: the injected clock (probe times).
        probe_seconds: the least time between two probes of one side (the probe rate bound).
        persist: keep the state in the store (False for a dry run: it writes nothing).
    """

    def __init__(
        self, store: Store, clock: Clock, *, probe_seconds: float, persist: bool = True
    ) -> None:
        self._store = store
        self._clock = clock
        self._probe_seconds = probe_seconds
        self._persist = persist
        self._circuits: dict[str, Circuit] = {}

    def load(self) -> None:
        """Read the circuits kept in the store (at start)."""
        self._circuits = {s: c for s, c in self._store.circuits().items() if s in SIDES}

    def circuit(self, side: str) -> Circuit | None:
        """The side's circuit when open, else None."""
        circuit = self._circuits.get(side)
        return circuit if circuit is not None and circuit.is_open else None

    def open_circuits(self) -> list[Circuit]:
        """The open circuits, Partner Center first."""
        return [c for side in SIDES if (c := self.circuit(side)) is not None]

    def is_open(self, side: str) -> bool:
        """The side's sync is paused."""
        return self.circuit(side) is not None

    def trip(self, scope: Scope) -> bool:
        """Open the scope's side (or keep it open with the new cause).

        Args:
            scope: a GLOBAL scope with a side.

        Returns:
            True when the circuit was closed and is now open (the state changed).
        """
        side = scope.side
        if side is None:
            return False
        now = self._clock.now()
        wait = max(self._probe_seconds, scope.retry_after or 0.0)
        current = self.circuit(side)
        circuit = Circuit(
            side=side,
            state=OPEN,
            cause=scope.cause,
            fix=scope.fix,
            since=current.since if current is not None else now,
            next_probe_at=now + timedelta(seconds=wait),
        )
        self._circuits[side] = circuit
        if self._persist:
            self._store.set_circuit(circuit)
        if current is None:
            log.warning(
                "sync.throttled" if scope.throttled else "sync.circuit_opened",
                side=side,
                cause=scope.cause,
                fix=scope.fix,
                detail=f"{SIDE_NAMES[side]} sync is paused; deals keep their state and their "
                "changes wait; it resumes by itself when a probe succeeds",
            )
            return True
        if current.cause != scope.cause:
            log.info("sync.circuit_cause", side=side, cause=scope.cause)
        return False

    def due(self, side: str) -> bool:
        """The side is open and its next probe may run now."""
        circuit = self.circuit(side)
        if circuit is None:
            return False
        return circuit.next_probe_at is None or self._clock.now() >= circuit.next_probe_at

    def probe_failed(self, scope: Scope) -> None:
        """A probe of an open side failed: keep it open, next probe one interval later."""
        if scope.side is None:
            return
        current = self.circuit(scope.side)
        if current is not None and current.cause == scope.cause:
            wait = max(self._probe_seconds, scope.retry_after or 0.0)
            circuit = replace(current, next_probe_at=self._clock.now() + timedelta(seconds=wait))
            self._circuits[scope.side] = circuit
            if self._persist:
                self._store.set_circuit(circuit)
            log.info("sync.probe_failed", side=scope.side, cause=scope.cause)
            return
        self.trip(scope)

    def close(self, side: str) -> bool:
        """Close the side's circuit (a probe passed).

        Returns:
            True when it was open (the state changed).
        """
        current = self.circuit(side)
        if current is None:
            return False
        now = self._clock.now()
        circuit = Circuit(side=side, state=CLOSED, cause="", fix="", since=now)
        self._circuits[side] = circuit
        if self._persist:
            self._store.set_circuit(circuit)
        log.warning(
            "sync.circuit_closed",
            side=side,
            paused_seconds=round((now - current.since).total_seconds(), 1),
            detail=f"{SIDE_NAMES[side]} sync resumed; the changes that waited are synced now",
        )
        return True
