"""Failures sorted by scope (`plan.scope`) and the per-side circuit breaker (`engine.breaker`)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from cosell.clock import ManualClock
from cosell.partnercenter import errors as pc
from cosell.salesforce import errors as sf
from cosell.store import Store
from cosell.sync.engine.breaker import Breaker
from cosell.sync.plan.errors import (
    ConcurrentEditsError,
    GlobalSyncError,
    OrgFieldAccessError,
    SideFailureError,
)
from cosell.sync.plan.scope import (
    BUG,
    GLOBAL,
    PER_DEAL,
    TRANSIENT,
    Scope,
    scope_of,
    unreachable,
)


@pytest.mark.parametrize(
    ("error", "kind", "side"),
    [
        (pc.SignInRefusedError("Partner Center sign-in expired"), GLOBAL, "partner_center"),
        (pc.AuthConfigurationError("invalid_client"), GLOBAL, "partner_center"),
        (pc.MfaRequiredError("no MFA"), GLOBAL, "partner_center"),
        (pc.AccessDeniedError("no Referrals role"), GLOBAL, "partner_center"),
        (pc.ThrottledError("429", retry_after=7.0), GLOBAL, "partner_center"),
        (pc.ServiceUnavailableError("503"), TRANSIENT, "partner_center"),
        (pc.PartnerCenterTransportError("timeout"), TRANSIENT, "partner_center"),
        (pc.InvalidRequestError("closing date in the past"), PER_DEAL, "partner_center"),
        (pc.NotFoundError("no such referral"), PER_DEAL, "partner_center"),
        (sf.SignInRefusedError("refused"), GLOBAL, "salesforce"),
        (sf.AuthenticationError("invalid_client"), GLOBAL, "salesforce"),
        (
            sf.AccessDeniedError("INSUFFICIENT_ACCESS", error_code="INSUFFICIENT_ACCESS"),
            GLOBAL,
            "salesforce",
        ),
        (sf.ValidationError("No such column", error_code="INVALID_FIELD"), GLOBAL, "salesforce"),
        # Not writable on this record (a locked stage, a record type): the deal's; a field
        # the integration user can never write comes as OrgFieldAccessError (`run.refused`).
        (
            sf.FieldNotWritableError(
                "Unable to create/update fields: Amount",
                error_code="INVALID_FIELD_FOR_INSERT_UPDATE",
            ),
            PER_DEAL,
            "salesforce",
        ),
        (
            OrgFieldAccessError(
                "Opportunity.Description is hidden from cosell's user",
                sobject="Opportunity",
                fields=("Description",),
                hidden=True,
            ),
            GLOBAL,
            "salesforce",
        ),
        (GlobalSyncError("record type Partner missing", side="salesforce"), GLOBAL, "salesforce"),
        (
            sf.QueryError("sObject type 'X__c' is not supported", error_code="INVALID_TYPE"),
            GLOBAL,
            "salesforce",
        ),
        (
            sf.ConcurrentLimitError("ConcurrentPerOrgLongTxn", error_code="REQUEST_LIMIT_EXCEEDED"),
            GLOBAL,
            "salesforce",
        ),
        (
            sf.DailyLimitExceededError("TotalRequests", error_code="REQUEST_LIMIT_EXCEEDED"),
            GLOBAL,
            "salesforce",
        ),
        (
            sf.ServerUnavailableError("503", error_code="SERVER_UNAVAILABLE"),
            TRANSIENT,
            "salesforce",
        ),
        (sf.RowLockError("lock", error_code="UNABLE_TO_LOCK_ROW"), TRANSIENT, "salesforce"),
        (sf.SessionExpiredError("401", error_code="INVALID_SESSION_ID"), TRANSIENT, "salesforce"),
        (
            sf.CustomValidationError(
                "Enter an amount", error_code="FIELD_CUSTOM_VALIDATION_EXCEPTION"
            ),
            PER_DEAL,
            "salesforce",
        ),
        (
            sf.RequiredFieldMissingError("Region", error_code="REQUIRED_FIELD_MISSING"),
            PER_DEAL,
            "salesforce",
        ),
        (sf.ValidationError("too long", error_code="STRING_TOO_LONG"), PER_DEAL, "salesforce"),
        (ConcurrentEditsError("412 three times"), TRANSIENT, None),
        (KeyError("referral"), BUG, None),
    ],
)
def test_every_failure_has_one_scope(error: Exception, kind: str, side: str | None) -> None:
    scope = scope_of(error)
    assert (scope.kind, scope.side) == (kind, side)
    if kind == GLOBAL:
        assert scope.cause
        assert scope.fix  # a health error always says what to do


def test_throttling_is_global_and_keeps_its_retry_after() -> None:
    scope = scope_of(pc.ThrottledError("429", retry_after=7.0))
    assert scope.throttled
    assert scope.retry_after == 7.0


def test_a_side_failure_carries_its_scope() -> None:
    inner = Scope(GLOBAL, side="salesforce", cause="the mapping does not fit", fix="deploy it")
    assert scope_of(SideFailureError(inner)) is inner
    assert str(SideFailureError(inner)) == "the mapping does not fit; deploy it"


class _NoStore:
    """The breaker never touches the store when it does not persist."""

    def circuits(self) -> dict[str, Any]:
        return {}


def _breaker(clock: ManualClock) -> Breaker:
    return Breaker(cast(Store, _NoStore()), clock, probe_seconds=30.0, persist=False)


def test_a_circuit_opens_once_probes_at_a_bounded_rate_and_closes() -> None:
    clock = ManualClock()
    breaker = _breaker(clock)
    down = unreachable("salesforce", "503")
    with capture_logs() as events:
        assert breaker.trip(down)
        assert not breaker.trip(down)  # still open: no second warning
        assert breaker.is_open("salesforce")
        assert not breaker.is_open("partner_center")
        assert not breaker.due("salesforce")
        clock.advance(29)
        assert not breaker.due("salesforce")
        clock.advance(1)
        assert breaker.due("salesforce")
        breaker.probe_failed(down)
        assert not breaker.due("salesforce")  # the next probe one interval later
        clock.advance(30)
        assert breaker.due("salesforce")
        assert breaker.close("salesforce")
        assert not breaker.close("salesforce")
    warnings = [e["event"] for e in events if e["log_level"] == "warning"]
    assert warnings == ["sync.circuit_opened", "sync.circuit_closed"]
    assert not any(e.get("exc_info") for e in events)


def test_a_throttled_side_is_not_probed_before_its_retry_after() -> None:
    clock = ManualClock()
    breaker = _breaker(clock)
    with capture_logs() as events:
        breaker.trip(scope_of(pc.ThrottledError("429", retry_after=120.0)))
    assert [e["event"] for e in events] == ["sync.throttled"]
    clock.advance(119)
    assert not breaker.due("partner_center")
    clock.advance(1)
    assert breaker.due("partner_center")
