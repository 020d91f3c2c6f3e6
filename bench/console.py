"""How fast the operations console's pages answer with a large store.

    .venv/bin/python bench/console.py [--links 10000] [--runs 20] [--store-url URL] [--json FILE]

A store (a SQLite file in a temporary directory, or `--store-url`, e.g. an empty PostgreSQL
database) is seeded with `--links` links in bulk, each with its base (deal and customer names, one of
four stages), a direction (alternately Incoming and Outgoing) and an audit entry (spread over
the last 7 days, so the overview's charts count them); one in a hundred is in Error. The console app is signed in to through its
form, then each page is asked for `--runs` times through the whole ASGI stack (session check,
store queries in a worker thread, HTML): the overview, a deal search by name, the Error filter,
a search that matches nothing (the whole table is scanned), a page deep in the list, the
direction and stage filters (alone, together, and a page deep in them), one deal.
The median and 95th percentile wall times are reported.

Target: the overview and a deal search each under 200 ms with 10,000 links.
"""

from __future__ import annotations

import re
import secrets
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import benchkit
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from cosell.clock import SystemClock
from cosell.server.console import ConsoleOptions, create_console
from cosell.server.console.auth import Role, set_password
from cosell.store import Store, SyncStatus
from cosell.store import tables as t
from cosell.store.types import canonical_record_id

TARGET_SECONDS: Final = 0.2
TARGETED: Final = (
    "overview",
    "search by deal name",
    "filter direction",
    "filter stage",
    "filter direction + stage",
)
ERROR_EVERY: Final = 100
STAGES: Final = ("New/Pending", "Active/Accepted", "Closed/Won", "Closed/Lost")
CHUNK: Final = 1000
PASSWORD: Final = secrets.token_urlsafe(16)


def seed(store: Store, links: int) -> str:
    """Insert `links` links with bases and audit entries in bulk; the id of one in the middle."""
    now = SystemClock().now()
    middle = ""
    with store.engine.begin() as connection:
        for start in range(0, links, CHUNK):
            link_rows: list[dict[str, Any]] = []
            base_rows: list[dict[str, Any]] = []
            audit_rows: list[dict[str, Any]] = []
            for number in range(start, min(start + CHUNK, links)):
                at = now - timedelta(seconds=links - number)
                # Audit entries spread over the last 7 days (the charts' window).
                audited = now - timedelta(seconds=(number * 7919) % (7 * 86400))
                link_id = f"{int(at.timestamp() * 1000):012x}{number:020x}"
                failing = number % ERROR_EVERY == 0
                link_rows.append(
                    {
                        "id": link_id,
                        "tenant": store.tenant,
                        "referral_id": f"ref-{number:08d}",
                        "engagement_id": None,
                        "sobject": "Opportunity",
                        "record_id": canonical_record_id(f"006{number:012d}"),
                        "sync_status": (SyncStatus.ERROR if failing else SyncStatus.SYNCED).value,
                        "last_error": "HTTP 503 from Salesforce" if failing else None,
                        "created_at": at,
                        "updated_at": at,
                        "last_synced_at": None if failing else at,
                        "direction": "Incoming" if number % 2 else "Outgoing",
                    }
                )
                base_rows.append(
                    {
                        "link_id": link_id,
                        "tenant": store.tenant,
                        "field_values": {
                            "name": f"Deal {number:05d} cloud migration",
                            "customer_name": f"Customer {number % 997:03d}",
                            "stage": STAGES[number % len(STAGES)],
                        },
                        "saved_at": at,
                    }
                )
                audit_rows.append(
                    {
                        "tenant": store.tenant,
                        "link_id": link_id,
                        "at": audited,
                        "message": "error: HTTP 503 from Salesforce"
                        if failing
                        else "synced 3 fields to Salesforce",
                        "details": {"api_calls": 2},
                    }
                )
                if number == links // 2:
                    middle = link_id
            connection.execute(sa.insert(t.links), link_rows)
            connection.execute(sa.insert(t.snapshots), base_rows)
            connection.execute(sa.insert(t.audit), audit_rows)
    return middle


def sign_in(client: TestClient) -> None:
    """Sign in through the form, as a browser does."""
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    if token is None:
        raise SystemExit("the sign-in form has no login token")
    answer = client.post(
        "/console/login",
        data={"username": "bench", "password": PASSWORD, "login_token": token.group(1)},
    )
    if answer.status_code != 303:
        raise SystemExit(f"signing in answered {answer.status_code}")


def main() -> None:
    parser = benchkit.parser(__doc__.splitlines()[0])
    parser.add_argument("--links", type=benchkit.positive, default=10_000, help="links seeded")
    parser.add_argument("--runs", type=benchkit.positive, default=20, help="requests per page")
    parser.add_argument("--store-url", help="an empty database to seed (default: SQLite)")
    options = parser.parse_args()
    report = benchkit.Report(
        title=f"console pages against a store of {options.links:,} links",
        options={"links": options.links, "runs": options.runs},
        columns=["page", "median_ms", "p95_ms", "status"],
    )
    with tempfile.TemporaryDirectory(prefix="cosell-console-bench-") as name:
        directory = Path(name)
        url = options.store_url or f"sqlite:///{directory / 'cosell.db'}"
        users = directory / "users.json"
        set_password(users, "bench", PASSWORD, Role.VIEWER)
        with Store.open(url, clock=SystemClock()) as store:
            started = time.perf_counter()
            middle = seed(store, options.links)
            report.notes.append(
                f"seeded {options.links:,} links on {store.url.get_backend_name()} in "
                f"{time.perf_counter() - started:.1f} s"
            )
            console = create_console(
                store=store, clock=SystemClock(), options=ConsoleOptions(users), notify=None
            )
            app = Starlette(routes=[Mount("/console", app=console)])
            pages = {
                "overview": "/console/",
                "search by deal name": "/console/deals?q=deal+04999",
                "search by customer": "/console/deals?q=customer+042",
                "filter Error": "/console/deals?status=Error",
                "search matching nothing": "/console/deals?q=zzzz",
                "deals, page 100": "/console/deals?offset=4950",
                "filter direction": "/console/deals?direction=Incoming",
                "filter stage": "/console/deals?stage=Closed%2FWon",
                "filter direction + stage": "/console/deals?direction=Incoming&stage=Closed%2FWon",
                "direction + stage, page 20": (
                    "/console/deals?direction=Outgoing&stage=Active%2FAccepted&offset=950"
                ),
                "one deal": f"/console/deals/{middle}",
            }
            with TestClient(app, follow_redirects=False) as client:
                sign_in(client)
                for label, path in pages.items():
                    client.get(path)  # warm: the first query plans and fills caches
                    times: list[float] = []
                    status = 0
                    for _ in range(options.runs):
                        began = time.perf_counter()
                        status = client.get(path).status_code
                        times.append(time.perf_counter() - began)
                    report.rows.append(
                        {
                            "page": label,
                            "median_ms": statistics.median(times) * 1000,
                            "p95_ms": benchkit.percentile(times, 95) * 1000,
                            "status": status,
                        }
                    )
    slow = [
        row["page"]
        for row in report.rows
        if row["page"] in TARGETED and row["median_ms"] >= TARGET_SECONDS * 1000
    ]
    report.notes.append(
        f"target: the overview, a deal search and the filters each under {TARGET_SECONDS * 1000:g} ms: "
        + ("met" if not slow else "missed by " + ", ".join(slow))
    )
    report.print()
    report.write_json(options.json)


if __name__ == "__main__":
    main()
