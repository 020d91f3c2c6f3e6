"""Change sources: the Partner Center and Salesforce pollers, and the sweep's key listing.

A poller turns "what changed since my cursor" into keys to reconcile (a key only says "may be
out of date"; the reconcile reads the truth). Each one is a pure step over a client and a
cursor: it returns the keys and the next cursor, and the engine enqueues the keys *before* it
stores the cursor, so a crash in between re-polls (harmless: reconciles are level-triggered)
and never skips a change.

**Cursor with overlap and de-duplication.** Both sides stamp a change with a time
(`updatedDateTime` on a referral, `SystemModstamp` on a record). A change committed by a long
transaction can become visible *after* a later one was already read, with an earlier stamp; a
poller that asked only for `stamp > max seen` would miss it. So every poll asks for
`stamp > cursor - overlap`, and the cursor remembers the (id, stamp) pairs it already handed
out inside the overlap window; those are not handed out again. The cursor is stored as JSON:

```
{"at": "2026-01-05T09:00:01.123456+00:00", "seen": [["<id>", "<stamp iso>"], ...]}
```

`at` is the newest stamp seen; `seen` holds only pairs with stamp >= at - overlap, so it stays
as small as one overlap window's changes. A record changed again gets a new stamp and a new
pair, so it is handed out again, as it must be.

**Bounds.** One poll reads at most `max_pages` pages (the Partner Center list is ordered by
`updatedDateTime asc`, so the cursor still advances and the next poll continues where this one
stopped); the Salesforce query is ordered by `SystemModstamp ASC` and cut at `max_records`
rows for the same reason.

**What Salesforce polls.** Opportunities that take part in co-sell: `Sync_with_Partner_Center__c
= true` (a seller asked to share it: a create candidate, or a linked one) or
`Referral_Identifier__c != null` (linked, even if the box was unticked later). With lead sync,
a second poll (cursor `poll:salesforce:Lead`) watches the Leads cosell made from lead referrals
(`Referral_Identifier__c != null`), so a seller's edits, status changes and conversions by
hand are reconciled.

**Related records** (`poll_related`). A seller fixes a parked deal by adding a Microsoft
Solution or a contact role, or by editing the account: changes that do not move the
opportunity's own `SystemModstamp`. Each child object of the mapping's collections and the
account is a change source of its own, with its own cursor (`poll:salesforce:related:<name>`):
one SOQL query per source per poll over the rows' `SystemModstamp` window, the same overlap
and de-duplication, and the parent opportunities of the rows cosell syncs are the keys.
Deleted child rows are not seen here (a query does not return them); the opportunity's next
change or the sweep reconciles those.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cosell.mapping.model import Collections
from cosell.partnercenter.client import ReferralsClient
from cosell.partnercenter.models import Referral
from cosell.salesforce.client import SalesforceClient
from cosell.salesforce.values import parse_datetime, soql_datetime
from cosell.store import Store
from cosell.store.types import Key, record_key, referral_key
from cosell.sync.plan.decide import seen_stamp
from cosell.sync.plan.leads import LEAD
from cosell.sync.plan.limits import BATCH_SIZE

PARTNER_CENTER_CURSOR = "poll:partner_center"
SALESFORCE_CURSOR = "poll:salesforce:Opportunity"
LEAD_CURSOR = "poll:salesforce:Lead"
SERVICE_POLL_CURSOR = "service:poll"  # set by a running service's scheduled poll, never by a pass
LAST_SWEEP_CURSOR = (
    "sweep:last"  # when the engine's periodic sweep last ran; `cosell status` shows it
)

# Long enough for Salesforce's slowest commits to become visible (its docs suggest a few
# seconds for SystemModstamp polling), short enough that the de-duplication set stays small.
DEFAULT_OVERLAP_SECONDS = 5.0
# The Partner Center sandbox and service page at 100; 50 pages is 5,000 changes per poll.
DEFAULT_MAX_PAGES = 50
# One Salesforce query page holds up to 2,000 rows; 5 pages per poll, like the PC bound.
DEFAULT_MAX_RECORDS = 10_000
SWEEP_PAGE_SIZE = BATCH_SIZE  # referrals per sweep page (`$top`): one page makes one full batch

SYNC_FLAG = "Sync_with_Partner_Center__c"
REFERRAL_IDENTIFIER = "Referral_Identifier__c"
OPPORTUNITY = "Opportunity"


@dataclass(frozen=True)
class Cursor:
    """A poller's position: the newest stamp seen and the pairs seen inside the overlap window.

    Attributes:
        at: the newest stamp handed out, or None before the first poll.
        seen: (id, stamp) pairs already handed out whose stamp is within the overlap of `at`.
    """

    at: datetime | None = None
    seen: frozenset[tuple[str, datetime]] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """Read a stored cursor; None (never polled) is the empty cursor.

        Raises:
            ValueError: the stored text is not a cursor this module wrote.
        """
        if text is None:
            return cls()
        try:
            data = json.loads(text)
            at = datetime.fromisoformat(data["at"]) if data.get("at") else None
            seen = frozenset(
                (str(item_id), datetime.fromisoformat(stamp)) for item_id, stamp in data["seen"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"the stored poll cursor {text[:80]!r} is not readable; delete it to poll "
                "everything again (the reconcile makes that harmless)"
            ) from exc
        if at is not None and at.tzinfo is None:
            raise ValueError("a poll cursor's time must carry its zone")
        return cls(at=at, seen=seen)

    def dump(self) -> str:
        """The cursor as stored (JSON, sorted for stable output)."""
        return json.dumps(
            {
                "at": self.at.isoformat() if self.at else None,
                "seen": sorted([item_id, stamp.isoformat()] for item_id, stamp in self.seen),
            }
        )

    def since(self, overlap: float) -> datetime | None:
        """The lower bound of the next query: `at - overlap` (None: from the beginning)."""
        return None if self.at is None else self.at - timedelta(seconds=overlap)

    def advance(self, changes: Iterable[tuple[str, datetime]], overlap: float) -> Cursor:
        """The cursor after handing out `changes`, pruned to the overlap window."""
        pairs = set(self.seen) | set(changes)
        stamps = [stamp for _, stamp in pairs]
        if self.at is not None:
            stamps.append(self.at)
        if not stamps:
            return self
        at = max(stamps)
        horizon = at - timedelta(seconds=overlap)
        return Cursor(at=at, seen=frozenset(p for p in pairs if p[1] >= horizon))


@dataclass(frozen=True)
class PollResult:
    """What one poll found.

    Attributes:
        keys: keys to reconcile, in change order, each once.
        cursor: the cursor to store once the keys are enqueued.
        api_calls: remote calls the poll made.
        more: the poll stopped at its bound; more changes are waiting.
    """

    keys: tuple[Key, ...]
    cursor: Cursor
    api_calls: int
    more: bool = False


def _new_changes(
    cursor: Cursor, changes: Iterable[tuple[str, datetime]]
) -> list[tuple[str, datetime]]:
    fresh: list[tuple[str, datetime]] = []
    seen = set(cursor.seen)
    for change in changes:
        if change not in seen:
            seen.add(change)
            fresh.append(change)
    return fresh


def partner_center_filter(since: datetime | None) -> str | None:
    """The `$filter` of a Partner Center poll: `updatedDateTime gt <since>` (None: no filter)."""
    if since is None:
        return None
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"updatedDateTime gt {stamp}"


async def poll_partner_center(
    client: ReferralsClient,
    cursor: Cursor,
    *,
    overlap: float = DEFAULT_OVERLAP_SECONDS,
    max_pages: int = DEFAULT_MAX_PAGES,
    page_size: int = SWEEP_PAGE_SIZE,
    synced: Callable[[Sequence[str]], Mapping[str, datetime]] | None = None,
) -> PollResult:
    """Referrals updated since the cursor, as `referral:<id>` keys.

    Args:
        client: the Referrals API client.
        cursor: where the last poll stopped.
        overlap: seconds re-read before the cursor (see the module docstring).
        max_pages: the most list pages read by this poll.
        page_size: `$top` of each page.
        synced: referral ids -> the `updatedDateTime` their base was saved at (ids without
            one left out); a referral listed at that stamp or before is not handed out.

    Returns:
        The keys (new changes only) and the advanced cursor.
    """
    changes: list[tuple[str, datetime]] = []
    page = await client.list_page(
        filter=partner_center_filter(cursor.since(overlap)),
        orderby="updatedDateTime asc",
        top=page_size,
    )
    calls = 1
    while True:
        for referral in page.referrals:
            stamp = referral.updated_date_time or referral.created_date_time
            if referral.id is None or stamp is None:
                continue  # cannot be keyed or ordered; the periodic sweep covers it
            changes.append((str(referral.id), stamp.astimezone(UTC)))
        if page.next_link is None or calls >= max_pages:
            break
        page = await client.list_page(next_link=page.next_link)
        calls += 1
    fresh = _new_changes(cursor, changes)
    recorded = synced([item_id for item_id, _ in fresh]) if synced and fresh else {}
    keys = tuple(
        dict.fromkeys(
            referral_key(item_id)
            for item_id, stamp in fresh
            if item_id not in recorded or stamp > recorded[item_id]
        )
    )
    return PollResult(
        keys=keys,
        cursor=cursor.advance(fresh, overlap),
        api_calls=calls,
        more=page.next_link is not None,
    )


def synced_stamps(store: Store, referral_ids: Sequence[str]) -> dict[str, datetime]:
    """Referral id -> the `updatedDateTime` its link's base was saved at (two store reads)."""
    keys: dict[str, str] = {str(referral_key(item_id)): item_id for item_id in referral_ids}
    links = store.links_for_keys(list(keys))
    bases = store.snapshots([link.id for link in links.values()])
    found: dict[str, datetime] = {}
    for key, link in links.items():
        stamp = seen_stamp(bases.get(link.id))
        if stamp is not None:
            found[keys[key]] = stamp
    return found


