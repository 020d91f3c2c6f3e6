"""The console's part of failures by scope: pauses, re-sync now, circuits, one set of counts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import escape
from pathlib import Path

import pytest
from console_kit import (
    OPERATOR_PASSWORD,
    VIEWER_PASSWORD,
    Deals,
    Notified,
    SyncedNow,
    console_app,
    csrf_of,
    sign_in,
)
from starlette.testclient import TestClient

from cosell.clock import ManualClock
from cosell.server.console.health import DEGRADED, FAILING, judge
from cosell.store import Circuit, Store, SyncStatus
from cosell.store.console_queries import overview
from cosell.store.types import referral_key


@pytest.fixture
def synced_now() -> SyncedNow:
    return SyncedNow()


@pytest.fixture
def operator(
    store: Store, clock: ManualClock, users_file: Path, notified: Notified, synced_now: SyncedNow
) -> Iterator[TestClient]:
    app = console_app(store, clock, users_file, notified, synced_now)
    with TestClient(app, follow_redirects=False) as tc:
        sign_in(tc, "admin", OPERATOR_PASSWORD)
        yield tc


def _open(store: Store, clock: ManualClock, side: str = "salesforce") -> Circuit:
    circuit = Circuit(
        side=side,
        state="open",
        cause="Salesforce refused cosell's credentials (invalid_client)",
        fix="correct [salesforce] client_secret, then wait for the next probe",
        since=clock.now(),
        next_probe_at=clock.now() + timedelta(seconds=90),
    )
    store.set_circuit(circuit)
    return circuit


def test_pausing_all_sync_uses_the_store_verb_audits_who_and_shows_a_banner_everywhere(
    operator: TestClient, store: Store, deals: Deals
) -> None:
    page = operator.get("/console/")
    assert 'id="pause-all"' in page.text
    assert 'id="paused-banner"' not in page.text
    answer = operator.post(
        "/console/pause", data={"csrf": csrf_of(page.text), "reason": "Salesforce release"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/?notice=paused-all"
    [pause] = store.pauses()
    assert (pause.target, pause.by, pause.reason) == (None, "admin", "Salesforce release")
    assert store.audit(None)[0].message == "all sync paused by admin: Salesforce release"
    assert store.audit(None)[0].details["by"] == "admin"
    for path in ("/console/", "/console/deals", f"/console/deals/{deals.synced.id}"):
        shown = operator.get(path).text
        assert 'id="paused-banner"' in shown, path
        assert "All sync is paused</strong> by admin since" in shown
        assert "Salesforce release" in shown
    assert 'id="pause-all"' not in operator.get("/console/").text

    again = operator.post("/console/pause", data={"csrf": csrf_of(page.text)})
    assert again.headers["location"] == "/console/?notice=unchanged"

    resumed = operator.post("/console/resume", data={"csrf": csrf_of(page.text)})
    assert resumed.headers["location"] == "/console/?notice=resumed-all"
    assert store.pauses() == []
    assert store.audit(None)[0].message == "all sync resumed by admin"
    assert 'id="paused-banner"' not in operator.get("/console/").text


def test_pausing_one_deal_shows_it_paused_counts_it_and_filters_by_it(
    operator: TestClient, store: Store, deals: Deals, notified: Notified
) -> None:
    page = operator.get(f"/console/deals/{deals.synced.id}")
    assert 'id="pause"' in page.text
    answer = operator.post(
        f"/console/deals/{deals.synced.id}/pause", data={"csrf": csrf_of(page.text)}
    )
    assert answer.headers["location"] == f"/console/deals/{deals.synced.id}?notice=paused"
    assert notified.keys == ["referral:ref-contoso"]  # the engine holds it, the record shows it
    shown = operator.get(f"/console/deals/{deals.synced.id}").text
    assert '<span class="badge Paused">Paused</span>' in shown
    assert "paused by admin since" in shown
    assert 'id="resume"' in shown
    assert store.audit(deals.synced.id)[0].message == "sync of this deal paused by admin"
    listed = operator.get("/console/deals?status=Paused").text
    assert "Contoso cloud migration" in listed
    assert "Bulk deal" not in listed
    assert 'id="range">1&ndash;1 of 1<' in listed
    assert re.search(
        r'id="count-Paused">.*?<div class="value">1</div>', operator.get("/console/").text
    )

    operator.post(f"/console/deals/{deals.synced.id}/resume", data={"csrf": csrf_of(page.text)})
    assert store.pauses() == []
    assert "Contoso" not in operator.get("/console/deals?status=Paused").text


def test_pause_actions_need_the_csrf_token_and_the_operator_role(
    store: Store, clock: ManualClock, users_file: Path, notified: Notified, deals: Deals
) -> None:
    with TestClient(console_app(store, clock, users_file, notified), follow_redirects=False) as tc:
        sign_in(tc, "admin", OPERATOR_PASSWORD)
        assert tc.post("/console/pause", data={"csrf": "forged"}).status_code == 403
        assert tc.post(f"/console/deals/{deals.synced.id}/pause", data={}).status_code == 403
        assert store.pauses() == []
    with TestClient(console_app(store, clock, users_file, notified), follow_redirects=False) as tc:
        sign_in(tc, "reader", VIEWER_PASSWORD)
        page = tc.get("/console/")
        assert 'id="pause-all"' not in page.text
        refused = tc.post("/console/pause", data={"csrf": csrf_of(page.text)})
        assert refused.status_code == 403
        assert "viewer" in refused.text
        assert store.pauses() == []


def test_pausing_a_deal_that_does_not_exist_is_a_404_not_a_500(
    operator: TestClient, deals: Deals
) -> None:
    csrf = csrf_of(operator.get("/console/").text)
    for link_id in ("f" * 32, "not-an-id"):
        answer = operator.post(f"/console/deals/{link_id}/pause", data={"csrf": csrf})
        assert answer.status_code == 404
        assert "no deal with this id" in answer.text


def test_re_sync_now_runs_the_deal_s_key_in_the_foreground_and_audits_who_asked(
    operator: TestClient, store: Store, deals: Deals, synced_now: SyncedNow
) -> None:
    page = operator.get(f"/console/deals/{deals.failing.id}")
    assert 'id="sync"' in page.text
    answer = operator.post(
        f"/console/deals/{deals.failing.id}/sync", data={"csrf": csrf_of(page.text)}
    )
    assert answer.headers["location"] == f"/console/deals/{deals.failing.id}?notice=synced"
    assert synced_now.keys == [[referral_key("ref-fabrikam")]]
    entry = store.audit(deals.failing.id)[0]
    assert entry.message == "sync requested by admin (console)"
    assert entry.details["by"] == "admin"

    synced_now.ok = False
    failed = operator.post(
        f"/console/deals/{deals.failing.id}/sync", data={"csrf": csrf_of(page.text)}
    )
    assert failed.headers["location"].endswith("?notice=sync-failed")


def test_the_deal_page_shows_the_next_automatic_retry_and_the_retries_so_far(
    operator: TestClient, store: Store, clock: ManualClock, deals: Deals
) -> None:
    shown = operator.get(f"/console/deals/{deals.failing.id}").text
    assert "none scheduled" in shown
    store.update_link(deals.failing.id, retries=3, retry_at=clock.now() + timedelta(minutes=8))
    shown = operator.get(f"/console/deals/{deals.failing.id}").text
    assert re.search(r"id='retries'>3<", shown)
    assert re.search(r"id='retry-at'><time [^>]+>[^<]+</time> \(in 8 min\)", shown)


def test_an_open_circuit_shows_its_cause_fix_and_probe_and_holds_deals_as_pending(
    operator: TestClient, store: Store, clock: ManualClock, deals: Deals
) -> None:
    circuit = _open(store, clock)
    store.hold_keys([referral_key("ref-bulk-000")], side="salesforce")
    page = operator.get("/console/").text
    card = re.search(r'id="circuit-salesforce">(.*?)</div></div>', page, re.S)
    assert card is not None
    assert escape(circuit.cause) in card.group(1)
    assert "correct [salesforce] client_secret" in card.group(1)
    assert "Next probe" in card.group(1)
    assert "(in 1 min)" in card.group(1)
    assert 'id="circuit-partner_center"' in page
    assert "circuit closed" in page
    assert '<div class="banner failing" id="health">' in page
    assert "Salesforce is paused by its circuit breaker" in page
    held = operator.get("/console/deals?status=Held").text
    assert "Bulk deal 000" in held
    assert 'id="range">1&ndash;1 of 1<' in held
    assert "Pending (held by an open circuit)" in held
    assert '<span class="badge Held"' in held


def test_health_is_failing_for_an_open_circuit_and_degraded_while_paused(
    store: Store, clock: ManualClock, deals: Deals
) -> None:
    store.update_link(deals.failing.id, sync_status=SyncStatus.SYNCED, last_error=None)
    store.update_link(deals.pending.id, sync_status=SyncStatus.SYNCED)
    assert judge(overview(store, now=clock.now()), now=clock.now()).state == "healthy"
    store.set_pause(None, paused=True, by="alice", reason="quarter close")
    paused = judge(overview(store, now=clock.now()), now=clock.now())
    assert paused.state == DEGRADED
    assert paused.reasons[0].startswith("all sync paused by alice since ")
    assert "quarter close" in paused.reasons[0]
    _open(store, clock, "partner_center")
    failing = judge(overview(store, now=clock.now()), now=clock.now())
    assert failing.state == FAILING
    assert "Partner Center is paused by its circuit breaker" in failing.reasons[0]
    assert "invalid_client" in failing.reasons[0]


def test_a_long_pause_by_hand_stays_degraded(
    store: Store, clock: ManualClock, deals: Deals
) -> None:
    store.update_link(deals.failing.id, sync_status=SyncStatus.SYNCED, last_error=None)
    store.set_pause(None, paused=True, by="alice")
    store.hold_keys([referral_key("ref-bulk-000")], side="paused")
    clock.advance(3 * 3600)
    health = judge(overview(store, now=clock.now()), now=clock.now())
    assert health.state == DEGRADED
    assert any(r.startswith("a change has been pending for 3 h") for r in health.reasons)
    store.set_pause(None, paused=False, by="alice")  # not paused: the same wait is failing
    assert judge(overview(store, now=clock.now()), now=clock.now()).state == FAILING


def test_re_sync_now_held_by_a_pause_or_a_circuit_says_why_and_what_to_do(
    operator: TestClient, store: Store, clock: ManualClock, deals: Deals, synced_now: SyncedNow
) -> None:
    page = operator.get(f"/console/deals/{deals.failing.id}")
    csrf = csrf_of(page.text)
    synced_now.ok = False  # the engine's outcome: held, not synced
    store.set_pause(None, paused=True, by="bob", reason="org migration")
    held = operator.post(f"/console/deals/{deals.failing.id}/sync", data={"csrf": csrf})
    assert held.status_code == 200
    assert "Held, not synced" in held.text
    assert f"all sync is paused by bob since {clock.now():%Y-%m-%d %H:%M} UTC" in held.text
    assert "(org migration)" in held.text
    assert "run cosell resume, or Resume in the console" in held.text
    assert "did not end in sync" not in held.text

    store.set_pause(None, paused=False, by="bob")
    circuit = _open(store, clock)
    held = operator.post(f"/console/deals/{deals.failing.id}/sync", data={"csrf": csrf})
    assert held.status_code == 200
    assert f"waiting for Salesforce: {escape(circuit.cause)}" in held.text
    assert f"fix: {escape(circuit.fix)}" in held.text

    store.set_circuit(Circuit("salesforce", "closed", "", "", clock.now(), None))
    failed = operator.post(f"/console/deals/{deals.failing.id}/sync", data={"csrf": csrf})
    assert failed.headers["location"].endswith("?notice=sync-failed")  # nothing holds it
