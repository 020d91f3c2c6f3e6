"""Another process: what it committed survives its crash, and its lease holds until it expires."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from cosell.clock import ManualClock
from cosell.store import Store

CHILD = textwrap.dedent(
    """
    import os, sys
    from cosell.clock import ManualClock
    from cosell.store import Store

    store = Store.open(sys.argv[1], clock=ManualClock(), tenant=sys.argv[2])
    link = store.create_link(sobject="Opportunity", record_id="006000000000001AAA")
    store.record_create_intent(
        link.id, side="partner_center", external_reference="006000000000001AAA"
    )
    assert store.claim("salesforce:Opportunity:006000000000001AAA", owner="child", ttl_seconds=60)
    print(link.id, flush=True)
    os._exit(137)  # killed between recording the intent and the create call
    """
)


def test_a_killed_process_leaves_its_intent_and_its_lease(
    database_url: str, clock: ManualClock, tenant: str
) -> None:
    Store.open(database_url, clock=clock, tenant=tenant).close()  # migrated before the child runs
    child = subprocess.run(
        [sys.executable, "-c", CHILD, database_url, tenant],
        capture_output=True,
        text=True,
        timeout=60,  # a bound on a hung child; it normally exits in well under a second
        check=False,
    )
    assert child.returncode == 137, child.stderr
    link_id = child.stdout.strip()
    with Store.open(database_url, clock=clock, tenant=tenant) as store:
        intent = store.create_intent(link_id)
        assert intent is not None
        assert intent.external_reference == "006000000000001AAA"
        key = "salesforce:Opportunity:006000000000001AAA"
        assert store.lease_owner(key) == "child"
        assert store.claim(key, owner="parent", ttl_seconds=60) is False
        clock.advance(60)
        assert store.claim(key, owner="parent", ttl_seconds=60) is True