def salesforce_changes_soql(
    since: datetime | None, *, limit: int, sobject: str = OPPORTUNITY
) -> str:
    """The SOQL of a Salesforce poll (see the module docstring for the WHERE clause)."""
    if sobject == LEAD:  # cosell's Leads (made from lead referrals, they carry the id)
        where = f"{REFERRAL_IDENTIFIER} != null"
    else:
        where = f"({SYNC_FLAG} = true OR {REFERRAL_IDENTIFIER} != null)"
    if since is not None:
        where += f" AND SystemModstamp > {soql_datetime(since)}"
    # Only constants, a soql_datetime literal and an int go into the query.
    return (
        f"SELECT Id, SystemModstamp FROM {sobject} WHERE {where} "  # noqa: S608
        f"ORDER BY SystemModstamp ASC LIMIT {int(limit)}"
    )


async def poll_salesforce(
    client: SalesforceClient,
    cursor: Cursor,
    *,
    overlap: float = DEFAULT_OVERLAP_SECONDS,
    max_records: int = DEFAULT_MAX_RECORDS,
    sobject: str = OPPORTUNITY,
) -> PollResult:
    """Co-sell opportunities modified since the cursor, as `salesforce:Opportunity:<id>` keys.

    Args:
        client: the Salesforce client.
        cursor: where the last poll stopped.
        overlap: seconds re-read before the cursor.
        max_records: the most rows read by this poll.
        sobject: `Opportunity`, or `Lead` (lead sync: cosell's unconverted Leads, as
            `salesforce:Lead:<id>` keys, with a cursor of their own, `LEAD_CURSOR`).

    Returns:
        The keys (new changes only) and the advanced cursor.
    """
    soql = salesforce_changes_soql(cursor.since(overlap), limit=max_records, sobject=sobject)
    changes: list[tuple[str, datetime]] = []
    calls = 0
    async for page in client.query_pages(soql):
        calls += 1
        changes.extend(_record_change(record) for record in page.records)
    fresh = _new_changes(cursor, changes)
    keys = tuple(dict.fromkeys(record_key(sobject, item_id) for item_id, _ in fresh))
    return PollResult(
        keys=keys,
        cursor=cursor.advance(fresh, overlap),
        api_calls=calls,
        more=len(changes) >= max_records,
    )


