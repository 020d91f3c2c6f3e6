"""The sign-in refusal gate: one probe a pause, and listeners told when it opens again."""

from __future__ import annotations

import pytest

from cosell.clock import ManualClock
from cosell.refusal import RefusalGate, on_reopen


def test_a_shut_gate_repeats_the_refusal_until_its_probe() -> None:
    clock = ManualClock()
    gate = RefusalGate(clock, pause_seconds=60)
    refusal = RuntimeError("refused: run `cosell connect salesforce`")
    gate.refuse(refusal)
    with pytest.raises(RuntimeError, match="cosell connect"):
        gate.check()
    clock.advance(60)
    gate.check()  # the probe goes through


def test_listeners_hear_which_refusal_ended_once_when_the_gate_opens() -> None:
    heard: list[Exception] = []
    remove = on_reopen(heard.append)
    try:
        gate = RefusalGate(ManualClock())
        gate.clear()  # open already: nothing ended
        refusal = RuntimeError("refused")
        gate.refuse(refusal)
        gate.clear()
        gate.clear()
    finally:
        remove()
    assert heard == [refusal]


def test_a_failing_listener_never_fails_the_call_that_succeeded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_: Exception) -> None:
        raise ValueError("listener bug")

    heard: list[Exception] = []
    remove_broken, remove_heard = on_reopen(broken), on_reopen(heard.append)
    try:
        gate = RefusalGate(ManualClock())
        gate.refuse(RuntimeError("refused"))
        gate.clear()
    finally:
        remove_broken()
        remove_heard()
    assert len(heard) == 1  # the next listener still heard it
    assert "a listener of a reopened sign-in failed" in caplog.text


def test_a_removed_listener_hears_nothing() -> None:
    heard: list[Exception] = []
    on_reopen(heard.append)()
    gate = RefusalGate(ManualClock())
    gate.refuse(RuntimeError("refused"))
    gate.clear()
    assert heard == []
