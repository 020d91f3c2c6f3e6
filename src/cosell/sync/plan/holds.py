"""Why a deal's sync is held, in one sentence with what to do: a pause, or a side's open circuit.

What `cosell sync KEY` prints for a held key, what the engine keeps with a held outcome, and
what the console's Re-sync now says when the deal could not be synced because of it. Pure: the
pauses and circuits are given (`Store.pauses`, `Store.circuits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from cosell.sync.plan.scope import SIDE_NAMES

if TYPE_CHECKING:  # the store's records, only read here
    from cosell.store import Circuit, Pause


def pause_sentence(pause: Pause) -> str:
    """Who paused, since when, why, and how to resume."""
    what = "all sync is paused" if pause.target is None else "this deal's sync is paused"
    resume = "cosell resume" if pause.target is None else "cosell resume KEY"
    return (
        f"{what} by {pause.by} since {pause.since:%Y-%m-%d %H:%M} UTC"
        + (f" ({pause.reason})" if pause.reason else "")
        + f"; it syncs by itself once resumed (run {resume}, or Resume in the console)"
    )


def circuit_sentence(side: str, cause: str, fix: str) -> str:
    """A side's open circuit: what is wrong, the fix, and that it resumes by itself."""
    name = SIDE_NAMES.get(side, side)
    return (
        f"waiting for {name}: {cause}"
        + (f"; fix: {fix}" if fix else "")
        + f"; it syncs by itself once {name} answers again (probed at every poll)"
    )


def why_held(
    pauses: Sequence[Pause], circuits: Mapping[str, Circuit], link_id: str | None
) -> str | None:
    """Why the deal of `link_id` (None: any deal) is held now, or None when nothing holds it."""
    for circuit in circuits.values():
        if circuit.state == "open":
            return circuit_sentence(circuit.side, circuit.cause, circuit.fix)
    for pause in pauses:
        if pause.target is None:
            return pause_sentence(pause)
    for pause in pauses:
        if link_id is not None and pause.target == link_id:
            return pause_sentence(pause)
    return None
