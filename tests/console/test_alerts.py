"""Alerts on changes of health: a local webhook receiver and a local SMTP server as channels.

The webhook receiver stands in for Slack, Teams and generic webhooks (apprise's `json://`
posts the alert as JSON); a tiny asyncio SMTP server receives the email (`mailto://`). Time is
the store's injected clock; health changes come from the store's links.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from console_kit import Deals
from structlog.testing import capture_logs
from typer.testing import CliRunner

from cosell.cli import app
from cosell.clock import ManualClock
from cosell.config import Settings
from cosell.server.alerts import Alerter, AlertPolicy, AlertWatch, build_watch
from cosell.store import Store, SyncStatus
from cosell.tokenhealth import TokenHealth

CONSOLE = "https://cosell.example.com/console"


@pytest.fixture(autouse=True)
def _unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """apprise waits 5.5 s between two messages of one service (real time): not in tests."""
    from apprise.plugins.base import NotifyBase

    monkeypatch.setattr(NotifyBase, "request_rate_per_sec", 0)


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.received.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP receiver: its json:// URL and the alerts it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_port}/alerts", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    url: str
    messages: list[Message] = field(default_factory=list)


async def _smtp_session(
    box: Mailbox, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"220 localhost test SMTP\r\n")
    in_data, lines = False, []
    while line := await reader.readline():
        if in_data:
            if line == b".\r\n":
                box.messages.append(message_from_bytes(b"".join(lines)))
                in_data, lines = False, []
                writer.write(b"250 queued\r\n")
            else:
                lines.append(line[1:] if line.startswith(b"..") else line)
            continue
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            writer.write(b"250 localhost\r\n")
        elif verb == b"DATA":
            in_data = True
            writer.write(b"354 end with a dot\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            break
        else:
            writer.write(b"250 ok\r\n")
        await writer.drain()
    await writer.drain()
    writer.close()


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    """A tiny SMTP server on a loopback port: its mailto:// URL and what it received."""
    box = Mailbox(url="")
    server = await asyncio.start_server(lambda r, w: _smtp_session(box, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    box.url = f"mailto://127.0.0.1:{port}?from=cosell@example.com&to=ops@example.com&mode=insecure"
    async with server:
        yield box
        server.close()


def watch_of(
    store: Store, clock: ManualClock, urls: list[str], tokens: list[TokenHealth]
) -> AlertWatch:
    policy = AlertPolicy(digest_every=timedelta(minutes=15), console_url=CONSOLE)
    return AlertWatch(
        store, Alerter(urls), policy, clock=clock, every_seconds=60, tokens=lambda: tokens
    )


async def test_each_change_of_health_sends_one_alert_per_channel_and_recovery_is_announced(
    store: Store,
    clock: ManualClock,
    deals: Deals,
    webhook: tuple[str, list[dict[str, str]]],
    mailbox: Mailbox,
) -> None:
    url, received = webhook
    watch = watch_of(store, clock, [url, mailbox.url], [])

    first = await watch.check()  # one deal in Error: degraded, announced at once
    assert [a.title for a in first] == ["cosell sync is degraded"]
    assert len(received) == 1
    assert len(mailbox.messages) == 1
    assert received[0]["title"] == "cosell sync is degraded"
    assert received[0]["type"] == "warning"
    assert "1 of 63 links are in Error" in received[0]["message"]
    assert "Fabrikam 50% deal" in received[0]["message"]
    assert f"{CONSOLE}/deals/{deals.failing.id}" in received[0]["message"]
    assert mailbox.messages[0]["Subject"] == "cosell sync is degraded"
    assert mailbox.messages[0]["To"] == "ops@example.com"

    for _ in range(5):  # the same state read again: nothing new
        clock.advance(60)
        assert await watch.check() == []
    assert len(received) == 1
    assert len(mailbox.messages) == 1

    for link in [deals.failing, *deals.others[:20]]:  # 21 of 63 in Error, 5 or more: failing
        store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error="boom")
    clock.advance(60)
    worse = await watch.check()
    assert [a.title for a in worse] == ["cosell sync is failing (was degraded)"]
    assert received[-1]["type"] == "failure"
    assert "20 deal(s) newly in Error" in received[-1]["message"]
    assert "and 10 more" in received[-1]["message"]

    for link in [deals.failing, *deals.others[:20]]:
        store.update_link(link.id, sync_status=SyncStatus.SYNCED, last_error=None)
    store.update_link(deals.pending.id, sync_status=SyncStatus.SYNCED)
    clock.advance(60)
    recovered = await watch.check()
    assert [a.title for a in recovered] == ["cosell sync recovered: healthy (was failing)"]
    assert received[-1]["type"] == "success"
    assert len(received) == 3
    assert len(mailbox.messages) == 3
    assert [m["Subject"] for m in mailbox.messages] == [r["title"] for r in received]


async def test_deals_newly_in_error_and_a_token_near_expiry_come_in_a_rate_limited_digest(
    store: Store, clock: ManualClock, deals: Deals, webhook: tuple[str, list[dict[str, str]]]
) -> None:
    url, received = webhook
    tokens: list[TokenHealth] = []
    watch = watch_of(store, clock, [url], tokens)
    await watch.check()
    assert len(received) == 1  # degraded at start

    store.update_link(deals.others[0].id, sync_status=SyncStatus.ERROR, last_error="boom")
    tokens.append(
        TokenHealth(
            side="partner_center",
            grant="refresh_token",
            days_left=3.0,
            warning="the refresh token expires in 3 days: run `cosell connect partner-center`",
        )
    )
    clock.advance(60)
    digest = await watch.check()  # still degraded; the first digest may go at once
    assert [a.kind for a in digest] == ["digest"]
    assert (
        received[-1]["title"] == "cosell: 1 deal(s) newly in Error and a connection needs attention"
    )
    assert "Bulk deal 000" in received[-1]["message"]
    assert "Partner Center: the refresh token expires in 3 days" in received[-1]["message"]
    assert f"{CONSOLE}/deals?status=Error" in received[-1]["message"]

    store.update_link(deals.others[1].id, sync_status=SyncStatus.ERROR, last_error="boom")
    clock.advance(60)
    assert await watch.check() == []  # within 15 minutes of the last digest: held back
    store.update_link(deals.others[2].id, sync_status=SyncStatus.ERROR, last_error="boom")
    clock.advance(60)
    store.update_link(deals.others[0].id, last_error="boom again")  # still in Error: not news
    assert await watch.check() == []
    assert len(received) == 2

    clock.advance(15 * 60)
    held = await watch.check()
    assert [a.kind for a in held] == ["digest"]
    assert received[-1]["title"] == "cosell: 2 deal(s) newly in Error"
    assert "Bulk deal 001" in received[-1]["message"]
    assert "Bulk deal 002" in received[-1]["message"]
    assert "Bulk deal 000" not in received[-1]["message"]
    assert "expires in 3 days" not in received[-1]["message"]  # the token was announced once

    clock.advance(60 * 60)
    assert await watch.check() == []
    assert len(received) == 3


async def test_a_failing_channel_is_logged_once_and_never_stops_the_others(
    store: Store,
    clock: ManualClock,
    deals: Deals,
    webhook: tuple[str, list[dict[str, str]]],
) -> None:
    url, received = webhook
    closed = f"json://127.0.0.1:{_closed_port()}/nobody"
    watch = watch_of(store, clock, [closed, url], [])
    with capture_logs() as logs:
        await watch.check()
        store.update_link(deals.failing.id, sync_status=SyncStatus.SYNCED, last_error=None)
        store.update_link(deals.pending.id, sync_status=SyncStatus.SYNCED)
        clock.advance(60)
        await watch.check()
    assert [r["title"] for r in received] == [
        "cosell sync is degraded",
        "cosell sync recovered: healthy (was degraded)",
    ]
    failures = [e for e in logs if e["event"] == "alerts.delivery_failed"]
    assert len(failures) == 1
    assert failures[0]["channel"] == "json"
    assert failures[0]["number"] == 1
    assert "nobody" not in str(failures[0])  # the URL (a secret) is never logged


async def test_the_watch_runs_in_the_background_on_the_injected_clock(
    store: Store, clock: ManualClock, deals: Deals, webhook: tuple[str, list[dict[str, str]]]
) -> None:
    url, received = webhook
    settings = Settings.model_validate(
        {
            "alerts": {"urls": [url], "check_seconds": 30},
            "server": {"public_url": "https://cosell.example.com/webhooks/partner-center"},
        }
    )
    watch = build_watch(settings, store=store, clock=clock)
    assert watch is not None
    assert watch.policy.console_url == CONSOLE
    task = asyncio.create_task(watch.run())
    try:
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.01)
        assert [r["title"] for r in received] == ["cosell sync is degraded"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_no_alert_urls_means_no_watch(store: Store, clock: ManualClock) -> None:
    assert build_watch(Settings(), store=store, clock=clock) is None


def test_alerts_test_sends_to_every_channel(
    tmp_path: Path, webhook: tuple[str, list[dict[str, str]]]
) -> None:
    url, received = webhook
    config = tmp_path / "cosell.toml"
    config.write_text(f'[alerts]\nurls = ["{url}"]\nconsole_url = "{CONSOLE}"\n')
    result = CliRunner().invoke(app, ["alerts", "test", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "1 of 1 channel(s) delivered the test alert." in result.output
    assert received[0]["title"] == "cosell test alert"
    assert f"{CONSOLE}/" in received[0]["message"]


def test_alerts_test_without_channels_says_what_to_set(tmp_path: Path) -> None:
    config = tmp_path / "cosell.toml"
    config.write_text("")
    result = CliRunner().invoke(app, ["alerts", "test", "--config", str(config)])
    assert result.exit_code == 1
    assert "no alert channel: set [alerts] urls" in result.output


def test_alerts_test_refuses_an_unknown_scheme_without_echoing_the_url(tmp_path: Path) -> None:
    config = tmp_path / "cosell.toml"
    config.write_text('[alerts]\nurls = ["nosuchservice://secret-token@host"]\n')
    result = CliRunner().invoke(app, ["alerts", "test", "--config", str(config)])
    assert result.exit_code == 1
    assert "apprise does not understand the alert URL `nosuchservice://…`" in result.output
    assert "secret-token" not in result.output


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_side_s_circuit_opening_and_closing_each_send_one_alert(
    store: Store,
    clock: ManualClock,
    deals: Deals,
    webhook: tuple[str, list[dict[str, str]]],
) -> None:
    from cosell.store import Circuit

    url, received = webhook
    watch = watch_of(store, clock, [url], [])
    await watch.check()
    assert [r["title"] for r in received] == ["cosell sync is degraded"]  # one deal in Error

    def circuit(side: str, state: str) -> Circuit:
        opened = state == "open"
        return Circuit(
            side=side,
            state=state,
            cause="the org refused the login (invalid_grant)" if opened else "",
            fix="renew the certificate, then wait for the next probe" if opened else "",
            since=clock.now(),
            next_probe_at=clock.now() + timedelta(minutes=1) if opened else None,
        )

    store.set_circuit(circuit("salesforce", "open"))  # degraded -> failing: folded in
    clock.advance(60)
    assert [a.title for a in await watch.check()] == ["cosell sync is failing (was degraded)"]
    assert "Salesforce's circuit opened" in received[-1]["message"]
    assert "invalid_grant" in received[-1]["message"]
    assert "renew the certificate" in received[-1]["message"]

    store.set_circuit(circuit("partner_center", "open"))  # still failing: its own alert
    clock.advance(60)
    opened = await watch.check()
    assert [a.kind for a in opened] == ["circuit"]
    assert received[-1]["type"] == "failure"
    assert "Partner Center's circuit opened" in received[-1]["message"]
    assert "Salesforce" not in received[-1]["message"]

    for _ in range(3):  # the same circuits read again: nothing
        clock.advance(60)
        assert await watch.check() == []

    store.set_circuit(circuit("salesforce", "closed"))  # Partner Center's still open
    clock.advance(60)
    closed = await watch.check()
    assert [a.kind for a in closed] == ["circuit"]
    assert received[-1]["type"] == "success"
    assert "Salesforce's circuit closed" in received[-1]["message"]

    store.set_circuit(circuit("partner_center", "closed"))  # failing -> degraded
    clock.advance(60)
    assert [a.title for a in await watch.check()] == ["cosell sync is degraded (was failing)"]
    assert "Partner Center's circuit closed" in received[-1]["message"]
    assert len(received) == 5
