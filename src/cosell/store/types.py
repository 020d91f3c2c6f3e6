"""The store's vocabulary: keys, ids, and the frozen rows its verbs return.

A **key** names one thing that may be out of date and needs a reconcile. There are two kinds,
and each has exactly one spelling, so that two notifications about the same thing always carry
the same key (the engine deduplicates and leases by key):

```
referral:<referral id>                 a Partner Center referral
salesforce:<SObject>:<18-char id>      a Salesforce record (an Opportunity, later a Lead)
```

`record_key` turns a 15-character Salesforce id into its 18-character form (the case-safe
suffix Salesforce computes from the letters' case), so a key built from a report's 15-character
id and one built from the API's 18-character id are the same key. `parse_key` is the inverse:

```python
match parse_key(key):
    case ("referral", referral_id): ...
    case ("salesforce", sobject, record_id): ...
```

The row types (`Link`, `AuditEntry`, `ConflictRecord`, `InboxEvent`, `CreateIntent`) are plain
frozen dataclasses: what a verb of `Store` returns is a copy, never a live database object.
Every datetime in them is timezone-aware UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal, NewType

from cosell.partnercenter.ids import check_referral_id

Key = NewType("Key", str)
"""What a notification says may be out of date: `referral:<id>` or `salesforce:<SObject>:<id>`."""

LinkId = NewType("LinkId", str)
"""The store's id of a link: 32 lowercase hex digits, ordered by creation time."""

JsonScalar = str | bool | None
"""A canonical value as the store keeps it (the same shape as `cosell.mapping.types.Value`).

The store does not import the mapping (the layers keep them independent), so it names the
shape itself: a string, a boolean, or None for unset.
"""

REFERRAL_PREFIX = "referral"
SALESFORCE_PREFIX = "salesforce"

_SOBJECT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?\Z")
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"  # Salesforce's 5-bit suffix alphabet


class KeyFormatError(ValueError):
    """A key, Salesforce object name or record id that is not spelled as cosell expects."""


