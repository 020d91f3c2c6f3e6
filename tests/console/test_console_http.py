"""The console over HTTP: sign-in, sessions, CSRF, roles, and what each page shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from console_kit import (
    FAST_SCRYPT,
    OPERATOR_PASSWORD,
    PC_UI,
    SF_INSTANCE,
    VIEWER_PASSWORD,
    Deals,
    Notified,
    console_app,
    csrf_of,
    sign_in,
)
from starlette.testclient import TestClient

from cosell.clock import ManualClock
from cosell.server.console.auth import COOKIE, SESSION_SECONDS, Role, set_password
from cosell.store import Store, SyncStatus


@pytest.mark.parametrize("path", ["/console/", "/console/deals?q=x", "/console/deals/" + "a" * 32])
def test_a_page_without_a_session_redirects_to_the_sign_in_form(
    client: TestClient, path: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=%2Fconsole%2F")


def test_an_action_without_a_session_redirects_and_does_nothing(
    client: TestClient, deals: Deals, notified: Notified
) -> None:
    answer = client.post(f"/console/deals/{deals.failing.id}/retry", data={"csrf": "x"})
    assert answer.status_code == 303
    assert notified.keys == []


def test_signing_in_sets_a_signed_http_only_same_site_cookie_and_goes_back(
    client: TestClient,
) -> None:
    form = client.get("/console/login?next=%2Fconsole%2Fdeals")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/console/login?next=%2Fconsole%2Fdeals",
        data={"username": "admin", "password": OPERATOR_PASSWORD, "login_token": token.group(1)},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/deals"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    assert OPERATOR_PASSWORD not in cookie
    assert client.get("/console/deals").status_code == 200


def test_over_https_the_session_cookie_is_secure(
    store: Store, clock: ManualClock, users_file: Path, notified: Notified
) -> None:
    app = console_app(store, clock, users_file, notified)
    with TestClient(app, base_url="https://console.example", follow_redirects=False) as https:
        sign_in(https, "admin", OPERATOR_PASSWORD)
        assert https.cookies.get(COOKIE)
        form = https.get("/console/login")
        assert all("Secure" in c for c in form.headers.get_list("set-cookie"))


def test_a_wrong_password_or_user_is_refused_alike(client: TestClient) -> None:
    for user, password in (("admin", "not the password"), ("nobody", OPERATOR_PASSWORD)):
        form = client.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        answer = client.post(
            "/console/login",
            data={"username": user, "password": password, "login_token": token.group(1)},
        )
        assert answer.status_code == 401
        assert "Wrong user or password." in answer.text
        assert not any(c.startswith(f"{COOKIE}=") for c in answer.headers.get_list("set-cookie"))


def test_a_sign_in_without_the_forms_token_is_refused(client: TestClient) -> None:
    answer = client.post(
        "/console/login", data={"username": "admin", "password": OPERATOR_PASSWORD}
    )
    assert answer.status_code == 400
    assert "expired" in answer.text


def test_sign_in_never_redirects_to_another_site(client: TestClient) -> None:
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/console/login?next=%2F%2Fevil.example%2F",
        data={"username": "admin", "password": OPERATOR_PASSWORD, "login_token": token.group(1)},
    )
    assert answer.headers["location"] == "/console/"


def test_without_users_the_sign_in_page_says_how_to_create_one(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    app = console_app(store, clock, tmp_path / "missing.json", None)
    with TestClient(app, follow_redirects=False) as fresh:
        page = fresh.get("/console/login")
        assert page.status_code == 200
        assert "cosell console set-password" in page.text
        assert fresh.get("/console/").status_code == 303


def test_a_forged_or_expired_session_is_signed_out(client: TestClient, clock: ManualClock) -> None:
    sign_in(client, "admin", OPERATOR_PASSWORD)
    good = client.cookies[COOKIE]
    payload, signature = good.rsplit(".", 1)
    client.cookies.set(COOKIE, f"{payload}.{'A' * len(signature)}", path="/console")
    assert client.get("/console/").status_code == 303
    client.cookies.set(COOKIE, good, path="/console")
    assert client.get("/console/").status_code == 200
    clock.advance(SESSION_SECONDS + 1)
    assert client.get("/console/").status_code == 303


def test_a_new_password_signs_the_old_sessions_out(client: TestClient, users_file: Path) -> None:
    sign_in(client, "admin", OPERATOR_PASSWORD)
    assert client.get("/console/").status_code == 200
    set_password(users_file, "admin", "a brand new password", Role.OPERATOR, n=FAST_SCRYPT)
    assert client.get("/console/").status_code == 303


def test_an_action_without_the_csrf_token_is_refused(
    client: TestClient, deals: Deals, notified: Notified, store: Store
) -> None:
    sign_in(client, "admin", OPERATOR_PASSWORD)
    for data in ({}, {"csrf": "forged"}):
        answer = client.post(f"/console/deals/{deals.failing.id}/retry", data=data)
        assert answer.status_code == 403
        assert "expired" in answer.text
    assert client.post("/console/retry-errors", data={}).status_code == 403
    assert notified.keys == []
    assert not [e for e in store.audit(deals.failing.id) if "retry" in e.message]


def test_a_viewer_sees_the_pages_but_cannot_act(
    client: TestClient, deals: Deals, notified: Notified
) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get(f"/console/deals/{deals.failing.id}")
    assert page.status_code == 200
    assert 'id="retry"' not in page.text
    assert "Viewers cannot act" in page.text
    overview = client.get("/console/")
    assert 'id="retry-errors"' not in overview.text
    answer = client.post(
        f"/console/deals/{deals.failing.id}/retry", data={"csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 403
    assert "viewer" in answer.text
    answer = client.post("/console/retry-errors", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 403
    assert notified.keys == []


def test_an_operator_retries_a_deal_and_the_audit_says_who(
    client: TestClient, deals: Deals, notified: Notified, store: Store
) -> None:
    sign_in(client, "admin", OPERATOR_PASSWORD)
    page = client.get(f"/console/deals/{deals.failing.id}")
    answer = client.post(
        f"/console/deals/{deals.failing.id}/retry", data={"csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/deals/{deals.failing.id}?notice=retried"
    assert notified.keys == ["referral:ref-fabrikam"]
    newest = store.audit(deals.failing.id, limit=1)[0]
    assert newest.message == "retry requested from the console by admin"
    assert newest.details == {"by": "admin", "action": "retry", "enqueued": True}
    shown = client.get(answer.headers["location"]).text
    assert "A retry of this deal was queued" in shown
    assert "retry requested from the console by admin" in shown


def test_retry_every_deal_in_error_notifies_each_of_them(
    client: TestClient, deals: Deals, notified: Notified, store: Store
) -> None:
    second = deals.others[0]
    store.update_link(
        second.id, sync_status=SyncStatus.ERROR, last_error="HTTP 503 from Salesforce"
    )
    sign_in(client, "admin", OPERATOR_PASSWORD)
    overview = client.get("/console/")
    assert "Retry every deal in Error (2)" in overview.text
    answer = client.post("/console/retry-errors", data={"csrf": csrf_of(overview.text)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/?notice=retried-2"
    assert sorted(notified.keys) == ["referral:ref-bulk-000", "referral:ref-fabrikam"]
    for link_id in (deals.failing.id, second.id):
        assert store.audit(link_id, limit=1)[0].details["by"] == "admin"


def test_the_overview_shows_the_stores_figures_and_why_health_is_degraded(
    client: TestClient, deals: Deals, store: Store
) -> None:
    store.record_event(source="partner-center", event_id="e1", key="referral:ref-x", payload=b"{}")
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get("/console/").text
    counts = {
        s: re.search(rf'id="count-{s}".*?class="value">([\d,]+)<', page, re.S)
        for s in ("Synced", "Pending", "Error")
    }
    assert {s: m.group(1) for s, m in counts.items() if m} == {
        "Synced": "61",
        "Pending": "1",
        "Error": "1",
    }
    assert 'class="banner degraded"' in page
    assert "1 of 63 links are in Error" in page
    errors = re.search(r'id="errors".*?class="value"[^>]*>(\d+)<', page, re.S)
    assert errors is not None
    assert errors.group(1) == "1"
    inbox = re.search(r'id="inbox".*?class="value"[^>]*>(\d+)<', page, re.S)
    assert inbox is not None
    assert inbox.group(1) == "1"


def test_the_overview_charts_synced_changes_and_errors_from_the_audit(
    client: TestClient, deals: Deals, store: Store, clock: ManualClock
) -> None:
    for _ in range(3):
        store.record_audit(deals.synced.id, "synced 1 field", details={"api_calls": 2})
    clock.advance(2 * 86400)  # two days later: out of the 24 h chart, in the 7 days'
    store.record_audit(deals.synced.id, "synced 2 fields", details={"api_calls": 2})
    store.record_audit(deals.failing.id, "error: refused", details={"api_calls": 1})
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get("/console/").text

    def bars(chart: str) -> list[tuple[int, int]]:
        section = page.split(f'id="{chart}"', 1)[1].split("</figure>", 1)[0]
        return [
            (int(a), int(b))
            for a, b in re.findall(r'data-synced="(\d+)" data-errors="(\d+)"', section)
        ]

    hours, days = bars("chart-24h"), bars("chart-7d")
    assert len(hours) == 24
    assert len(days) == 7
    assert hours[-1] == (1, 1)
    assert sum(s for s, _ in hours) == 1
    assert sum(s for s, _ in days) == 4
    assert sum(e for _, e in days) == 2  # the seed's error two days ago too
    assert "1 synced · 1 errors" in page
    assert "<script" not in page


def test_the_overview_shows_api_usage_against_budgets_and_token_health(
    client: TestClient, deals: Deals
) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get("/console/").text
    salesforce = page.split('id="usage-salesforce"', 1)[1].split("</tr>", 1)[0]
    assert "4,200 of 5,000 (84% of cosell's budget) in 24 h" in salesforce
    assert 'class="meter warn"' in salesforce
    assert "org limit 15,000" in salesforce
    assert '<td class="calls">340</td>' in salesforce
    partner_center = page.split('id="usage-partner_center"', 1)[1].split("</tr>", 1)[0]
    assert "publishes no daily budget" in partner_center
    assert '<td class="throttled">2</td>' in partner_center
    token = page.split('id="token-partner_center"', 1)[1].split("</tr>", 1)[0]
    assert "expires soon" in token
    assert "cosell connect partner-center" in token
    assert "MFA" in token
    assert "ok" in page.split('id="token-salesforce"', 1)[1].split("</tr>", 1)[0]


def test_a_change_stream_down_degrades_health_with_its_reason(
    client: TestClient, deals: Deals, store: Store
) -> None:
    from datetime import UTC, datetime

    from cosell.sync.engine.streamstate import STATE_CURSOR, StreamState

    since = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    down = StreamState(state="down", since=since, error="the event bus is unavailable")
    store.set_cursor(STATE_CURSOR, down.dump())
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get("/console/").text
    assert 'class="banner degraded"' in page
    assert "Salesforce change events (CDC) are down" in page
    assert "the event bus is unavailable" in page


def test_deals_are_searched_by_name_customer_ids_and_status(
    client: TestClient, deals: Deals
) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)

    def names(query: str) -> list[str]:
        page = client.get(f"/console/deals?{query}").text
        return re.findall(r'<a href="/console/deals/[0-9a-f]{32}">([^<]+)</a>', page)

    assert names("q=contoso") == ["Contoso cloud migration"]
    assert names("q=FABRIKAM+INC") == ["Fabrikam 50% deal"]
    assert names("q=ref-northwind") == ["Northwind renewal"]
    assert names(f"q={deals.synced.record_id}") == ["Contoso cloud migration"]
    assert names("q=error") == ["Fabrikam 50% deal"]
    assert names("status=Pending") == ["Northwind renewal"]
    assert names("q=50%25") == ["Fabrikam 50% deal"]  # % is a character, not a wildcard
    assert names("q=nothing+like+this") == []


def test_deals_are_filtered_by_direction_and_stage_and_the_pager_keeps_the_filters(
    client: TestClient, deals: Deals
) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get("/console/deals?direction=Outgoing&stage=Active%2FAccepted").text
    assert '<option value="Outgoing" selected>' in page
    assert '<option value="Active/Accepted" selected>' in page
    assert '<option value="Closed/Won">' in page  # the stages the bases hold are offered
    assert "1&ndash;20 of 20" in page  # odd bulk deals not divisible by 3
    assert page.count("<td class='wide direction'>Outgoing</td>") == 20
    assert "<td class='wide direction'>Incoming</td>" not in page
    assert "1&ndash;32 of 32" in client.get("/console/deals?direction=Incoming").text
    assert (
        "1&ndash;10 of 10"
        in client.get("/console/deals?direction=Incoming&stage=Closed%2FWon").text
    )
    # Unknown values are ignored, not errors; a long stage matches nothing.
    assert "of 63" in client.get("/console/deals?direction=sideways").text
    assert "of 0" in client.get("/console/deals?stage=" + "x" * 500).text


def test_the_deals_pager_carries_direction_and_stage(client: TestClient, deals: Deals) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get("/console/deals?direction=Incoming&stage=Active%2FAccepted&offset=10").text
    assert "11&ndash;20 of 20" in page
    previous = re.search(r'href="([^"]+)" rel="prev"', page)
    assert previous is not None
    assert "direction=Incoming&stage=Active%2FAccepted&offset=0" in previous.group(1)
    assert 'rel="next"' not in page


def test_the_deals_list_is_paged_on_the_server(client: TestClient, deals: Deals) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    first = client.get("/console/deals?q=bulk").text
    assert "1&ndash;50 of 60" in first
    assert "Bulk deal 059" in first  # the newest first
    following = client.get("/console/deals?q=bulk&offset=50").text
    assert "51&ndash;60 of 60" in following
    assert "Bulk deal 000" in following
    assert "Bulk deal 059" not in following
    assert client.get("/console/deals?offset=-3&status=Bogus").status_code == 200


def test_one_deal_shows_base_conflicts_with_the_losing_value_audit_and_links(
    client: TestClient, deals: Deals
) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get(f"/console/deals/{deals.synced.id}").text
    assert "Contoso cloud migration" in page
    assert f'href="{PC_UI}/ref-contoso"' in page
    assert f'href="{SF_INSTANCE}/lightning/r/Opportunity/{deals.synced.record_id}/view"' in page
    base = re.search(r"<table id='base'>.*?</table>", page, re.S)
    assert base is not None
    assert "Qualify" in base.group(0)
    assert "Contoso Ltd" in base.group(0)
    conflict = re.search(r"<table id='conflicts'>.*?</table>", page, re.S)
    assert conflict is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", conflict.group(0))
    assert cells[1:] == ["stage", "Qualify", "Develop", "New", "Partner Center", "Develop"]
    assert "synced 2 fields to Salesforce" in page


def test_one_deal_in_error_shows_the_error_and_what_to_do(client: TestClient, deals: Deals) -> None:
    sign_in(client, "admin", OPERATOR_PASSWORD)
    page = client.get(f"/console/deals/{deals.failing.id}").text
    box = re.search(r'id="last-error">(.*?)</div>', page, re.S)
    assert box is not None
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in box.group(1)
    assert "One side refused the values" in box.group(1)
    assert 'id="retry"' in page


def test_an_unknown_or_malformed_deal_is_404(client: TestClient) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    assert client.get("/console/deals/" + "0" * 32).status_code == 404
    assert client.get("/console/deals/not-an-id").status_code == 404


def test_pages_forbid_scripts_and_framing(client: TestClient) -> None:
    sign_in(client, "reader", VIEWER_PASSWORD)
    answer = client.get("/console/")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert client.get("/console/console.css").headers["content-type"].startswith("text/css")


def test_html_in_stored_values_is_escaped(client: TestClient, deals: Deals, store: Store) -> None:
    store.save_snapshot(deals.pending.id, {"name": "<script>alert(1)</script>"})
    sign_in(client, "reader", VIEWER_PASSWORD)
    page = client.get(f"/console/deals/{deals.pending.id}").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_broken_users_file_answers_503_with_what_to_do(
    client: TestClient, users_file: Path
) -> None:
    users_file.write_text(json.dumps({"users": []}))
    answer = client.get("/console/")
    assert answer.status_code == 503
    assert "cosell console set-password" in answer.text


def _attempt(client: TestClient, user: str, password: str) -> int:
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/console/login",
        data={"username": user, "password": password, "login_token": token.group(1)},
    )
    return answer.status_code


def test_repeated_failed_sign_ins_are_throttled_for_a_while(
    client: TestClient, clock: ManualClock
) -> None:
    assert [_attempt(client, "admin", f"guess {n}") for n in range(10)] == [401] * 10
    assert _attempt(client, "admin", OPERATOR_PASSWORD) == 429  # not even checked
    assert _attempt(client, "reader", VIEWER_PASSWORD) == 303  # another user is not affected
    client.cookies.clear()  # signed out again
    clock.advance(15 * 60 + 1)
    assert _attempt(client, "admin", OPERATOR_PASSWORD) == 303


def test_a_retry_the_engine_cannot_queue_answers_503_and_is_not_audited(
    store: Store, clock: ManualClock, users_file: Path, deals: Deals
) -> None:
    async def broken(key: str) -> bool:
        raise ConnectionError(f"system database unreachable for {key}")

    app = console_app(store, clock, users_file, broken)
    with TestClient(app, follow_redirects=False) as failing:
        sign_in(failing, "admin", OPERATOR_PASSWORD)
        page = failing.get(f"/console/deals/{deals.failing.id}")
        answer = failing.post(
            f"/console/deals/{deals.failing.id}/retry", data={"csrf": csrf_of(page.text)}
        )
        assert answer.status_code == 503
        assert "could not queue the retry (ConnectionError" in answer.text
        assert "/readyz" in answer.text
        overview = failing.get("/console/")
        answer = failing.post("/console/retry-errors", data={"csrf": csrf_of(overview.text)})
        assert answer.status_code == 503
    assert not [e for e in store.audit(deals.failing.id) if "retry" in e.message]
