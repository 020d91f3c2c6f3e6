"""The one-deal page's comparison in headless Chromium, against both sandboxes.

uvicorn serves, in its own thread and event loop, an app whose lifespan builds the sync world
(both sandboxes in process, the real clients and store: `sync_world`), makes a linked deal and
edits it on both sides, then mounts the console with the real explain stage on the world's
context. The browser opens the deal, asks for the comparison and checks it against `explain`.
Skipped only when no chromium and chromedriver binary is installed.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from sync_world import build_world

from cosell.server.console import ConsoleOptions, create_console
from cosell.server.console.auth import Role, set_password
from cosell.store.types import Key
from cosell.sync.run.explain import PlanReport, explain
from cosell.sync.run.reconcile import reconcile_key

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[3] / ".artifacts" / "console"
PASSWORD = "a console password"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium/chromedriver binary: apt-get install chromium chromium-driver",
)


def _served(tmp_path: Path, key_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    users = tmp_path / "users.json"
    set_password(users, "admin", PASSWORD, Role.OPERATOR, n=2**10)
    state: dict[str, Any] = {}
    ready = threading.Event()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with build_world(tmp_path, key_dir) as world:
            account_id = await world.seller.create_account()
            opp_id = await world.seller.create_opportunity(account_id, Name="Contoso migration")
            await reconcile_key(world.ctx, world.opportunity_key(opp_id))
            world.tick()
            referral_id = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
            await world.seller.edit("Opportunity", opp_id, {"Amount": 30000})
            await world.microsoft.edit(
                referral_id, [{"op": "replace", "path": "/details/notes", "value": "from MS"}]
            )
            link = world.store.link_for_referral(referral_id)
            assert link is not None

            async def explain_key(key: str) -> PlanReport:
                return await explain(world.ctx, Key(key))

            options = ConsoleOptions(users_file=users, explain=explain_key)
            console = create_console(
                store=world.store, clock=world.clock, options=options, notify=None
            )
            app.router.routes.append(Mount("/console", app=console))
            state.update(
                link_id=link.id, expected=await explain_key(world.referral_key(referral_id))
            )
            ready.set()
            yield

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(
        Starlette(lifespan=lifespan), lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "the world did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", state
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def served(tmp_path: Path, sf_key_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from _served(tmp_path, sf_key_dir)


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


def _arrive(browser: Any, where: Any, what: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30, poll_frequency=0.05).until(
        lambda b: (
            where(b.current_url) and b.execute_script("return document.readyState") == "complete"
        ),
        message=f"the browser did not reach {what}",
    )


def test_the_deal_page_compares_both_sides_in_the_browser(
    browser: Any, served: tuple[str, dict[str, Any]]
) -> None:
    from selenium.webdriver.common.by import By

    url, state = served
    deal = f"{url}/console/deals/{state['link_id']}"
    browser.get(deal)
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _arrive(browser, lambda u: u == deal, "the deal")
    assert browser.find_elements(By.ID, "comparison") == []
    browser.find_element(By.ID, "compare-now").click()
    _arrive(browser, lambda u: "compare=1" in u, "the comparison")
    expected: PlanReport = state["expected"]
    shown = {
        row.get_attribute("data-field"): [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#comparison tbody tr")
    }
    assert set(shown) == {row.field for row in expected.rows}
    for row in expected.rows:
        assert shown[row.field][-1] == row.action
    assert shown["deal_value"][1:] == [
        "25000.00",
        "30000.00",
        "25000.00",
        "write to Partner Center",
    ]
    assert shown["notes"][1] == "from MS"
    assert re.search(
        r"The next reconcile: synced", browser.find_element(By.ID, "compare-outcome").text
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 1600)
    assert browser.save_screenshot(str(ARTIFACTS / "11-deal-compare.png"))