def _record_change(record: dict[str, Any]) -> tuple[str, datetime]:
    return (str(record["Id"]), parse_datetime(str(record["SystemModstamp"])))


# -- related records: child rows and the account ----------------------------------------------

ACCOUNT_SOURCE = "Account"
RELATED_CURSOR_PREFIX = "poll:salesforce:related:"


def related_sources(collections: Collections) -> tuple[str, ...]:
    """The related change sources of a mapping: its child objects, then the account."""
    names = [child.object for child in collections.objects().values()]
    return (*dict.fromkeys(names), ACCOUNT_SOURCE)


def related_cursor(source: str) -> str:
    """The cursor name of one related change source (`poll:salesforce:related:<object>`)."""
    return f"{RELATED_CURSOR_PREFIX}{source}"


def related_changes_soql(
    source: str, collections: Collections, since: datetime | None, *, limit: int
) -> tuple[str, str | None]:
    """The SOQL of one related source's poll, and the field naming the parent opportunity.

    A child row's own `SystemModstamp` moves when it is added or edited (the opportunity's
    does not); an account's edit is found through the co-sell opportunities' `Account.`
    path, so that one query gives the opportunities to notify.

    Returns:
        (the query, the parent field of a child row; None for the account, whose rows are
        the opportunities themselves).

    Raises:
        KeyError: `source` is none of `related_sources(collections)`.
    """
    window = "" if since is None else f" AND {{stamp}} > {soql_datetime(since)}"
    if source == ACCOUNT_SOURCE:
        stamp = "Account.SystemModstamp"
        where = f"({SYNC_FLAG} = true OR {REFERRAL_IDENTIFIER} != null)" + window.format(
            stamp=stamp
        )
        return (
            f"SELECT Id, {stamp} FROM {OPPORTUNITY} WHERE {where} "  # noqa: S608 - names, a date, an int
            f"ORDER BY {stamp} ASC LIMIT {int(limit)}",
            None,
        )
    children = {child.object: child for child in collections.objects().values()}
    child = children[source]
    where = f"{child.parent} != null" + window.format(stamp="SystemModstamp")
    return (
        f"SELECT Id, {child.parent}, SystemModstamp FROM {child.object} "  # noqa: S608 - as above
        f"WHERE {where} ORDER BY SystemModstamp ASC LIMIT {int(limit)}",
        child.parent,
    )


