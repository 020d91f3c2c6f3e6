"""The console in headless Chromium (Selenium): sign in, overview, search, one deal, act on it.

The console is served by uvicorn on a loopback port over a seeded SQLite store; the actions'
notify is the recording stand-in for `Engine.notify` (`console_kit.Notified`). Each page is
checked against the store and saved as a screenshot in `.artifacts/console/` (git-ignored),
at 1280x800, plus the deals page at a phone's width (390x844), where nothing may overflow
sideways. Skipped only when no chromium and chromedriver binary is installed
(`apt-get install chromium chromium-driver`; `.ci/run` installs them).
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from console_kit import (
    OPERATOR_PASSWORD,
    Deals,
    Notified,
    SyncedNow,
    console_app,
    sso_console_app,
    sso_options,
)

from cosell.clock import ManualClock
from cosell.store import Circuit, Store
from cosell.store.types import referral_key
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxOptions
from cosell_sandbox.partnercenter.identity import OTHER_TENANT_ID

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium/chromedriver binary: apt-get install chromium chromium-driver",
)


def _listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextmanager
def serving(app: Any, sock: socket.socket) -> Iterator[str]:
    """`app` on a loopback socket that already listens (before the browser connects)."""
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def served(
    store: Store, clock: ManualClock, users_file: Path, notified: Notified, deals: Deals
) -> Iterator[str]:
    """The console on a loopback port."""
    with serving(console_app(store, clock, users_file, notified), _listening()) as url:
        yield url


@pytest.fixture
def served_sso(
    store: Store, clock: ManualClock, users_file: Path, notified: Notified, deals: Deals
) -> Iterator[tuple[str, PartnerCenterSandbox]]:
    """The console with sign-in with Microsoft, and the Partner Center sandbox playing Entra,
    each on its own loopback port."""
    pc_sock = _listening()
    sandbox = PartnerCenterSandbox(
        base_url=f"http://127.0.0.1:{pc_sock.getsockname()[1]}",
        clock=clock,
        options=SandboxOptions(seed=5),
    )
    # No kept-alive connections: the client lives in the server thread's loop, never closed.
    http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
    sso = sso_options(sandbox, http, clock)
    app = sso_console_app(store, clock, users_file, notified, sso)
    with serving(sandbox.app, pc_sock), serving(app, _listening()) as url:
        yield url, sandbox


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,800")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shoot(browser: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def shoot_whole(browser: Any, name: str) -> None:
    """A screenshot of the whole page at 1280 wide (for the README), then back to 1280x800."""
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1280, min(max(height + 140, 800), 2400))
    shoot(browser, name)
    browser.set_window_size(1280, 800)


def arrive(browser: Any, where: Callable[[str], bool], what: str) -> None:
    """Wait until a click's or a submit's navigation has landed and the new page has loaded.

    A click returns before the browser has followed the form post; reading `current_url` or
    the page at once reads the old page on a busy machine.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30, poll_frequency=0.05).until(
        lambda b: (
            where(b.current_url) and b.execute_script("return document.readyState") == "complete"
        ),
        message=f"the browser did not reach {what}",
    )


