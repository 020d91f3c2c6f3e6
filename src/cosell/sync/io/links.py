"""Key -> link: the one lookup of the link a key names (a store read)."""

from __future__ import annotations

from cosell.store import Store
from cosell.store.types import Link
from cosell.sync.plan.keys import KeyRef


def link_of(store: Store, ref: KeyRef) -> Link | None:
    """The link the key names: by referral id, or by the Salesforce record; None if none.

    Args:
        store: the store.
        ref: the parsed key.

    Returns:
        The link, or None when the key has none yet.
    """
    if ref.referral_id is not None:
        return store.link_for_referral(ref.referral_id)
    assert ref.sobject is not None
    assert ref.record_id is not None
    return store.link_for_record(ref.sobject, ref.record_id)