async def poll_related(
    client: SalesforceClient,
    cursor: Cursor,
    *,
    source: str,
    collections: Collections,
    linked: Callable[[Sequence[Key]], Iterable[Key]],
    overlap: float = DEFAULT_OVERLAP_SECONDS,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> PollResult:
    """Opportunities whose child rows or account changed since the cursor (one SOQL query).

    Adding the Microsoft Solution or the contact role a parked deal waits for changes child
    records, not the opportunity: without this source nothing would notice until the sweep.

    Args:
        client: the Salesforce client.
        cursor: where this source's last poll stopped (pairs of the rows' own ids and stamps).
        source: a child object of the mapping's collections, or `ACCOUNT_SOURCE`.
        collections: the mapping's collections (child objects and their parent fields).
        linked: the keys among those given that cosell syncs (a link in the store): a child
            row of an opportunity that is not co-sold costs nothing further.
        overlap: seconds re-read before the cursor.
        max_records: the most rows read by this poll.

    Returns:
        The parent opportunities' keys (new changes only) and the advanced cursor.
    """
    soql, parent = related_changes_soql(
        source, collections, cursor.since(overlap), limit=max_records
    )
    changes: list[tuple[str, datetime]] = []
    parents: dict[str, str] = {}
    calls = 0
    async for page in client.query_pages(soql):
        calls += 1
        for row in page.records:
            if parent is None:
                account = row.get("Account") or {}
                if not account.get("SystemModstamp"):
                    continue  # an opportunity without an account
                stamp = parse_datetime(str(account["SystemModstamp"]))
                parents[str(row["Id"])] = str(row["Id"])
            else:
                if not row.get(parent):
                    continue
                stamp = parse_datetime(str(row["SystemModstamp"]))
                parents[str(row["Id"])] = str(row[parent])
            changes.append((str(row["Id"]), stamp))
    fresh = _new_changes(cursor, changes)
    candidates = list(dict.fromkeys(record_key(OPPORTUNITY, parents[i]) for i, _ in fresh))
    known = set(linked(candidates)) if parent is not None and candidates else set(candidates)
    return PollResult(
        keys=tuple(k for k in candidates if k in known),
        cursor=cursor.advance(fresh, overlap),
        api_calls=calls,
        more=len(changes) >= max_records,
    )


def linked_keys(store: Store, keys: Sequence[Key]) -> list[Key]:
    """The keys among `keys` that resolve to a link in the store (one store read)."""
    found = store.links_for_keys(list(keys))
    return [key for key in keys if key in found]


MAX_SWEEP_PAGES = 10_000  # a million referrals at 100 a page: bounds a runaway nextLink chain


@dataclass(frozen=True)
class SweepPage:
    """One page of a full sweep of Partner Center.

    Attributes:
        keys: the page's referral keys.
        next_link: where the next page is, or None after the last.
        count: `@odata.count` of the whole list, when the server sent it (first page).
        referrals: the page's referrals as listed (a pass hands them to its batches, so a
            batch does not read them again).
    """

    keys: tuple[Key, ...]
    next_link: str | None
    count: int | None
    referrals: tuple[Referral, ...] = ()


async def list_sweep_page(
    client: ReferralsClient, *, next_link: str | None = None, page_size: int = SWEEP_PAGE_SIZE
) -> SweepPage:
    """One page of every referral, oldest first (`next_link` None: the first page).

    Args:
        client: the Referrals API client.
        next_link: the previous page's `next_link`.
        page_size: `$top` of the first page (later pages follow the server's link).

    Returns:
        The page.
    """
    if next_link is None:
        page = await client.list_page(orderby="createdDateTime asc", top=page_size, count=True)
    else:
        page = await client.list_page(next_link=next_link)
    listed = tuple(r for r in page.referrals if r.id)
    keys = tuple(referral_key(str(r.id)) for r in listed)
    return SweepPage(keys=keys, next_link=page.next_link, count=page.count, referrals=listed)


async def sweep_pages(
    client: ReferralsClient, *, page_size: int = SWEEP_PAGE_SIZE
) -> AsyncIterator[SweepPage]:
    """Every page of every referral (at most `MAX_SWEEP_PAGES`), one list call each."""
    page = await list_sweep_page(client, page_size=page_size)
    for _ in range(MAX_SWEEP_PAGES):
        yield page
        if page.next_link is None:
            return
        page = await list_sweep_page(client, next_link=page.next_link)


def create_candidates_soql(*, limit: int) -> str:
    """Opportunities a seller asked to share that have no referral yet."""
    return (
        f"SELECT Id FROM {OPPORTUNITY} "  # noqa: S608 - constants and an int only
        f"WHERE {SYNC_FLAG} = true AND {REFERRAL_IDENTIFIER} = null "
        f"ORDER BY CreatedDate ASC LIMIT {int(limit)}"
    )


async def salesforce_create_candidates(
    client: SalesforceClient, *, max_records: int = DEFAULT_MAX_RECORDS
) -> tuple[tuple[Key, ...], int]:
    """Keys of the opportunities waiting for their referral (the Salesforce half of a sweep).

    Returns:
        (the keys, the API calls made).
    """
    keys: list[Key] = []
    calls = 0
    async for page in client.query_pages(create_candidates_soql(limit=max_records)):
        calls += 1
        keys.extend(record_key(OPPORTUNITY, str(record["Id"])) for record in page.records)
    return tuple(dict.fromkeys(keys)), calls