def canonical_record_id(record_id: str) -> str:
    """The 18-character form of a Salesforce record id.

    Args:
        record_id: A 15-character (case-sensitive) or 18-character (case-safe) id.

    Returns:
        The 18-character id; an 18-character input is returned unchanged.

    Raises:
        KeyFormatError: When `record_id` is not 15 or 18 letters and digits.
    """
    if not _RECORD_ID.match(record_id):
        raise KeyFormatError(
            f"{record_id!r} is not a Salesforce record id: expected 15 or 18 letters and digits, "
            "e.g. 006000000000001AAA"
        )
    if len(record_id) == 18:
        return record_id
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(record_id[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _CHECKSUM_ALPHABET[bits]
    return record_id + suffix


def check_sobject(sobject: str) -> str:
    """Return `sobject` when it is spelled like a Salesforce object API name.

    Raises:
        KeyFormatError: When it is not (e.g. empty, or containing a colon).
    """
    if not _SOBJECT.match(sobject):
        raise KeyFormatError(
            f"{sobject!r} is not a Salesforce object name: expected an API name like "
            "Opportunity or Lead"
        )
    return sobject


def _check_referral_id(referral_id: str) -> str:
    try:
        return check_referral_id(referral_id)
    except ValueError as exc:
        raise KeyFormatError(str(exc)) from exc


def referral_key(referral_id: str) -> Key:
    """The key of a Partner Center referral.

    Args:
        referral_id: The referral's id.

    Returns:
        `referral:<referral_id>`.

    Raises:
        KeyFormatError: When the id is not one (`check_referral_id`): empty, `.`, `/`, ...
    """
    return Key(f"{REFERRAL_PREFIX}:{_check_referral_id(referral_id)}")


def record_key(sobject: str, record_id: str) -> Key:
    """The key of a Salesforce record.

    Args:
        sobject: The object's API name, e.g. `Opportunity`.
        record_id: The record's 15- or 18-character id (the key always holds 18).

    Returns:
        `salesforce:<sobject>:<18-character id>`.

    Raises:
        KeyFormatError: When the object name or the id is malformed.
    """
    return Key(f"{SALESFORCE_PREFIX}:{check_sobject(sobject)}:{canonical_record_id(record_id)}")


def parse_key(
    key: str,
) -> tuple[Literal["referral"], str] | tuple[Literal["salesforce"], str, str]:
    """Split a key into its parts (the inverse of `referral_key` and `record_key`).

    Args:
        key: `referral:<id>` or `salesforce:<SObject>:<id>`, e.g. typed by a user for `cosell plan`.

    Returns:
        `("referral", referral_id)` or `("salesforce", sobject, record_id)` with the 18-character id.

    Raises:
        KeyFormatError: When `key` is neither form; the message shows both.
    """
    kind, _, rest = key.partition(":")
    if kind == REFERRAL_PREFIX and rest:
        return ("referral", _check_referral_id(rest))
    if kind == SALESFORCE_PREFIX:
        sobject, _, record_id = rest.partition(":")
        if sobject and record_id:
            return ("salesforce", check_sobject(sobject), canonical_record_id(record_id))
    raise KeyFormatError(
        f"{key!r} is not a cosell key: expected referral:<referral id> "
        "or salesforce:<SObject>:<record id>, e.g. salesforce:Opportunity:006000000000001AAA"
    )


class SyncStatus(StrEnum):
    """A link's sync status, as `Partner_Center_Sync_Status__c` shows it to the seller."""

    SYNCED = "Synced"
    PENDING = "Pending"
    ERROR = "Error"


INCOMING: Final = "Incoming"  # a link's direction: made for Microsoft's referral
OUTGOING: Final = "Outgoing"  # made for an opportunity shared from Salesforce
DIRECTIONS: Final = (INCOMING, OUTGOING)


@dataclass(frozen=True)
class Link:
    """One Partner Center referral tied to one Salesforce record.

    Either id may be missing while a create is under way: a link made for an opportunity that
    is being shared has no referral id until Partner Center answers the POST; a link made for an
    incoming referral has no record id until the Salesforce upsert answers.

    Attributes:
        id: the store's id for the link.
        tenant: the connection this link belongs to.
        referral_id: the Partner Center referral id, once known.
        engagement_id: the Partner Center engagement id, once known.
        sobject: the Salesforce object, e.g. `Opportunity`.
        record_id: the 18-character Salesforce record id, once known.
        sync_status: `Synced`, `Pending` or `Error`.
        last_error: why the last reconcile failed, for the seller and the dashboard.
        created_at: when the link was created.
        updated_at: when the link row last changed.
        last_synced_at: when a reconcile last brought both sides into agreement.
        retries: scheduled retries made since the link was parked (`sync.plan.retry`).
        retry_at: when a parked link is retried next; None when it waits for a change (or is
            not parked).
        direction: `Incoming` (made for Microsoft's referral), `Outgoing` (made for an
            opportunity being shared), None when unknown (linked as an existing pair).
    """

    id: LinkId
    tenant: str
    referral_id: str | None
    engagement_id: str | None
    sobject: str
    record_id: str | None
    sync_status: SyncStatus
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    last_synced_at: datetime | None
    retries: int = 0
    retry_at: datetime | None = None
    direction: str | None = None

    @property
    def keys(self) -> tuple[Key, ...]:
        """The keys that resolve to this link (the referral's, then the record's, when known)."""
        keys: list[Key] = []
        if self.referral_id is not None:
            keys.append(referral_key(self.referral_id))
        if self.record_id is not None:
            keys.append(record_key(self.sobject, self.record_id))
        return tuple(keys)


@dataclass(frozen=True)
class AuditEntry:
    """One line of a link's audit trail.

    Attributes:
        id: increasing with insertion order within a database.
        tenant: the connection.
        link_id: the link, or None for an entry about no particular link.
        at: when it was recorded.
        message: what happened, for a human.
        details: structured facts (field values, API call counts); never secrets.
    """

    id: int
    tenant: str
    link_id: LinkId | None
    at: datetime
    message: str
    details: Mapping[str, Any]


@dataclass(frozen=True)
class ConflictRecord:
    """A field both sides changed differently since the base, and who won.

    Attributes:
        id: increasing with insertion order within a database.
        tenant: the connection.
        link_id: the link.
        field: the canonical field name.
        partner_center: Partner Center's value.
        salesforce: Salesforce's value.
        base: the value both sides last agreed on.
        winner: the side whose value was kept (`partner_center` or `salesforce`).
        at: when it was recorded.
    """

    id: int
    tenant: str
    link_id: LinkId
    field: str
    partner_center: JsonScalar
    salesforce: JsonScalar
    base: JsonScalar
    winner: str
    at: datetime


@dataclass(frozen=True)
class InboxEvent:
    """A notification received (a webhook callback), kept until its key has been handled.

    Attributes:
        id: increasing with arrival order within a database.
        tenant: the connection.
        source: who sent it, e.g. `partner_center`.
        event_id: the sender's id for the event (unique per source).
        key: the key the event says may be out of date.
        payload: the body as received.
        received_at: when it was recorded.
        completed_at: when it was handled, or None while pending.
    """

    id: int
    tenant: str
    source: str
    event_id: str
    key: Key
    payload: bytes
    received_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class CreateIntent:
    """The record that a create call is about to be made for a link.

    Written before the call; resolved after its result is stored on the link. Finding one
    unresolved means the process may have died in between, so the creator must look for the
    created object (by `external_reference`) before creating again.

    Attributes:
        link_id: the link the created object will belong to.
        tenant: the connection.
        side: where the object is created: `partner_center` or `salesforce`.
        external_reference: what the created object carries that finds it again (the
            Salesforce id in the referral's `externalReferenceId`, or the referral id in
            `Referral_Identifier__c`).
        created_at: when the intent was recorded.
    """

    link_id: LinkId
    tenant: str
    side: str
    external_reference: str
    created_at: datetime


@dataclass(frozen=True)
class NewConflict:
    """A conflict to record (`Record.conflicts`): the field, the three values and the winner."""

    field: str
    partner_center: JsonScalar
    salesforce: JsonScalar
    base: JsonScalar
    winner: str


@dataclass(frozen=True)
class Record:
    """What one reconcile did to one link, recorded atomically by `Store.record`.

    Attributes:
        link_id: the link.
        link: columns of the link to change, as `Store.update_link` takes them (empty: none).
        snapshot: the new base snapshot (None: the base is unchanged).
        conflicts: conflicts to record.
        audit: audit entries to add, oldest first: (message, details or None).
        wakeup: (key, when) to reconcile again although nothing changes, or None.
        resolve_intent: forget the link's create intent (its create's result is stored here).
    """

    link_id: str
    link: Mapping[str, Any] = field(default_factory=dict)
    snapshot: Mapping[str, JsonScalar] | None = None
    conflicts: tuple[NewConflict, ...] = ()
    audit: tuple[tuple[str, Mapping[str, Any] | None], ...] = ()
    wakeup: tuple[str, datetime] | None = None
    resolve_intent: bool = False
