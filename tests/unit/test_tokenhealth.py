"""Token health from the settings and token files, and where it shows: status, /readyz, /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from cosell.clock import ManualClock
from cosell.commands.serve import readiness_checks
from cosell.commands.status import StatusReport, report_json
from cosell.config import Settings
from cosell.server.metrics import Metrics
from cosell.store import DealCounts
from cosell.store.store import StoreSummary
from cosell.tokenhealth import token_health
from cosell.tokenstore import FileTokenStore

DAY = 86_400


def settings(tmp_path: Path, **partner_center: Any) -> Settings:
    return Settings.model_validate(
        {
            "partner_center": {
                "tenant_id": "t",
                "client_id": "c",
                "refresh_token_file": str(tmp_path / "pc.json"),
                **partner_center,
            },
            "salesforce": {
                "auth": "refresh_token",
                "consumer_key": "k",
                "consumer_secret": "s",
                "refresh_token_file": str(tmp_path / "sf.json"),
            },
        }
    )


def connected(tmp_path: Path, clock: ManualClock, *, mfa: bool = True) -> Settings:
    FileTokenStore(tmp_path / "pc.json", clock=clock).connect(
        "pc-refresh-secret", grant="device_code", mfa=mfa, user="admin@contoso.example"
    )
    FileTokenStore(tmp_path / "sf.json", clock=clock).connect(
        "sf-refresh-secret", grant="web_server", mfa=None, user="cosell@contoso.example"
    )
    return settings(tmp_path)


def test_a_fresh_connection_has_ninety_days(tmp_path: Path) -> None:
    clock = ManualClock()
    pc, sf = token_health(connected(tmp_path, clock), clock=clock)
    assert (pc.grant, pc.mfa, pc.user) == (
        "refresh_token (device_code)",
        True,
        "admin@contoso.example",
    )
    assert pc.rotated_at == pc.used_at == clock.now()
    assert pc.days_left == 90
    assert (pc.problem, pc.warning) == (None, None)
    assert (sf.grant, sf.mfa, sf.days_left, sf.problem) == (
        "refresh_token (web_server)",
        None,
        None,
        None,
    )
    assert "pc-refresh-secret" not in str(pc.as_json()) + pc.summary()


def test_use_moves_the_deadline_and_idleness_warns_then_fails(tmp_path: Path) -> None:
    clock = ManualClock()
    config = connected(tmp_path, clock)
    clock.advance(50 * DAY)
    FileTokenStore(tmp_path / "pc.json", clock=clock).save("rotated")  # a use, 50 days in
    pc, _ = token_health(config, clock=clock)
    assert pc.days_left == 90
    assert pc.rotated_at == clock.now()

    clock.advance(80 * DAY)
    pc, _ = token_health(config, clock=clock)
    assert pc.warning is not None
    assert "expires in 10 days" in pc.warning
    assert pc.problem is None

    clock.advance(11 * DAY)
    pc, _ = token_health(config, clock=clock)
    assert pc.problem is not None
    assert "Partner Center sign-in expired" in pc.problem
    assert "run cosell connect partner-center" in pc.problem


def test_no_mfa_and_the_password_grant_are_problems(tmp_path: Path) -> None:
    clock = ManualClock()
    pc, _ = token_health(connected(tmp_path, clock, mfa=False), clock=clock)
    assert pc.mfa is False
    assert pc.problem is not None
    assert "900421" in pc.problem

    pc, _ = token_health(
        settings(tmp_path, auth="password", username="u", password="p"), clock=clock
    )
    assert (pc.grant, pc.mfa) == ("password", False)
    assert pc.problem is not None
    assert "cosell connect partner-center" in pc.problem


def test_status_json_shows_each_connection(tmp_path: Path) -> None:
    clock = ManualClock()
    summary = StoreSummary(
        links_by_status={},
        never_synced=0,
        oldest_pending_at=None,
        last_synced_at=None,
        newest_audit_at=None,
        inbox_pending=0,
        oldest_event_at=None,
        cursors=(),
    )
    report = StatusReport(
        checked_at=clock.now(),
        summary=summary,
        errors=(),
        usage=(),
        deals=DealCounts(synced=0, pending=0, error=0, paused=0, oldest_unsynced_at=None),
        circuits={},
        pauses=(),
        connections=token_health(connected(tmp_path, clock), clock=clock),
    )
    connections = report_json(report)["connections"]
    assert connections["partner_center"] == {
        "grant": "refresh_token (device_code)",
        "mfa": True,
        "user": "admin@contoso.example",
        "rotated_at": clock.now().isoformat(),
        "used_at": clock.now().isoformat(),
        "expires_at": "2026-04-05T09:00:00+00:00",
        "days_left": 90.0,
        "problem": None,
        "warning": None,
    }
    assert connections["salesforce"]["grant"] == "refresh_token (web_server)"


def test_metrics_gauges(tmp_path: Path) -> None:
    clock = ManualClock()
    config = connected(tmp_path, clock)
    clock.advance(10 * DAY)
    text = Metrics(token_health=lambda: token_health(config, clock=clock)).render().decode()
    assert 'cosell_token_days_left{side="partner_center"} 80.0' in text
    assert 'cosell_token_mfa{side="partner_center"} 1.0' in text
    assert 'cosell_token_ok{side="partner_center"} 1.0' in text
    assert 'cosell_token_ok{side="salesforce"} 1.0' in text
    assert 'cosell_token_rotated_timestamp_seconds{side="salesforce"}' in text
    assert 'cosell_token_used_timestamp_seconds{side="partner_center"}' in text
    assert 'cosell_token_days_left{side="salesforce"}' not in text  # valid until revoked


async def test_readiness_turns_unready_and_warns_once(tmp_path: Path) -> None:
    clock = ManualClock()
    config = connected(tmp_path, clock)
    checks = readiness_checks(
        config, store=cast(Any, None), ctx=cast(Any, None), pc_http=cast(Any, None), clock=clock
    )
    (check,) = [c for c in checks if c.name == "token_health"]
    assert check.ttl_seconds == 0
    assert await check.run() == "sign-ins usable"

    clock.advance(80 * DAY)
    with capture_logs() as logs:
        await check.run()
        await check.run()
    warnings = [e for e in logs if e["event"] == "token.expires_soon"]
    assert len(warnings) == 1  # once, not on every probe
    assert warnings[0]["side"] == "partner_center"
    assert "pc-refresh-secret" not in str(logs)

    clock.advance(11 * DAY)
    with pytest.raises(Exception, match="Partner Center sign-in expired"):
        await check.run()


async def test_serve_watches_the_token_health_without_being_probed(tmp_path: Path) -> None:
    import asyncio

    from cosell.commands.serve import _watch_token_health
    from cosell.tokenhealth import TokenHealthWatch

    clock = ManualClock()
    config = connected(tmp_path, clock)
    clock.advance(80 * DAY)
    with capture_logs() as logs:
        task = asyncio.create_task(
            _watch_token_health(TokenHealthWatch(config, clock=clock), clock)
        )
        for _ in range(5):  # each round sleeps an hour on the manual clock
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert clock.sleeps[:2] == [3600.0, 3600.0]
    assert [e["side"] for e in logs if e["event"] == "token.expires_soon"] == ["partner_center"]