def text_of(browser: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def test_sign_in_overview_search_open_and_retry_a_deal(
    browser: Any, served: str, deals: Deals, notified: Notified, store: Store
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/console/deals")
    assert "/console/login" in browser.current_url
    shoot(browser, "1-sign-in")
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(OPERATOR_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    arrive(browser, lambda url: url == f"{served}/console/deals", "the deals page")

    for _ in range(4):
        store.record_audit(deals.synced.id, "synced 1 field", details={"api_calls": 2})
    browser.get(f"{served}/console/")
    summary = store.deal_counts().as_dict()  # what `cosell status` and /metrics count
    for status in ("Synced", "Pending", "Error", "Paused"):
        shown = text_of(browser, f"#count-{status} .value").replace(",", "")
        assert int(shown) == summary[status]
    assert text_of(browser, "#health strong") == "Degraded"  # as shown: text-transform capitalizes
    assert "1 of 63 links are in Error" in text_of(browser, "#health")
    hours = browser.find_elements(By.CSS_SELECTOR, "#chart-24h svg g.bar")
    assert len(hours) == 24
    assert hours[-1].get_attribute("data-synced") == "4"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-7d svg g.bar")) == 7
    assert "4 synced · 1 errors" in text_of(browser, "#chart-7d figcaption")
    assert "84% of cosell's budget" in text_of(browser, "#usage-salesforce")
    assert "publishes no daily budget" in text_of(browser, "#usage-partner_center")
    assert "expires soon" in text_of(browser, "#token-partner_center")
    assert "ok" in text_of(browser, "#token-salesforce")
    shoot(browser, "2-overview")
    browser.set_window_size(1280, 1400)
    shoot(browser, "2-overview-full")
    browser.set_window_size(1280, 800)

    browser.get(f"{served}/console/deals")
    search = browser.find_element(By.ID, "q")
    search.send_keys("fabrikam")
    search.submit()
    arrive(browser, lambda url: "q=fabrikam" in url, "the search's results")
    rows = browser.find_elements(By.CSS_SELECTOR, "#deals tbody tr")
    assert len(rows) == 1
    assert "Fabrikam 50% deal" in rows[0].text
    assert "Error" in rows[0].text
    assert text_of(browser, "#range") == "1\u20131 of 1"  # an en dash
    shoot(browser, "3-deals-search")

    rows[0].find_element(By.TAG_NAME, "a").click()
    arrive(browser, lambda url: url == f"{served}/console/deals/{deals.failing.id}", "the deal")
    assert text_of(browser, "#deal-name") == "Fabrikam 50% deal"
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in text_of(browser, "#last-error")
    assert "One side refused the values" in text_of(browser, "#last-error")
    assert browser.find_element(By.ID, "pc-link").get_attribute("href").endswith("/ref-fabrikam")
    shoot(browser, "4-deal")

    browser.find_element(By.ID, "retry").click()
    arrive(
        browser,
        lambda url: url.endswith(f"/console/deals/{deals.failing.id}?notice=retried"),
        "the deal after its retry",
    )
    assert "A retry of this deal was queued" in text_of(browser, "[role=status]")
    assert notified.keys == ["referral:ref-fabrikam"]
    newest = store.audit(deals.failing.id, limit=1)[0]
    assert newest.details["by"] == "admin"
    assert "retry requested from the console by admin" in text_of(browser, "#audit tbody tr")
    shoot(browser, "5-deal-retried")


def test_the_deals_page_fits_a_phone(browser: Any, served: str, deals: Deals) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    browser.get(f"{served}/console/login")
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(OPERATOR_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    arrive(browser, lambda url: "/console/login" not in url, "a signed-in page")
    for path, name in (("/console/deals", "6-phone-deals"), ("/console/", "7-phone-overview")):
        browser.get(f"{served}{path}")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px wider than the phone"
        shoot(browser, name)
    browser.get(f"{served}/console/deals/{deals.synced.id}")
    assert text_of(browser, "#deal-name") == "Contoso cloud migration"


def test_sign_in_with_microsoft_against_the_sandbox_and_a_stranger_refused(
    browser: Any, served_sso: tuple[str, PartnerCenterSandbox]
) -> None:
    from selenium.webdriver.common.by import By

    served, sandbox = served_sso
    upn = sandbox.identity.info()["username"]
    sandbox.identity.app_roles = ("Console.Operator",)

    browser.get(f"{served}/console/deals")
    assert "/console/login" in browser.current_url
    assert text_of(browser, "#sso") == "Sign in with Microsoft"
    shoot(browser, "8-sign-in-with-microsoft")
    browser.find_element(By.ID, "sso").click()
    arrive(browser, lambda url: url.startswith(sandbox.base_url), "the sandbox's sign-in page")
    shoot(browser, "9-entra-sandbox")
    browser.find_element(By.ID, "sandbox-other-tenant").click()
    arrive(browser, lambda url: "/console/oidc/callback" in url, "the console's callback")
    assert text_of(browser, "#refused h1") == "Account of another tenant"
    assert OTHER_TENANT_ID in text_of(browser, "#refused [role=alert]")
    shoot(browser, "10-other-tenant-refused")

    browser.find_element(By.ID, "back").click()
    arrive(browser, lambda url: url.endswith("/console/login"), "the sign-in page")
    browser.find_element(By.ID, "sso").click()
    arrive(browser, lambda url: url.startswith(sandbox.base_url), "the sandbox's sign-in page")
    browser.find_element(By.ID, "sandbox-approve").click()
    arrive(browser, lambda url: url == f"{served}/console/", "the overview, signed in")
    assert text_of(browser, "header .who span") == f"{upn} · operator"
    assert text_of(browser, "#health strong") == "Degraded"


def test_deals_filter_by_direction_and_stage(browser: Any, served: str, deals: Deals) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{served}/console/login")
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(OPERATOR_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    arrive(browser, lambda url: "/console/login" not in url, "a signed-in page")
    browser.get(f"{served}/console/deals")
    Select(browser.find_element(By.ID, "direction")).select_by_value("Incoming")
    Select(browser.find_element(By.ID, "stage")).select_by_value("Closed/Won")
    browser.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    arrive(browser, lambda url: "direction=Incoming" in url, "the filtered deals")
    rows = browser.find_elements(By.CSS_SELECTOR, "#deals tbody tr")
    assert len(rows) == 10  # bulk deals 0, 6, …, 54
    assert {r.find_element(By.CSS_SELECTOR, "td.direction").text for r in rows} == {"Incoming"}
    assert {r.find_element(By.CSS_SELECTOR, "td.stage").text for r in rows} == {"Closed/Won"}
    assert text_of(browser, "#range") == "1\u201310 of 10"
    selected = Select(browser.find_element(By.ID, "stage")).first_selected_option
    assert selected.get_attribute("value") == "Closed/Won"
    shoot(browser, "3b-deals-filtered")


def sign_in_browser(browser: Any, served: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/console/login")
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(OPERATOR_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    arrive(browser, lambda url: "/console/login" not in url, "a signed-in page")


def test_circuits_pause_and_resume_all_sync_and_one_deal_and_re_sync_it(
    browser: Any,
    store: Store,
    clock: ManualClock,
    users_file: Path,
    notified: Notified,
    deals: Deals,
) -> None:
    from datetime import timedelta

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    synced_now = SyncedNow()
    store.set_circuit(
        Circuit(
            side="salesforce",
            state="open",
            cause="Salesforce does not answer (connection refused)",
            fix="check that the org is reachable; sync resumes by itself",
            since=clock.now(),
            next_probe_at=clock.now() + timedelta(minutes=2),
        )
    )
    store.hold_keys([referral_key("ref-bulk-004")], side="salesforce")
    store.update_link(deals.failing.id, retries=2, retry_at=clock.now() + timedelta(minutes=15))
    app = console_app(store, clock, users_file, notified, synced_now)
    with serving(app, _listening()) as served:
        sign_in_browser(browser, served)
        browser.get(f"{served}/console/")
        card = text_of(browser, "#circuit-salesforce")
        assert "circuit open" in card
        assert "connection refused" in card
        assert "check that the org is reachable" in card
        assert "Next probe:" in card
        assert "(in 2 min)" in card
        assert "circuit closed" in text_of(browser, "#circuit-partner_center")
        assert text_of(browser, "#health strong") == "Failing"
        assert "Salesforce is paused by its circuit breaker" in text_of(browser, "#health")
        assert "Oldest unsynced change" in text_of(browser, "#oldest")
        shoot_whole(browser, "11-overview-circuit-open")

        browser.get(f"{served}/console/deals")
        Select(browser.find_element(By.ID, "status")).select_by_value("Held")
        browser.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
        arrive(browser, lambda url: "status=Held" in url, "the held deals")
        rows = browser.find_elements(By.CSS_SELECTOR, "#deals tbody tr")
        assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == ["Bulk deal 004"]
        assert "Pending" in rows[0].text
        assert "held" in rows[0].text
        shoot(browser, "12-deals-held")

        # pause all sync from the overview, with a reason
        browser.get(f"{served}/console/")
        browser.find_element(By.ID, "pause-reason").send_keys("Salesforce release weekend")
        browser.find_element(By.ID, "pause-all").click()
        arrive(browser, lambda url: url.endswith("?notice=paused-all"), "the paused overview")
        assert [(p.target, p.by) for p in store.pauses()] == [(None, "admin")]
        for path in ("/console/", "/console/deals", f"/console/deals/{deals.synced.id}"):
            browser.get(f"{served}{path}")
            banner = text_of(browser, "#paused-banner")
            assert "All sync is paused by admin since" in banner, path
            assert "Salesforce release weekend" in banner
            if path == "/console/":
                assert "all sync paused by admin" in text_of(browser, "#health")
                shoot_whole(browser, "13-paused-banner")

        # pause, then resume, one deal
        browser.find_element(By.ID, "pause").click()
        arrive(browser, lambda url: url.endswith("?notice=paused"), "the paused deal")
        assert text_of(browser, "#status .badge") == "Paused"
        assert "paused by admin since" in text_of(browser, "#status")
        shoot_whole(browser, "14-deal-paused")
        browser.get(f"{served}/console/deals?status=Paused")
        rows = browser.find_elements(By.CSS_SELECTOR, "#deals tbody tr")
        assert [r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows] == ["Paused"]
        assert "Contoso cloud migration" in rows[0].text
        browser.get(f"{served}/console/deals/{deals.synced.id}")
        browser.find_element(By.ID, "resume").click()
        arrive(browser, lambda url: url.endswith("?notice=resumed"), "the resumed deal")
        assert text_of(browser, "#status .badge") == "Synced"
        assert [p.target for p in store.pauses()] == [None]

        # the retry schedule, and re-sync now
        browser.get(f"{served}/console/deals/{deals.failing.id}")
        assert "(in 15 min)" in text_of(browser, "#retry-at")
        assert text_of(browser, "#retries") == "2"
        browser.find_element(By.ID, "sync").click()
        arrive(browser, lambda url: url.endswith("?notice=synced"), "the re-synced deal")
        assert synced_now.keys == [["referral:ref-fabrikam"]]
        assert "sync requested by admin (console)" in text_of(browser, "#audit tbody tr")
        shoot_whole(browser, "15-deal-retry-schedule")

        # resume all sync from the banner
        browser.find_element(By.ID, "resume-all").click()
        arrive(browser, lambda url: url.endswith("?notice=resumed-all"), "the resumed overview")
        assert browser.find_elements(By.ID, "paused-banner") == []
        assert store.pauses() == []
